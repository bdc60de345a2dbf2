"""What every results document starts with: its kind, schema version, creation time, the
environment it was measured in, and whether it was interrupted.

Each kind of document (check, compare, e2e, conversion, study) is a record deriving from
:class:`Document`; :mod:`kernelprof.results.files` reads and writes them.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import field

from kernelprof.results.record import FrozenDict, record

# 1: no version field; 2: the version, timed_build per row, keep_host_memory; 3: documents are
# the typed records of kernelprof.results (nested check/timing/profile records per row,
# typed flags, compare's "cases" for "runs", conversion its own kind).
SCHEMA_VERSION = 3
VERDICTS = ("exact", "close", "approximate", "WRONG", "unsupported", "unavailable", "error")
STATUSES = ("ok", "unsupported", "unavailable", "error")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


@record
class DeviceInfo:
    type: str
    name: str = ""
    cuda: str | None = None
    capability: tuple[int, ...] | None = None


@record
class Environment:
    """What a result depends on: machine, device, library versions, kernelprof's commit."""

    device: DeviceInfo
    platform: str = ""
    versions: Mapping[str, str] = field(default_factory=FrozenDict)
    git_commit: str | None = None


@record
class Document:
    """The header of every results document."""

    kernelprof: str  # the kind: each document class fixes it
    environment: Environment
    schema: int = SCHEMA_VERSION
    created: str = field(default_factory=now)
    interrupted: bool = False
    notes: tuple[str, ...] = ()
