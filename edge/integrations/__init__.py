"""Capture-triggered integrations: hooks for pymmcore-plus and pycro-manager, a plain-Python stream, two-shot
fusion and focus-drift telemetry. (The simulated microscope for trying these without hardware is
:mod:`virtualfocus.simulation.simscope`: instrument software never installs the simulator.)

=====================================  ==========================================================================
:class:`FrameStream`                   any software: ``push(image, meta)`` → ``on_frame(StreamFrame)`` in order
:func:`~.pymmcore.attach`              pymmcore-plus: ``attach(core, runtime)`` → ``Processor.frameRestored``
:func:`~.pycromanager.image_process_fn`  pycro-manager: ``Acquisition(image_process_fn=image_process_fn(rt))``
:class:`TwoShotStream`                 pair two captures per field, align, fuse with a two-input model
:class:`DriftMonitor`                  defocus estimate per frame, drift events, rolling summary
=====================================  ==========================================================================

Nothing here imports pymmcore-plus, psygnal or useq at import time; ``pymmcore`` imports them when called
(``pip install 'virtualfocus[mm]'``). ``attach``, ``Processor`` and ``two_shot_engine`` are importable from here
too (loaded on first access).
"""

from __future__ import annotations

from typing import Any

from .callbacks import FrameStream, StreamFrame
from .pycromanager import image_process_fn
from .telemetry import (
    DefocusEstimate,
    DriftMonitor,
    DriftSample,
    FocusDriftDetected,
    FocusDriftRecovered,
    FocusMeasureEstimator,
)
from .twoshot import (
    TwoShotConfig,
    TwoShotFuser,
    TwoShotResult,
    TwoShotStream,
    estimate_shift,
    load_two_shot_engine,
)

__all__ = [
    "DefocusEstimate",
    "DriftMonitor",
    "DriftSample",
    "FocusDriftDetected",
    "FocusDriftRecovered",
    "FocusMeasureEstimator",
    "FrameStream",
    "StreamFrame",
    "TwoShotConfig",
    "TwoShotFuser",
    "TwoShotResult",
    "TwoShotStream",
    "estimate_shift",
    "image_process_fn",
    "load_two_shot_engine",
]

_LAZY = {"attach": ".pymmcore", "Processor": ".pymmcore", "two_shot_engine": ".pymmcore"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
