"""Flags: what a reader must know before trusting a figure, as typed values.

A flag names its kind (what went wrong, from a fixed list), its subject (the row and phase it
concerns, e.g. ``"norse fwd"``), a sentence for the reader, and the figures behind it. Code that
acts on flags reads their kind, never their sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Literal

from kernelprof.results.record import FrozenDict, record

FlagKind = Literal[
    "spread",  # a phase's calls spread more than the machine's noise allows
    "hidden_work",  # CUDA events saw less than a device-synchronised call takes
    "device_waits",  # held-busy events above the summed kernels: the device waits in the call
    "kernels_overlap",  # summed kernels above held-busy events: concurrent streams
    "rounds_disagree",  # a phase's rounds disagree beyond their calls' scatter, unexplained
    "faults",  # a phase's rounds differ by their page faults (said, not a fault of the row)
    "part_slower",  # fwd or bwd alone takes longer than fwd+bwd
    "whole_slower",  # fwd+bwd takes far longer than fwd plus bwd (explained, not a fault)
    "launch_bound",  # call time well above device time: the GPU waits for the host
    "host_bound",  # CPU analogue: most of a call outside torch operators
    "warm_up_unsettled",  # the warm-up reached its bound before the call time settled
    "round_failed",  # a round or the profile of a row did not come back
    "energy",  # an energy window that cannot be read as measured
]
# The kinds that mean a row's figures cannot all be right as printed: the "busy?" flag.
INCONSISTENT = ("rounds_disagree", "part_slower")
BUSY = "inconsistent (machine busy?)"


@record
class Flag:
    kind: FlagKind
    subject: str
    message: str
    figures: Mapping[str, float] = field(default_factory=FrozenDict)

    @property
    def inconsistent(self) -> bool:
        return self.kind in INCONSISTENT


def of_kind(flags: Iterable[Flag], *kinds: str) -> tuple[Flag, ...]:
    return tuple(flag for flag in flags if flag.kind in kinds)
