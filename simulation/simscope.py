"""A simulated microscope for pymmcore-plus: the real ``CMMCorePlus`` MDA runner over the project's optics simulator.

pymmcore-plus 0.18's ``UniMMCore`` accepts pure-Python devices next to (or instead of) C++ device adapters. This
module loads four of them — a camera, a focus (Z) stage, an XY stage and a lamp shutter — whose camera renders
each snap with :class:`~virtualfocus.simulation.simulate.SmearField` at the true defocus of the moment::

    defocus_um = z_stage − z_focus(x, y, frame, t)
    z_focus    = focus_um + tilt · (x, y) + field_jitter(field) + drift_um_per_frame · frame + drift_um_per_s · t

so that the whole capture → restore path runs for real — ``useq.MDASequence`` events, the library's own
``MDARunner`` and ``MDAEngine``, ``frameReady`` signals — on a machine without hardware and without downloading
Micro-Manager device adapters::

    scope = SimulatedMicroscope(ScopeConfig(drift_um_per_frame=0.02))
    proc = attach(scope.core, FocusRuntime.load())
    scope.run(useq.MDASequence(stage_positions=[(0, 0, 0), (500, 0, 0)], time_plan={"interval": 0, "loops": 10}))

Every frame's metadata carries the ground truth (``virtualfocus.sim.defocus_um``, ``.focus_z_um``, ``.field``,
``.frame``); :attr:`SimulatedMicroscope.truth` keeps the last captures. ``ScopeConfig.faults`` injects bad frames
(wrong shape or dtype, NaN, stripped metadata or event index) to test what an integration does with them.

Each field under the objective (XY position rounded to 1 µm) is generated once from the seed and the position.
Renders are quantised to ``z_quantum_um`` and cached (a new defocus of a new field costs a few hundred ms the
first time, then ~4 ms). Needs the ``mm`` extra (pymmcore-plus).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from virtualfocus.edge.errors import InputError

from .camera import quantize
from .optics import Camera, add_camera_noise
from .simulate import SimConfig, SmearField, make_field

try:
    from pymmcore_plus.experimental.unicore import (
        ShutterDevice,
        SimpleCameraDevice,
        StageDevice,
        UniMMCore,
        XYStageDevice,
    )
    from pymmcore_plus.mda import MDAEngine
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("virtualfocus.simulation.simscope needs pymmcore-plus ≥ 0.18: "
                      "pip install 'virtualfocus[mm]'") from e

__all__ = ["FAULTS", "Capture", "ScopeConfig", "SimulatedMicroscope"]

log = logging.getLogger("virtualfocus")

#: Fault kinds :attr:`ScopeConfig.faults` can inject.
FAULTS = ("shape", "dtype", "nan", "metadata", "index")


@dataclass(frozen=True)
class ScopeConfig:
    """The simulated instrument.

    Parameters
    ----------
    size : int
        Camera height and width (pixels, RGB uint8 by default).
    seed : int
        Seeds fields, focus jitter and camera noise.
    focus_um : float
        Stage z at which the slide's origin is in focus at the start.
    tilt_um_per_mm : (float, float)
        Slide tilt: focus change per mm of stage x and y.
    field_jitter_um : float
        Per-field random focus offset (standard deviation, µm): uneven smear thickness.
    drift_um_per_frame, drift_um_per_s : float
        Focus drift (thermal, mechanical) by captured frame and by wall-clock second.
    noise : bool
        Camera noise (shot + read noise of :class:`~virtualfocus.simulation.optics.Camera`).
    camera : Camera
        Bit depth and noise; 12/16-bit cameras give uint16 frames.
    z_quantum_um : float
        Defocus is rounded to this step before rendering (renders are cached per field and step).
    cache_renders : int
        Noise-free renders kept (each ``size² × 3 × 4`` bytes).
    max_fields : int
        Fields kept in memory (each ~20 MB at 360²); older ones are regenerated on demand, identically.
    exposure_ms : float
        Reported exposure; no real waiting happens.
    faults : tuple of (int, str)
        ``(frame_number, kind)`` pairs: that frame is delivered broken, kind in :data:`FAULTS`.
    sim : SimConfig, optional
        Simulator settings of the fields (stain, cells, optics).
    """

    size: int = 360
    seed: int = 0
    focus_um: float = 0.0
    tilt_um_per_mm: tuple[float, float] = (0.0, 0.0)
    field_jitter_um: float = 0.0
    drift_um_per_frame: float = 0.0
    drift_um_per_s: float = 0.0
    noise: bool = True
    camera: Camera = field(default_factory=Camera)
    z_quantum_um: float = 0.05
    cache_renders: int = 32
    max_fields: int = 8
    exposure_ms: float = 10.0
    faults: tuple[tuple[int, str], ...] = ()
    sim: SimConfig | None = None

    def __post_init__(self) -> None:
        if self.size < 32:
            raise InputError(f"ScopeConfig.size={self.size}; expected at least 32 pixels")
        if not self.z_quantum_um > 0:
            raise InputError(f"ScopeConfig.z_quantum_um={self.z_quantum_um}; expected a positive step in µm")
        bad = [k for _, k in self.faults if k not in FAULTS]
        if bad:
            raise InputError(f"ScopeConfig.faults kinds {bad} unknown; expected any of {FAULTS}")


@dataclass(frozen=True)
class Capture:
    """Ground truth of one snap."""

    frame: int
    x_um: float
    y_um: float
    z_um: float
    focus_z_um: float
    defocus_um: float
    field: tuple[int, int]
    t_s: float


# ------------------------------------------------------------------------------------------------------ devices
class _SimCamera(SimpleCameraDevice):  # type: ignore[misc]
    def __init__(self, scope: SimulatedMicroscope) -> None:
        super().__init__()
        self._scope = scope
        self._exposure = scope.config.exposure_ms

    def get_exposure(self) -> float:
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        self._exposure = float(exposure)

    def sensor_shape(self) -> tuple[int, int, int]:
        s = self._scope.config.size
        return (s, s, 3)

    def dtype(self) -> Any:
        return self._scope.config.camera.dtype

    def snap(self, buffer: np.ndarray) -> dict[str, Any]:
        cap, img = self._scope._snap()
        buffer[:] = img
        return {"virtualfocus.sim.defocus_um": cap.defocus_um}


class _SimZ(StageDevice):  # type: ignore[misc]
    def __init__(self, z: float) -> None:
        super().__init__()
        self.z = float(z)

    def home(self) -> None:
        self.z = 0.0

    def stop(self) -> None:
        pass

    def set_origin(self) -> None:
        self.z = 0.0

    def set_position_um(self, val: float) -> None:
        self.z = float(val)

    def get_position_um(self) -> float:
        return self.z


class _SimXY(XYStageDevice):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.xy = (0.0, 0.0)

    def home(self) -> None:
        self.xy = (0.0, 0.0)

    def stop(self) -> None:
        pass

    def set_origin_x(self) -> None:
        self.xy = (0.0, self.xy[1])

    def set_origin_y(self) -> None:
        self.xy = (self.xy[0], 0.0)

    def set_position_um(self, x: float, y: float) -> None:
        self.xy = (float(x), float(y))

    def get_position_um(self) -> tuple[float, float]:
        return self.xy


class _SimLamp(ShutterDevice):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.is_open = False

    def get_open(self) -> bool:
        return self.is_open

    def set_open(self, open: bool) -> None:
        self.is_open = bool(open)


class _SimEngine(MDAEngine):  # type: ignore[misc]
    """The library's MDAEngine, adding ground-truth metadata and injecting the configured faults."""

    def __init__(self, mmcore: Any, scope: SimulatedMicroscope) -> None:
        super().__init__(mmcore)
        self._scope = scope
        # One snap per frame, so that every frame's ground truth is known exactly (a simulated camera gains nothing
        # from hardware-sequenced acquisition).
        self.use_hardware_sequencing = False

    def exec_single_event(self, event: Any) -> Any:
        for payload in super().exec_single_event(event):
            if payload is None:
                yield None
                continue
            img, ev, frame_meta = payload
            meta: dict[str, Any] = dict(frame_meta)
            cap = self._scope.last_capture
            if cap is not None:
                meta["virtualfocus.sim.defocus_um"] = round(cap.defocus_um, 4)
                meta["virtualfocus.sim.focus_z_um"] = round(cap.focus_z_um, 4)
                meta["virtualfocus.sim.field"] = list(cap.field)
                meta["virtualfocus.sim.frame"] = cap.frame
                fault = self._scope._faults.get(cap.frame)
                if fault is not None:
                    img, ev, meta = _inject(fault, img, ev, meta)
            yield (img, ev, meta)


