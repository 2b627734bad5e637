"""What shapes a simulated stack besides its seed: :class:`SimConfig` and the white-cell types it draws from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from virtualfocus.edge.errors import InputError

from .optics import Camera, Optics

__all__ = ["WBC_TYPES", "SimConfig"]

WBC_TYPES = ("neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil")
# How often each white-cell type is drawn (rarer types over-represented versus blood, for training diversity).
_WBC_FREQUENCY = {
    "neutrophil": 0.45,
    "lymphocyte": 0.30,
    "monocyte": 0.12,
    "eosinophil": 0.08,
    "basophil": 0.05,
}


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes a simulated stack except the seed.

    Parameters
    ----------
    size : int
        Output height and width in pixels (401 as in the thesis; larger fields work the same way).
    z_step_um, z_half_range_um : float
        Plane spacing and half range: planes at ``-z_half_range_um … +z_half_range_um`` (17 by default).
    optics, camera : Optics, Camera
        Microscope and camera (see :mod:`.optics`).
    wbc_types : tuple of str
        White-cell types to draw from (subset of :data:`WBC_TYPES`), one white cell per field near the centre.
    wbc_height_um : (float, float)
        Range of the white cell's depth above the red-cell layer (µm); white cells are thicker and sit higher.
    rbc_depth_sd_um : float
        Spread of red-cell depths around their layer (µm).
    rbc_coverage : (float, float)
        Range of the fraction of the field covered by red cells.
    platelets : (int, int)
        Range of the number of platelets per 401×401 area.
    stain_variation : float
        Scale of per-field stain and illumination variation (0 = always the same colours).
    focus_jitter_um : float
        The true best focus falls uniformly within ±this of the nominal 0 plane (sub-step focus error).
    flicker : float
        Relative RMS exposure variation between planes (lamp/exposure jitter). Real stacks differ by ~1 % in
        brightness from plane to plane; it is what makes the thesis's ±0.2 µm inputs score MSE ≈ 4.5 while SSIM
        stays 0.998. The ground-truth plane is the reference (no flicker).
    motion_probability : float
        Probability that a stack gets linear motion blur (DBMID); applied to every plane except the ground truth.
    motion_length_px : (float, float)
        Range of the motion-blur length in pixels.
    focus_map_um : float
        Peak-to-peak amplitude of a smooth per-pixel focus variation over the field (MMDF focus maps; 0 = flat).
        The per-tile mean offsets are stored in ``meta["focus_map_tiles_um"]``.
    focus_map_tiles : int
        Tiles per side of the stored focus map.
    vignetting : float
        Relative illumination fall-off at the field corners.
    noise : bool
        Camera noise on (Poisson + read noise) or off (exact rendering, for tests and the sharp references).
    phase_rad : float
        Phase delay (radians at the reference wavelength) of the densest cells: cells are phase objects too
        (thickness × refractive-index difference); each layer's phase follows its mean absorbed fraction. 0 =
        absorption only.
    debris : (int, int)
        Range of the number of small dust/stain-precipitate specks per 401×401 area.
    """

    size: int = 401
    z_step_um: float = 0.2
    z_half_range_um: float = 1.6
    optics: Optics = field(default_factory=Optics)
    camera: Camera = field(default_factory=Camera)
    wbc_types: tuple[str, ...] = WBC_TYPES
    wbc_height_um: tuple[float, float] = (0.1, 0.4)
    rbc_depth_sd_um: float = 0.06
    rbc_coverage: tuple[float, float] = (0.30, 0.55)
    platelets: tuple[int, int] = (2, 8)
    stain_variation: float = 1.0
    focus_jitter_um: float = 0.05
    flicker: float = 0.009
    motion_probability: float = 0.0
    motion_length_px: tuple[float, float] = (3.0, 12.0)
    focus_map_um: float = 0.0
    focus_map_tiles: int = 8
    vignetting: float = 0.06
    noise: bool = True
    phase_rad: float = 0.4
    debris: tuple[int, int] = (0, 4)

    def __post_init__(self) -> None:
        if self.size < 16:
            raise InputError(f"SimConfig.size={self.size}; expected at least 16 pixels")
        if self.z_step_um <= 0 or self.z_half_range_um < self.z_step_um:
            raise InputError(
                f"SimConfig(z_step_um={self.z_step_um}, z_half_range_um={self.z_half_range_um}); "
                "expected a positive step no larger than the half range"
            )
        bad = [t for t in self.wbc_types if t not in WBC_TYPES]
        if bad or not self.wbc_types:
            raise InputError(
                f"SimConfig.wbc_types={self.wbc_types}; expected a non-empty subset of {WBC_TYPES}"
            )
        if not 0 <= self.motion_probability <= 1:
            raise InputError(f"SimConfig.motion_probability={self.motion_probability}; expected 0..1")
        if self.focus_map_um < 0:
            raise InputError(f"SimConfig.focus_map_um={self.focus_map_um}; expected ≥ 0 µm")

    @property
    def offsets_um(self) -> np.ndarray:
        """Nominal focus offsets of the planes (µm), symmetric around 0."""
        n = round(self.z_half_range_um / self.z_step_um)
        return np.round(np.arange(-n, n + 1) * self.z_step_um, 6)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optics"] = self.optics.to_dict()
        d["camera"] = self.camera.to_dict()
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
