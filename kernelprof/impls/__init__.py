"""LIF implementations kernelprof compares: one module per framework, each registering itself."""
