"""What each command is asked to do: one request class per command, its options declared on its
fields, validated where it is made (:mod:`kernelprof.requests.options`). The command line and
the Python API build the same requests."""

from kernelprof.requests.check import CheckRequest
from kernelprof.requests.compare import CompareRequest
from kernelprof.requests.e2e import E2ERequest
from kernelprof.requests.options import RequestError
from kernelprof.requests.tools import (
    FrameworksRequest,
    ReportRequest,
    TraceDiffRequest,
    TraceSummaryRequest,
)

__all__ = [
    "CheckRequest",
    "CompareRequest",
    "E2ERequest",
    "FrameworksRequest",
    "ReportRequest",
    "RequestError",
    "TraceDiffRequest",
    "TraceSummaryRequest",
]
