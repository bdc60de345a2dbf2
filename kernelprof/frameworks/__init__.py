"""The frameworks kernelprof measures: one module per framework, the only place that imports it
(see base.py for what a module provides and registry.py for how they are found)."""