def _inject(kind: str, img: np.ndarray, ev: Any, meta: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    if kind == "shape":
        img = img[:8, :8].copy()  # smaller than any model accepts
    elif kind == "dtype":
        img = img.astype(np.int32)
    elif kind == "nan":
        img = np.full(img.shape, np.nan, np.float32)
    elif kind == "metadata":
        meta = {}  # the runner adds runner_time_ms back; everything else is gone
    elif kind == "index":
        ev = ev.model_copy(update={"index": {}})
    return img, ev, meta


# ---------------------------------------------------------------------------------------------------- microscope
class SimulatedMicroscope:
    """A ``UniMMCore`` with simulated camera, focus stage, XY stage and lamp, driven by the real MDA runner.

    Parameters
    ----------
    config : ScopeConfig

    Attributes
    ----------
    core : pymmcore_plus.experimental.unicore.UniMMCore
        A real core: ``core.mda.run(sequence)``, ``core.snapImage()``, ``core.setZPosition(z)`` all work.
    truth : collections.deque of Capture
        The last 2048 snaps' ground truth (constant memory).
    """

    def __init__(self, config: ScopeConfig | None = None) -> None:
        self.config = cfg = config or ScopeConfig()
        self._faults = dict(cfg.faults)
        self._rng = np.random.default_rng([cfg.seed, 1])
        self._fields: OrderedDict[tuple[int, int], tuple[SmearField, float]] = OrderedDict()
        self._renders: OrderedDict[tuple[tuple[int, int], int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._frame = 0
        self._t0 = time.monotonic()
        self.truth: deque[Capture] = deque(maxlen=2048)
        self.last_capture: Capture | None = None
        # A path without device adapters: skips pymmcore-plus's search for a Micro-Manager installation.
        self.core = UniMMCore(mm_path=str(Path(__file__).resolve().parent))
        self.camera = _SimCamera(self)
        self.z_stage = _SimZ(cfg.focus_um)
        self.xy_stage = _SimXY()
        self.lamp = _SimLamp()
        for label, dev in (("Camera", self.camera), ("Z", self.z_stage), ("XY", self.xy_stage), ("Lamp", self.lamp)):
            self.core.loadPyDevice(label, dev)
        self.core.initializeAllDevices()
        self.core.setCameraDevice("Camera")
        self.core.setFocusDevice("Z")
        self.core.setXYStageDevice("XY")
        self.core.setShutterDevice("Lamp")
        self.core.mda.set_engine(_SimEngine(self.core, self))

    # -- the optics ------------------------------------------------------------------------------------------
    def _field(self, key: tuple[int, int]) -> tuple[SmearField, float]:
        got = self._fields.get(key)
        if got is not None:
            self._fields.move_to_end(key)
            return got
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 2, key[0] & 0xFFFFFFFF, key[1] & 0xFFFFFFFF])
        f = make_field(rng, cfg.sim, size=cfg.size)
        jitter = float(rng.normal(0.0, cfg.field_jitter_um)) if cfg.field_jitter_um > 0 else 0.0
        self._fields[key] = (f, jitter)
        while len(self._fields) > cfg.max_fields:
            self._fields.popitem(last=False)
        return f, jitter

    def focus_z(self, x_um: float, y_um: float, *, frame: int | None = None, t_s: float | None = None) -> float:
        """Stage z (µm) at which the field at (x, y) is in focus at ``frame`` / ``t_s`` (default: now)."""
        cfg = self.config
        key = (round(x_um), round(y_um))
        _, jitter = self._field(key)
        frame = self._frame if frame is None else frame
        t_s = time.monotonic() - self._t0 if t_s is None else t_s
        tx, ty = cfg.tilt_um_per_mm
        return (cfg.focus_um + (tx * x_um + ty * y_um) / 1000.0 + jitter + cfg.drift_um_per_frame * frame
                + cfg.drift_um_per_s * t_s)

    def _snap(self) -> tuple[Capture, np.ndarray]:
        cfg = self.config
        with self._lock:
            frame = self._frame
            self._frame += 1
            x, y = self.xy_stage.xy
            z = self.z_stage.z
            t_s = time.monotonic() - self._t0
            key = (round(x), round(y))
            fz = self.focus_z(x, y, frame=frame, t_s=t_s)
            defocus = z - fz
            q = round(defocus / cfg.z_quantum_um)
            inten = self._renders.get((key, q))
            if inten is None:
                fld, _ = self._field(key)
                inten = fld.intensity([q * cfg.z_quantum_um])
                self._renders[(key, q)] = inten
                while len(self._renders) > cfg.cache_renders:
                    self._renders.popitem(last=False)
            else:
                self._renders.move_to_end((key, q))
            if cfg.noise:
                img = add_camera_noise(inten, cfg.camera, self._rng)[0]
            else:
                img = quantize(inten[0], cfg.camera)
            cap = Capture(frame, x, y, z, fz, defocus, key, t_s)
            self.truth.append(cap)
            self.last_capture = cap
        return cap, img

    # -- acquisition -----------------------------------------------------------------------------------------
    def run(self, events: Iterable[Any], **kwargs: Any) -> None:
        """Run an MDA (a ``useq.MDASequence`` or events) on the calling thread with the real ``MDARunner``."""
        self.core.mda.run(events, **kwargs)

    def render(self, defocus_um: float, *, x_um: float = 0.0, y_um: float = 0.0) -> np.ndarray:
        """A capture of the field at (x, y) at a given defocus, outside any acquisition (for calibration)."""
        fld, _ = self._field((round(x_um), round(y_um)))
        inten = fld.intensity([defocus_um])
        if self.config.noise:
            return add_camera_noise(inten, self.config.camera, self._rng)[0]
        return quantize(inten[0], self.config.camera)
