"""kernelprof: where spiking-neural-network training time, memory and energy go, measured.

The Python API (:mod:`kernelprof.api`): ``kernelprof.check``, ``kernelprof.compare``,
``kernelprof.e2e``, ``kernelprof.profile`` (with ``kernelprof.step``) and ``kernelprof.load``;
imported on first use, so that importing a submodule (a worker process does) stays cheap.
"""

__version__ = "0.1.0"
__all__ = ["Result", "RequestError", "check", "compare", "e2e", "load", "profile", "step"]


def __getattr__(name: str):
    if name in __all__:
        from kernelprof import api

        return getattr(api, name)
    raise AttributeError(f"module 'kernelprof' has no attribute {name!r}")
