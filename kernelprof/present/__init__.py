"""Presentation: terminal tables, CSV/Markdown, plots, HTML. Reads result records only; never
measures or analyses. One module per kind of result (:mod:`.check`, :mod:`.compare`,
:mod:`.e2e`, :mod:`.study`, :mod:`.profile`, :mod:`.traces`, :mod:`.frameworks`), shared table
helpers in :mod:`.tables`, pages of several results in :mod:`.pages`."""

from __future__ import annotations

from kernelprof.results.check import CheckDocument
from kernelprof.results.compare import CompareDocument
from kernelprof.results.document import Document
from kernelprof.results.e2e import ConversionDocument, E2EDocument
from kernelprof.results.profile import ProfileDocument
from kernelprof.results.study import StudyDocument


def renderables(document: Document, all_rows: bool = False) -> list:
    """What the command line prints for ``document`` as a table, in order."""
    from . import check, compare, e2e, study

    if isinstance(document, CompareDocument):
        return compare.document_renderables(document, all_rows)
    if isinstance(document, CheckDocument):
        return check.document_renderables(document, all_rows)
    if isinstance(document, E2EDocument | ConversionDocument):
        return e2e.document_renderables(document)
    if isinstance(document, ProfileDocument):
        from . import profile

        return profile.renderables(document)
    if isinstance(document, StudyDocument):
        from rich.markdown import Markdown

        return [Markdown(study.markdown(document))]
    raise TypeError(f"no presentation for {type(document).__name__}")


def text(document: Document, kind: str) -> str:
    """``document`` as CSV or Markdown text (``kind``: "csv" or "md")."""
    from . import check, compare, e2e, study

    if isinstance(document, CompareDocument):
        return compare.flat(document, kind)
    if isinstance(document, CheckDocument):
        return check.flat(document, kind)
    if kind == "md" and isinstance(document, E2EDocument | ConversionDocument):
        return e2e.e2e_markdown(document)
    if kind == "md" and isinstance(document, StudyDocument):
        return study.markdown(document) + "\n"
    raise ValueError(f"no {kind} form for a {document.kernelprof} document")
