"""pycro-manager adapter: an ``image_process_fn`` that restores each image of an ``Acquisition``.

    from pycromanager import Acquisition
    from virtualfocus.edge import FocusRuntime
    from virtualfocus.edge.integrations.pycromanager import image_process_fn

    rt = FocusRuntime.load()
    with Acquisition(directory="out", name="run", image_process_fn=image_process_fn(rt)) as acq:
        acq.acquire(events)

pycro-manager calls the function on its own image-processing thread (not the camera's), one image at a time and
in order, and saves what it returns. The function waits for the runtime (at most its hard deadline, after which the
raw image comes back flagged ``late``) and returns ``(image, metadata)`` with ``virtualfocus.*`` keys added to the
metadata (JSON-safe strings and numbers, as pycro-manager's storage requires). It never raises: an image the
runtime cannot take is returned unchanged, flagged ``rejected``, with a warning. pycro-manager itself is not
imported (it needs a running Java Micro-Manager).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import InputError
from ..runtime import FocusRuntime, FrameStatus
from .callbacks import _WarnLimiter
from .telemetry import DriftMonitor

__all__ = ["image_process_fn"]

log = logging.getLogger("virtualfocus")


def image_process_fn(
    runtime: FocusRuntime,
    *,
    telemetry: DriftMonitor | bool = False,
    position_key: str = "position",
    timeout_s: float | None = None,
) -> Callable[[np.ndarray, dict[str, Any]], tuple[np.ndarray, dict[str, Any]]]:
    """Build the ``image_process_fn(image, metadata) -> (image, metadata)`` pycro-manager calls per image.

    Parameters
    ----------
    runtime : FocusRuntime
    telemetry : DriftMonitor or bool
        Add ``virtualfocus.defocus_um`` from a drift monitor (True: :meth:`DriftMonitor.for_runtime`), keyed by the
        image's position axis (``metadata["Axes"][position_key]``) when present.
    position_key : str
        Axis name of the stage position in pycro-manager's ``metadata["Axes"]``.
    timeout_s : float, optional
        Longest wait for one frame (default: the runtime's hard deadline plus a second of slack).
    """
    if not isinstance(runtime, FocusRuntime):
        raise InputError(f"image_process_fn: runtime must be a FocusRuntime, got {type(runtime).__name__}")
    if telemetry is True:
        telemetry = DriftMonitor.for_runtime(runtime)
    monitor = telemetry or None
    wait = timeout_s if timeout_s is not None else runtime.deadline_ms / 1e3 + 1.0
    warn = _WarnLimiter()
    counter = [0]

    def process(image: np.ndarray, metadata: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        seq = counter[0]
        counter[0] += 1
        md: dict[str, Any] = dict(metadata) if isinstance(metadata, Mapping) else {}
        if not isinstance(metadata, Mapping):
            warn.warn("no-metadata", "virtualfocus: image %d arrived with metadata of type %s, not a dict; returning a "
                      "new dict with virtualfocus.* keys", seq, type(metadata).__name__)
        try:
            frame = runtime.submit(image, {"bit_depth": md["BitDepth"]} if _is_uint16_depth(image, md) else None).result(wait)
        except Exception as e:  # includes a timeout: never raise into pycro-manager's thread
            warn.warn("failed", "virtualfocus: image %d returned raw (%s: %s)", seq, type(e).__name__, e)
            md.update({"virtualfocus.status": FrameStatus.FAILED.value, "virtualfocus.message": f"{type(e).__name__}: {e}"})
            return image, md
        if frame.status in (FrameStatus.REJECTED, FrameStatus.FAILED, FrameStatus.LATE, FrameStatus.OVERFLOW):
            warn.warn(frame.status.value, "virtualfocus: image %d returned raw, flagged %r: %s", seq, frame.status.value,
                      frame.message)
        md.update(frame.metadata())
        md["virtualfocus.seq"] = seq
        if monitor is not None and isinstance(image, np.ndarray):
            axes = md.get("Axes")
            key = axes.get(position_key) if isinstance(axes, Mapping) else None
            try:
                if frame.defocus is not None and monitor.estimator is runtime.defocus_estimator:
                    sample = monitor.record(frame.defocus, key=key, seq=seq)  # already estimated by the runtime
                else:
                    sample = monitor.observe(image, key=key, seq=seq)
                md["virtualfocus.defocus_um"] = None if sample.defocus_um is None else round(sample.defocus_um, 4)
            except Exception as e:
                warn.warn("telemetry", "virtualfocus: no defocus estimate for image %d (%s)", seq, e)
        out = frame.image
        return out, md

    return process


def _is_uint16_depth(image: Any, md: Mapping[str, Any]) -> bool:
    bd = md.get("BitDepth")
    return isinstance(image, np.ndarray) and image.dtype == np.uint16 and isinstance(bd, int) and 8 < bd <= 16
