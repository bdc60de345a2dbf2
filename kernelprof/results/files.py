"""Results documents as files: written from the records, read back into them.

Every kind of document is one record class (:data:`KINDS`); a file is its :func:`encode`d form
as JSON. Reading checks the kind and the schema version first, then decodes the whole file
against the record's type hints, so an old, foreign or damaged file is a one-line
:class:`DocumentError` rather than a traceback.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from kernelprof.results.check import CheckDocument
from kernelprof.results.compare import CompareDocument
from kernelprof.results.document import SCHEMA_VERSION, Document
from kernelprof.results.e2e import ConversionDocument, E2EDocument
from kernelprof.results.profile import ProfileDocument
from kernelprof.results.record import SchemaError, decode, encode
from kernelprof.results.study import StudyDocument

KINDS: dict[str, type[Document]] = {
    "check": CheckDocument,
    "compare": CompareDocument,
    "e2e": E2EDocument,
    "conversion": ConversionDocument,
    "study": StudyDocument,
    "profile": ProfileDocument,
}


class DocumentError(ValueError):
    """A file that is not a results document this kernelprof reads; one line."""


def dumps(document: Document) -> str:
    return json.dumps(encode(document), indent=2, default=str)


def read(data: Any, kinds: tuple[str, ...] = tuple(KINDS)) -> Document:
    """``data`` (a loaded JSON document) as its record; :class:`DocumentError` in one line for
    a foreign file, another schema version, or the first problems found in its records."""
    kind = data.get("kernelprof") if isinstance(data, dict) else None
    if kind not in kinds:
        raise DocumentError(f"not a kernelprof {' or '.join(kinds)} results file "
                            "(write one with --out)")  # fmt: skip
    version = data.get("schema")
    rerun = f"run the `kernelprof {'e2e' if kind == 'conversion' else kind}` command again"
    if version is None:
        raise DocumentError(f"a kernelprof {kind} file from before schema versions (schema 1); "
                            f"this kernelprof reads schema {SCHEMA_VERSION}: {rerun} with "
                            "--out to regenerate it")  # fmt: skip
    if version != SCHEMA_VERSION:
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise DocumentError(f"schema {version} (newer than what this kernelprof reads, "
                                f"{SCHEMA_VERSION}): update kernelprof")  # fmt: skip
        raise DocumentError(f"schema {version!r} (written by an earlier kernelprof; this one "
                            f"reads schema {SCHEMA_VERSION}): {rerun} with --out to regenerate "
                            "it")  # fmt: skip
    try:
        return decode(KINDS[kind], data)
    except SchemaError as error:
        raise DocumentError(f"not a valid kernelprof {kind} file: {error}") from None


def loads(text: str, kinds: tuple[str, ...] = tuple(KINDS)) -> Document:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        detail = f"{error.msg} at line {error.lineno}" if hasattr(error, "lineno") else error
        raise DocumentError(f"not JSON ({detail})") from None
    return read(data, kinds)


def load(path: Path | str, kinds: tuple[str, ...] = tuple(KINDS)) -> Document:
    """The document in ``path``; :class:`DocumentError` naming the file, in one line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise DocumentError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        return loads(text, kinds)
    except DocumentError as error:
        raise DocumentError(f"{path}: {error}") from None


def save(document: Document, path: Path | str) -> tuple[Path, str | None]:
    """Writes ``document`` to ``path``. Should that fail (checked before a run, but a disk can
    fill), it goes to a file in the temporary folder instead: a result already measured is
    never lost. Returns where it went, and the reason it is not ``path`` (else None)."""
    path = Path(path)
    text = dumps(document)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path, None
    except OSError as error:
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="kernelprof-results-",
                                         delete=False) as fallback:  # fmt: skip
            fallback.write(text)
        return Path(fallback.name), f"cannot write {path} ({error.strerror or error})"
