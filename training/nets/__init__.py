"""Network definitions (PyTorch). Import the submodules (``nets.unet`` …); this package file stays torch-free.

The option vocabularies below are shared with the torch-free registry, which validates specs without torch.
"""

NORMS = ("batch", "instance", "none")
DECODERS = ("transpose", "resize-conv", "pixelshuffle")
