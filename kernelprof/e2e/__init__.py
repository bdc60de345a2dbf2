"""End-to-end SNN training benchmarks: networks, data, training loop, breakdowns."""
