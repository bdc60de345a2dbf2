"""The commands' runs: check, compare and e2e. Orchestration only: they build through the
framework modules, measure through the harness and return results documents."""
