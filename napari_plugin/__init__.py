"""virtualfocus in napari: a "Restore defocus" dock widget, a reader for the project's z-stack format and a
simulated sample stack (``pip install "virtualfocus[napari]"``; nothing here is imported by the runtime).

The widget restores the selected image layer — a 2-D gray/RGB capture, or a z-stack / time series plane by plane
in a worker thread with a progress bar and a cancel button — with a shipped model, adds ``<name> restored`` and
lists per-plane status, estimated defocus and trust (untrusted planes in red), kept in the layer's metadata.
"""

from ._reader import get_reader, read_stack_layer
from ._sample import sample_stack
from ._widget import RestoreWidget, iter_restore, restore_planes

__all__ = ["RestoreWidget", "get_reader", "iter_restore", "read_stack_layer", "restore_planes", "sample_stack"]
