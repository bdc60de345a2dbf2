"""``kernelprof compare``: every implementation checked, then its timed build measured side by
side. :mod:`~kernelprof.runs.compare.run` is the parent (cases, workers, rounds, analysis);
:mod:`~kernelprof.runs.compare.worker` is what each implementation's worker does."""
