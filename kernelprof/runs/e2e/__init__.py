"""End-to-end SNN training runs: data, the training loop with its step breakdown, ANN-to-SNN
conversion and data-parallel runs."""
