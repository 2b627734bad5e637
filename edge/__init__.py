"""virtualfocus.edge — the runtime instrument software imports (numpy, OpenCV, OpenVINO / ONNX Runtime; no torch).

>>> from virtualfocus.edge import FocusRuntime
>>> rt = FocusRuntime.load()          # the shipped default variant
>>> restored = rt.restore(capture).image
"""

from .classifier import DefocusClassifier
from .defocus import DefocusEstimate
from .errors import BackendError, BudgetExceeded, InputError, ModelLoadError, ModelTampered, VirtualFocusError
from .events import (
    BackendFailed,
    BudgetExceededEvent,
    Event,
    FallbackEngaged,
    FrameLate,
    FrameRestored,
    GuardRecovered,
    UntrustedCapture,
)
from .focusmap import FocusMap
from .runtime import PASSTHROUGH, FocusRuntime, FrameStatus, LoadReport, RestoredFrame

__all__ = [
    "PASSTHROUGH",
    "BackendError",
    "BackendFailed",
    "BudgetExceeded",
    "BudgetExceededEvent",
    "DefocusClassifier",
    "DefocusEstimate",
    "Event",
    "FallbackEngaged",
    "FocusMap",
    "FocusRuntime",
    "FrameLate",
    "FrameRestored",
    "FrameStatus",
    "GuardRecovered",
    "InputError",
    "LoadReport",
    "ModelLoadError",
    "ModelTampered",
    "RestoredFrame",
    "UntrustedCapture",
    "VirtualFocusError",
]
