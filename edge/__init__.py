"""virtualfocus.edge — the runtime instrument software imports (numpy, OpenCV, OpenVINO / ONNX Runtime; no torch).

>>> from virtualfocus.edge import FocusRuntime
>>> rt = FocusRuntime.load()          # the shipped default variant
>>> restored = rt.restore(capture).image
"""

from .errors import BackendError, BudgetExceeded, InputError, ModelLoadError, VirtualFocusError
from .events import (
    BackendFailed,
    BudgetExceededEvent,
    Event,
    FallbackEngaged,
    FrameLate,
    FrameRestored,
    GuardRecovered,
)
from .runtime import PASSTHROUGH, FocusRuntime, FrameStatus, LoadReport, RestoredFrame

__all__ = [
    "PASSTHROUGH",
    "BackendError",
    "BackendFailed",
    "BudgetExceeded",
    "BudgetExceededEvent",
    "Event",
    "FallbackEngaged",
    "FocusRuntime",
    "FrameLate",
    "FrameRestored",
    "FrameStatus",
    "GuardRecovered",
    "InputError",
    "LoadReport",
    "ModelLoadError",
    "RestoredFrame",
    "VirtualFocusError",
]
