"""Fixed simulated data for calibration (INT8) and validation (quality in the manifest).

Stacks come from the project's simulator (``virtualfocus.simulation.simulate.simulate_stack``), seeded, so every
export of a model is measured on the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.zstacks.stack import ZStack

__all__ = [
    "Calibration",
    "ValidationSet",
    "calibration_tensors",
    "check_calibration_arrays",
    "from_model_output",
    "simulated_stacks",
    "to_model_input",
]


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
    """Where validation and calibration stacks come from."""
    return "virtualfocus.simulation.simulate"


def _simulated(seed: int, size: int) -> ZStack:
    from virtualfocus.simulation.simulate import SimConfig, simulate_stack

    st = simulate_stack(seed, config=SimConfig(size=size))
    planes = np.asarray(st.planes)
    if planes.dtype != np.uint8:  # metrics, calibration and the runtime's 8-bit path
        planes = np.clip(np.rint(planes.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
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
    """``(1, 3, H', W')`` in [-1, 1] → uint8 HWC RGB cropped by ``pads`` (what the runtime returns for uint8)."""
    from virtualfocus.edge.preprocess import Normalizer, PadCrop

    unit = PadCrop.crop(Normalizer((-1.0, 1.0), 3).after(y), pads)
    return np.rint(np.clip(unit, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)


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
