"""kernelprof: where SNN training time and energy go."""
