"""``kernelprof profile``: where the training steps of any model go (see :mod:`.run`)."""
