"""One exception family for the whole product.

Every error a user can cause names the file or argument at fault and says what would be accepted, so that a
microscope integrator reading a log line knows what to fix without a traceback.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BudgetExceeded",
    "InputError",
    "ModelLoadError",
    "VirtualFocusError",
]


class VirtualFocusError(Exception):
    """Base class of every error raised on purpose by virtualfocus."""


class InputError(VirtualFocusError, ValueError):
    """An image, stack, file or argument that cannot be used; the message names it and what is accepted."""


class ModelLoadError(VirtualFocusError):
    """A model file or manifest that is missing, unreadable, tampered with or not compatible with this runtime."""


class ModelTampered(ModelLoadError):
    """A file listed in a model's manifest whose size or sha256 differs from the manifest: refused outright, never
    replaced by another backend's file (a tampered or truncated folder is not a backend problem)."""


class BackendError(VirtualFocusError):
    """An inference backend (OpenVINO, ONNX Runtime) is unavailable or failed while running a frame."""


class BudgetExceeded(VirtualFocusError):
    """A frame could not be restored within its hard deadline (raised only where the caller asked to be told)."""
