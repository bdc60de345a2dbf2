"""The results documents (``--out FILE.json``): their schema version and typed records.

Every document starts with a header from :func:`new_document`: ``{"kernelprof": KIND,
"schema": SCHEMA_VERSION, "created": ..., "environment": ...}``; its records are described by
the :class:`Record` s below, and :func:`validate` checks a document against them (kind, version,
every required field and its type), which is what ``kernelprof report`` does before reading a
file, so that an old, foreign or damaged file is a one-line error rather than a traceback.

Version history: 1 (no ``schema`` field) until the frameworks became plugins; 2 adds the
version, ``timed_build`` per row and the request's ``keep_host_memory``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 2
KINDS = ("check", "compare", "e2e")
VERDICTS = ("exact", "close", "approximate", "WRONG", "unsupported", "unavailable", "error")
STATUSES = ("ok", "unsupported", "unavailable", "error")
NUMBER = (int, float)
NONE = type(None)


class SchemaError(ValueError):
    """A document that does not follow the schema; the message says where, in one line."""


@dataclass(frozen=True)
class Field:
    """One field of a record: its name, the types it may take, and what it holds."""

    name: str
    types: tuple[type, ...]
    required: bool = True
    choices: tuple = ()
    record: Record | None = None  # a dict holding this record
    items: Record | None = None  # a list of this record
    values: Record | None = None  # a dict whose every value is this record


@dataclass(frozen=True)
class Record:
    name: str
    fields: tuple[Field, ...]

    def problems(self, value: Any, where: str) -> list[str]:
        """What is wrong with ``value`` as this record (empty when nothing is)."""
        if not isinstance(value, dict):
            return [f"{where}: expected a {self.name} object, got {_type_name(value)}"]
        found = []
        for spec in self.fields:
            path = f"{where}.{spec.name}" if where else spec.name
            if spec.name not in value:
                if spec.required:
                    found.append(f"{path}: missing")
                continue
            item = value[spec.name]
            # bool is an int in Python; a number field must not take True/False
            wrong_bool = isinstance(item, bool) and bool not in spec.types
            if not isinstance(item, spec.types) or wrong_bool:
                expected = " or ".join(dict.fromkeys(_type_label(t) for t in spec.types))
                found.append(f"{path}: expected {expected}, got {_type_name(item)}")
                continue
            if spec.choices and item not in spec.choices:
                found.append(f"{path}: {item!r} is not one of {', '.join(map(str, spec.choices))}")
            if spec.record is not None and item is not None:
                found += spec.record.problems(item, path)
            if spec.items is not None and item is not None:
                for index, element in enumerate(item):
                    found += spec.items.problems(element, f"{path}[{index}]")
            if spec.values is not None and item is not None:
                for key, element in item.items():
                    found += spec.values.problems(element, f"{path}.{key}")
        return found


def _type_label(kind: type) -> str:
    return {int: "a number", float: "a number", str: "a string", bool: "true/false",
            list: "a list", dict: "an object", NONE: "null"}.get(kind, kind.__name__)  # fmt: skip


def _type_name(value: Any) -> str:
    return _type_label(type(value))


TIMING = Record("timing", (
    Field("median_s", NUMBER),
    Field("q1_s", NUMBER),
    Field("q3_s", NUMBER),
    Field("iqr_s", NUMBER),
    Field("samples_s", (list,)),
    Field("first_call_s", (*NUMBER, NONE)),
    Field("warnings", (list,)),
    Field("gb_per_s", NUMBER),  # added by the analysis of every timed row
    Field("copy_bandwidth_fraction", NUMBER),
    # compare: rounds pooled; device time (summed kernels on CUDA, the host clock on CPU)
    Field("device_s", NUMBER, required=False),
    Field("call_s", NUMBER, required=False),
    Field("launch_s", NUMBER, required=False),
    Field("device_source", (str,), required=False, choices=("kernels", "host clock")),
    Field("rounds", (list,), required=False),
))  # fmt: skip
TIMED_BUILD = Record("timed-build agreement", (
    Field("agrees", (bool,)),
    Field("reason", (str,)),
    Field("neurons", (int,)),
))  # fmt: skip
NEURON_ROW = Record("row", (
    Field("impl", (str,)),
    Field("verdict", (str,), choices=VERDICTS),
    Field("framework", (str,), required=False),
    Field("status", (str,), required=False, choices=STATUSES),
    Field("reason", (str,), required=False),
    Field("path", (str,), required=False),
    Field("timed_build", (dict,), required=False, record=TIMED_BUILD),
    Field("timings", (dict,), required=False, values=TIMING),
    Field("speedup", NUMBER, required=False),  # fwd+bwd device time against the baseline
    Field("speedup_interval", (list,), required=False),
    Field("speedup_call", NUMBER, required=False),
    Field("launch_bound", (dict,), required=False),
    Field("inconsistent", (list,), required=False),
    Field("kernels_per_fwd_bwd", (int, NONE), required=False),
    Field("peak_bytes", (int, NONE), required=False),
    Field("saved_bytes", (int, NONE), required=False),
    Field("energy", (dict,), required=False),
))  # fmt: skip
CASE = Record("case", (
    Field("T", (int,)),
    Field("N", (int,)),
    Field("dtype", (str,), choices=("fp32", "fp16", "bf16")),
))  # fmt: skip
COMPARE_RUN = Record("run", (
    Field("case", (dict,), record=CASE),
    Field("device", (dict,)),
    Field("copy_bandwidth_gb_per_s", NUMBER),
    Field("rows", (list,), items=NEURON_ROW),
    Field("baseline", (str, NONE), required=False),
    Field("noise_rounds_s", (list,), required=False),  # the noise probe before each round
    Field("noise_spread", NUMBER, required=False),  # its calls' median spread over the probes
    Field("spread_limit", NUMBER, required=False),
))  # fmt: skip
_HEADER = (
    Field("kernelprof", (str,), choices=KINDS),
    Field("schema", (int,)),
    Field("created", (str,)),
    Field("environment", (dict,)),
    Field("interrupted", (bool,)),
)
COMPARE = Record("compare document", (
    *_HEADER,
    Field("config", (dict,)),
    Field("copy_bandwidth_gb_per_s", NUMBER),
    Field("notes", (list,)),
    Field("runs", (list,), items=COMPARE_RUN),
))  # fmt: skip
CHECK = Record("check document", (
    *_HEADER,
    Field("config", (dict,)),
    Field("case", (dict,)),
    Field("rows", (list,), items=NEURON_ROW),
))  # fmt: skip
E2E_ROW = Record("e2e row", (
    Field("framework", (str,)),
    Field("status", (str,), choices=STATUSES),
    Field("reason", (str,), required=False),
    Field("test_accuracy", NUMBER, required=False),
    Field("epoch_s", (list,), required=False),
    Field("step_median_s", (*NUMBER, NONE), required=False),
    Field("breakdown_s", (dict,), required=False),
    Field("breakdown_kind", (str,), choices=("device", "host"), required=False),
    Field("breakdown", (dict,), required=False),  # the attributed traces, see traces/steps.py
    Field("energy", (dict,), required=False),
    Field("accuracy_by_T", (dict,), required=False),
    Field("notes", (list,), required=False),
))  # fmt: skip
E2E = Record("e2e document", (
    *_HEADER,
    Field("mode", (str,), choices=("direct", "conversion")),
    Field("task", (dict,)),
    Field("rows", (list,), items=E2E_ROW),
    Field("attribution", (dict,), required=False),
    Field("ann", (dict,), required=False),
))  # fmt: skip
DOCUMENTS = {"check": CHECK, "compare": COMPARE, "e2e": E2E}


def new_document(kind: str, environment: dict[str, Any]) -> dict[str, Any]:
    """The header every results document starts with."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return {
        "kernelprof": kind,
        "schema": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "environment": environment,
        "interrupted": False,
    }


def validate(document: Any, kinds: tuple[str, ...] = KINDS) -> str:
    """Checks a loaded document; returns its kind. Raises :class:`SchemaError` with one line:
    a foreign file, an older or newer schema, or the first problems found in its records."""
    kind = document.get("kernelprof") if isinstance(document, dict) else None
    if kind not in kinds:
        wanted = " or ".join(kinds)
        raise SchemaError(f"not a kernelprof {wanted} results file (write one with --out)")
    version = document.get("schema")
    if version is None:
        raise SchemaError(
            f"a kernelprof {kind} file from before schema versions (schema 1); this kernelprof "
            f"reads schema {SCHEMA_VERSION}: run the command again with --out"
        )
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise SchemaError(
            f"schema {version!r} ({'newer than' if newer else 'not'} what this kernelprof "
            f"reads, {SCHEMA_VERSION})" + ("" if newer else ": run the command again with --out")
        )
    found = DOCUMENTS[kind].problems(document, "")
    if found:
        more = f" (and {len(found) - 2} more)" if len(found) > 2 else ""
        raise SchemaError(f"not a valid kernelprof {kind} file: {'; '.join(found[:2])}{more}")
    return kind
