"""Reading a torch.profiler (Kineto) Chrome trace: its events, one dict at a time, streamed with
ijson from ``.json`` or ``.json.gz`` (gzip recognised by its magic bytes, not the name), and the
event categories the analyzers share."""

from __future__ import annotations

import gzip
from pathlib import Path

TINY_KERNEL_US = 10.0
GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
CPU_RANGE_CATEGORY, GPU_RANGE_CATEGORY = "user_annotation", "gpu_user_annotation"
LAUNCH_CATEGORIES = ("cuda_runtime", "cuda_driver")
LAUNCH_NAMES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx",
                "cudaLaunchCooperativeKernel", "cuLaunchCooperativeKernel")  # fmt: skip


class TraceError(Exception):
    """A trace that cannot be read: the message is one line naming the file and the problem."""


def iter_events(path: Path):
    """The trace's events, one dict at a time; TraceError for anything unreadable."""
    import ijson

    path = Path(path)
    try:
        raw = path.open("rb")
    except OSError as error:
        raise TraceError(f"{path}: cannot open ({error.strerror or error})") from None
    with raw:
        stream = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == b"\x1f\x8b" else raw
        try:
            first = _first_significant_byte(stream)
            if first is None:
                return  # an empty file: no events
            if first not in (b"{", b"["):
                raise TraceError(f"{path}: not a Chrome trace (it starts with {first!r})")
            prefix = "traceEvents.item" if first == b"{" else "item"
            yield from ijson.items(_Rewound(stream, first), prefix, use_float=True)
        except ijson.common.JSONError as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else "bad JSON"
            raise TraceError(f"{path}: truncated or invalid JSON ({detail})") from None
        except (EOFError, gzip.BadGzipFile, OSError) as error:
            raise TraceError(f"{path}: truncated or corrupt gzip ({error})") from None


def _first_significant_byte(stream) -> bytes | None:
    while True:
        byte = stream.read(1)
        if not byte:
            return None
        if not byte.isspace():
            return byte


class _Rewound:
    """A binary stream with one byte already read put back in front."""

    def __init__(self, stream, first: bytes) -> None:
        self.stream = stream
        self.pending = first

    def read(self, size: int = -1) -> bytes:
        head, self.pending = self.pending, b""
        if size is not None and 0 <= size <= len(head):
            self.pending = head[size:]
            return head[:size]
        rest = self.stream.read(-1 if size is None or size < 0 else size - len(head))
        return head + rest
