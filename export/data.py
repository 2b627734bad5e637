"""Fixed simulated data for calibration (INT8) and validation (quality in the manifest).

Stacks come from the project's simulator (``virtualfocus.edge.simulate.simulate_stack``). Until that module is
available a small built-in stand-in is used (discs on a stained background, Gaussian defocus that grows faster on
the positive side); the manifest records which source produced the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from virtualfocus.edge.errors import InputError
from virtualfocus.edge.stack import ZStack

__all__ = ["Calibration", "ValidationSet", "calibration_tensors", "simulated_stacks", "to_model_input"]

OFFSETS_UM = np.round(np.arange(-1.4, 1.2001, 0.2), 1)


@dataclass(frozen=True)
class Calibration:
    """Where INT8 calibration inputs come from.

    Parameters
    ----------
    stacks : int
        Simulated stacks; every plane within ``±max_defocus_um`` becomes one calibration sample.
    seed : int
        Simulator seed (calibration and validation use different seeds).
    size : int
        Side of the square crops fed to the model (padded to the model's multiple).
    max_defocus_um : float
        Planes further from focus than this are not used.
    """

    stacks: int = 8
    seed: int = 1000
    size: int = 360
    max_defocus_um: float = 1.2

    def describe(self) -> dict[str, object]:
        return {"source": stack_source(), "stacks": self.stacks, "seed": self.seed, "size": self.size,
                "max_defocus_um": self.max_defocus_um}


@dataclass(frozen=True)
class ValidationSet:
    """The fixed simulated validation set behind the manifest's quality figures.

    ``interval_um`` is the defocus range evaluated (the thesis's −0.8…0.8 µm interval by default).
    """

    stacks: int = 4
    seed: int = 2000
    size: int = 360
    interval_um: tuple[float, float] = (-0.8, 0.8)

    def describe(self) -> dict[str, object]:
        return {"source": stack_source(), "stacks": self.stacks, "seed": self.seed, "size": self.size,
                "interval_um": list(self.interval_um)}


def stack_source() -> str:
    """``"virtualfocus.edge.simulate"`` when the project simulator is importable, else the built-in stand-in."""
    try:
        from virtualfocus.edge import metrics, simulate  # noqa: F401
    except ImportError:
        return "export-builtin-standin"
    return "virtualfocus.edge.simulate"


def _standin_stack(seed: int, size: int) -> ZStack:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float32)
    img[:] = (232, 205, 215)
    for _ in range(int(size * size / 2500)):  # red cells with central pallor
        c = (int(rng.integers(size)), int(rng.integers(size)))
        r = int(rng.integers(14, 22))
        cv2.circle(img, c, r, (205, 120, 135), -1, lineType=cv2.LINE_AA)
        cv2.circle(img, c, r // 2, (222, 160, 172), -1, lineType=cv2.LINE_AA)
    for _ in range(2):  # white cells with a lobed nucleus
        m = min(40, size // 4)
        c = np.array([rng.integers(m, size - m), rng.integers(m, size - m)])
        cv2.circle(img, (int(c[0]), int(c[1])), 32, (200, 175, 215), -1, lineType=cv2.LINE_AA)
        for _ in range(3):
            d = c + rng.integers(-12, 13, 2)
            cv2.circle(img, (int(d[0]), int(d[1])), int(rng.integers(8, 14)), (110, 50, 140), -1, lineType=cv2.LINE_AA)
    planes = []
    for z in OFFSETS_UM:
        sigma = 0.3 + (3.0 if z > 0 else 2.0) * abs(float(z))
        p = cv2.GaussianBlur(img, (0, 0), sigma) + rng.normal(0, 2.0, img.shape).astype(np.float32)
        planes.append(np.clip(np.rint(p), 0, 255).astype(np.uint8))
    return ZStack(np.stack(planes), OFFSETS_UM.copy(), int(np.argmin(np.abs(OFFSETS_UM))), name=f"standin-{seed}",
                  meta={"source": "export-builtin-standin"})


def _simulated(seed: int, size: int) -> ZStack:
    try:
        from virtualfocus.edge.simulate import SimConfig, simulate_stack

        st = simulate_stack(seed, config=SimConfig(size=size))
    except ImportError:  # the simulator (or a module it needs) is not available in this checkout yet
        return _standin_stack(seed, size)
    planes = np.asarray(st.planes)
    if planes.dtype != np.uint8:  # metrics and calibration work on the 8-bit scale
        hi = 65535.0 if planes.dtype == np.uint16 else 1.0
        planes = np.clip(np.rint(planes.astype(np.float64) / hi * 255.0), 0, 255).astype(np.uint8)
    if planes.ndim == 3:
        planes = np.repeat(planes[..., None], 3, axis=-1)
    return ZStack(planes, st.offsets_um, st.sharp_index, name=st.name, meta=dict(st.meta))


def simulated_stacks(n: int, *, seed: int, size: int) -> list[ZStack]:
    """``n`` simulated RGB uint8 stacks of ``size``×``size`` planes, deterministic in ``seed``."""
    if n < 1 or size < 8:
        raise InputError(f"stacks={n}, size={size}: expected at least 1 stack of at least 8×8 pixels")
    return [_simulated(seed + i, size) for i in range(n)]


def to_model_input(planes: list[np.ndarray] | np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """uint8 HWC RGB capture(s) → ``(1, C·k, H', W')`` float32 in [-1, 1], padded to ``multiple``.

    Uses the runtime's own :class:`~virtualfocus.edge.preprocess.PadCrop` and
    :class:`~virtualfocus.edge.preprocess.Normalizer`, so export measures what the edge runs. Returns the tensor
    and the pads to crop the output with.
    """
    from virtualfocus.edge.preprocess import Normalizer, PadCrop

    arrs = [planes] if isinstance(planes, np.ndarray) else list(planes)
    pc, norm = PadCrop(multiple), Normalizer((-1.0, 1.0), 3)
    xs, pads = [], (0, 0, 0, 0)
    for a in arrs:
        padded, pads = pc.pad(a.astype(np.float32) / np.float32(255.0))
        xs.append(norm.before(padded))
    return np.ascontiguousarray(np.concatenate(xs, 1)), pads


def from_model_output(y: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """``(1, 3, H', W')`` in [-1, 1] → float32 HWC on the 0..255 scale, cropped by ``pads``."""
    from virtualfocus.edge.preprocess import Normalizer, PadCrop

    unit = PadCrop.crop(Normalizer((-1.0, 1.0), 3).after(y), pads)
    return np.clip(unit, 0.0, 1.0) * np.float32(255.0)


def calibration_tensors(cal: Calibration, *, multiple: int, inputs: int = 1, channels: int = 3) -> list[np.ndarray]:
    """Calibration samples ``(1, channels·inputs, S', S')`` from simulated stacks (two-shot: neighbour planes)."""
    if channels != 3:
        raise InputError(f"channels={channels}: simulated calibration data is RGB; pass calibration arrays instead")
    out = []
    for st in simulated_stacks(cal.stacks, seed=cal.seed, size=cal.size):
        for i, z in enumerate(st.offsets_um):
            if abs(z) <= cal.max_defocus_um + 1e-9 and (inputs == 1 or i + 1 < len(st)):
                caps = [st.planes[i]] if inputs == 1 else [st.planes[i], st.planes[i + 1]]
                out.append(to_model_input(caps, multiple)[0])
    return out


def check_calibration_arrays(arrays: list[np.ndarray], *, in_channels: int, multiple: int) -> list[np.ndarray]:
    """Validate user-given calibration tensors: ``(1, in_channels, H, W)`` float32, H and W multiples of ``multiple``."""
    if len(arrays) == 0:
        raise InputError("calibration: no samples given; expected at least one (1, C, H, W) array")
    out = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[0] != 1 or a.shape[1] != in_channels or a.shape[2] % multiple or a.shape[3] % multiple:
            raise InputError(f"calibration sample {i}: shape {a.shape}; expected (1, {in_channels}, H, W) with H and W "
                             f"multiples of {multiple}")
        if not np.isfinite(a).all():
            raise InputError(f"calibration sample {i}: contains NaN or infinity")
        out.append(np.ascontiguousarray(a, dtype=np.float32))
    return out
