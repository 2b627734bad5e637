"""Captures of a tilted or uneven field with its all-in-focus truth: test data for multi-focus fusion and focus
maps (every pixel has its own focus, known exactly)."""

from __future__ import annotations

import numpy as np

from .optics import Camera, add_camera_noise
from .simulate import SimConfig, make_field

__all__ = ["tilted_captures"]


def tilted_captures(seed: int, *, size: int = 160, tilt_um: float = 2.0,
                    offsets_um: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0),
                    camera: Camera | None = None, phase_rad: float = 0.0
                    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Noisy 8-bit captures of one simulated field whose focus varies by ``tilt_um`` peak to peak across it.

    ``phase_rad`` is the specimen's phase (0: a stained, absorbing smear). With phase, planes out of focus gain
    contrast (halos) that a focus measure cannot tell from detail: the most contrasted plane is then not the
    focal one, for fusion as for the thesis's choice of ground-truth plane.

    Returns
    -------
    captures : list of (size, size, 3) uint8
        One per entry of ``offsets_um`` (relative to the field's mean focus).
    truth : (size, size, 3) uint8
        The same specimen rendered flat and in focus everywhere, without noise.
    focus_map : (size, size) float32
        Per-pixel focus offset (µm) of the tilted field.
    """
    rng = np.random.default_rng(int(seed))
    fld = make_field(rng, SimConfig(size=size, focus_map_um=tilt_um, noise=False, phase_rad=phase_rad))
    focus = float(fld.info["focus_um"])
    planes = fld.intensity(focus + np.asarray(offsets_um, dtype=np.float64))
    captures = list(add_camera_noise(planes, camera or Camera(full_well_e=2e4), rng))
    focus_map = np.asarray(fld.focus_map, dtype=np.float32)
    fld.focus_map = None  # the same specimen, flat: every pixel in focus
    truth = np.clip(np.rint(fld.intensity(np.array([focus]))[0] * 255), 0, 255).astype(np.uint8)
    return captures, truth, focus_map
