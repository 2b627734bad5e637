"""Bright-field microscope optics for simulated defocus: partially coherent imaging and layered rendering.

The model is scalar, partially coherent bright-field imaging with Köhler illumination (:mod:`.wotf`):

* the objective pupil is a disc of radius ``NA/λ`` with the exact (non-paraxial) angular-spectrum defocus phase
  ``2π z (√((n/λ)² − f²) − n/λ)`` in an immersion medium of index ``n``; the condenser aperture is a real
  parameter, a disc of radius ``NA_cond/λ`` (coherence ``σ = NA_cond/NA``), not folded into an effective NA;
* a specimen layer is a complex transmission: an absorbed fraction per channel and (optionally) a phase delay
  (thickness × refractive-index difference). Each is imaged through its **weak-object transfer function**
  (absorption and phase WOTF from the transmission cross-coefficient of pupil and source; Streibl 1985, Tian &
  Waller 2015), the fast path; :func:`.wotf.abbe_image` (Abbe's sum over source points) is the reference. In
  focus a thin phase object is invisible; out of focus it gives contrast of opposite sign on the two sides;
* primary spherical aberration ``W = s · √5 (6ρ⁴ − 6ρ² + 1)`` (Zernike Z₄⁰, ``s`` in waves RMS) and an index
  mismatch focal shift on the positive side make defocus asymmetric; astigmatism along the image axes
  (Zernike Z₂²) is available too. The default (``s = −0.015``, focal shift 0.82) blurs the negative side faster,
  the thesis's shape (its table 6.1: MSE 36 at −1.2 µm vs 27 at +1.2 µm);
* each colour channel has its own wavelength and an axial chromatic focus shift (green in the middle);
* the absorption transfer function is 1 at zero frequency, so blurring conserves the mean intensity.

:mod:`.randomize` draws all of this (and the camera) per stack; :mod:`.realism` measures how well the result
matches real through-focus series.

Rendering is layered: a field is a set of thin layers at known depths (the absorbed-light fraction of each layer,
per channel, and phase layers in radians); a capture at focus offset ``z`` is
``bg · (1 − Σₖ T_abs(z − dₖ) ∗ Aₖ − Σⱼ T_phase(z − dⱼ) ∗ φⱼ)``, computed in the Fourier domain.
Optical transfer functions depend only on (optics, defocus, wavelength, grid) and are cached (bounded LRU), so
stacks render fast after the first few. Three exact shortcuts keep a 401×401×17-plane RGB stack at a few tens of
milliseconds: pupil and source are centro-symmetric, so both transfer functions are real (float32 products
instead of complex ones); a partially coherent system passes no frequency above ``(NA + min(NA_cond, NA))/λ``
(``2·effective_na/λ``), so only that band of each spectrum is accumulated; and OpenCV's real DFT (even, 13-smooth canvas sizes, see :func:`canvas_len`) does the transforms.
Camera noise (:func:`add_camera_noise`) is Poisson in electrons, in its normal approximation above 20 e⁻.

Offsets are in µm with the thesis's sign convention as stored in :class:`~virtualfocus.zstacks.stack.ZStack`.

Where the code lives: :class:`Optics`, :func:`psf` and :func:`best_focus_shift` here; transfer functions, grid
sizes and their caches in :mod:`.transfer`; the layered renderer in :mod:`.render`; camera noise in :mod:`.camera`.
Every public name of those is importable from this module too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from virtualfocus.edge.errors import InputError

from . import wotf as _wotf
from .camera import Camera, add_camera_noise, standard_normal_fast
from .render import absorbed_bands, layer_bands, render_bands, render_captures, render_layers
from .transfer import (
    DEFOCUS_QUANTUM_UM,
    _check_defocus,
    _fast_len,
    _focus_filter_power,
    canvas_len,
    clear_cache,
    fast_len,
    motion_otf,
    otf,
    otf_band,
)

__all__ = [
    "CHANNEL_NAMES",
    "DEFOCUS_QUANTUM_UM",
    "Camera",
    "Optics",
    "absorbed_bands",
    "add_camera_noise",
    "best_focus_shift",
    "canvas_len",
    "clear_cache",
    "fast_len",
    "layer_bands",
    "motion_otf",
    "otf",
    "otf_band",
    "psf",
    "render_bands",
    "render_captures",
    "render_layers",
    "standard_normal_fast",
]

CHANNEL_NAMES = ("R", "G", "B")


@dataclass(frozen=True)
class Optics:
    """Optical parameters of the simulated bright-field microscope (defaults: 100×/1.25 oil, blood smear).

    Parameters
    ----------
    na : float
        Numerical aperture of the objective.
    condenser_na : float
        Numerical aperture of the condenser (Köhler illumination); ``σ = condenser_na / na`` sets the coherence:
        small σ rings and shows phase strongly, σ ≥ 1 images absorption incoherently and hides thin phase.
    immersion_index : float
        Refractive index of the immersion medium (oil 1.515, air 1.0); must exceed ``na``.
    wavelengths_um : tuple of 3 floats
        Centre wavelength of the R, G, B channels in µm.
    chromatic_shift_um : tuple of 3 floats
        Axial focus shift of each channel in µm (axial chromatic aberration; green is the reference).
    spherical_waves : float
        Primary spherical aberration, Zernike Z₄⁰ coefficient in waves RMS at ``reference_wavelength_um``.
        Makes defocus asymmetric; 0 gives a PSF symmetric in ±z.
    focal_shift_positive : float
        Focal displacement per µm of nominal defocus on the positive side (the negative side is 1:1). Index
        mismatch between immersion oil and specimen moves the focal plane by less than the stage travel on one
        side (Gibson & Lanni's "focal shift"); 0.82 reproduces the thesis's asymmetry (+1.2 µm ≈ −1.0 µm).
        1.0 together with ``spherical_waves=0`` gives an aberration-free, ±z-symmetric system.
    reference_wavelength_um : float
        Wavelength at which ``spherical_waves`` is stated.
    pixel_um : float
        Object-space pixel size in µm (camera pixel / magnification).
    astigmatism_waves : float
        Astigmatism along the image axes, Zernike Z₂² coefficient in waves RMS at ``reference_wavelength_um``.
    """

    na: float = 1.25
    condenser_na: float = 0.90
    immersion_index: float = 1.515
    wavelengths_um: tuple[float, float, float] = (0.61, 0.54, 0.46)
    chromatic_shift_um: tuple[float, float, float] = (0.08, 0.0, -0.08)
    spherical_waves: float = -0.015
    focal_shift_positive: float = 0.82
    reference_wavelength_um: float = 0.54
    pixel_um: float = 0.1
    astigmatism_waves: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.na < self.immersion_index:
            raise InputError(
                f"Optics.na={self.na}; expected 0 < na < immersion_index ({self.immersion_index})"
            )
        if not 0 <= self.condenser_na <= self.immersion_index:
            raise InputError(
                f"Optics.condenser_na={self.condenser_na}; expected 0 ≤ condenser_na ≤ immersion_index"
            )
        if len(self.wavelengths_um) != 3 or min(self.wavelengths_um) <= 0:
            raise InputError(
                f"Optics.wavelengths_um={self.wavelengths_um}; expected three positive µm values (R, G, B)"
            )
        if len(self.chromatic_shift_um) != 3:
            raise InputError(
                f"Optics.chromatic_shift_um={self.chromatic_shift_um}; expected three µm values (R, G, B)"
            )
        if not 0 < self.focal_shift_positive <= 2:
            raise InputError(
                f"Optics.focal_shift_positive={self.focal_shift_positive}; expected 0 < value ≤ 2"
            )
        if self.pixel_um <= 0:
            raise InputError(f"Optics.pixel_um={self.pixel_um}; expected a positive pixel size in µm")
        # tuples may arrive as lists from JSON: normalise so the object stays hashable (it is a cache key)
        object.__setattr__(self, "wavelengths_um", tuple(float(w) for w in self.wavelengths_um))
        object.__setattr__(self, "chromatic_shift_um", tuple(float(c) for c in self.chromatic_shift_um))

    @property
    def effective_na(self) -> float:
        """Half the partially coherent cut-off: ``(na + min(condenser_na, na)) / 2`` (images pass no frequency
        above ``2·effective_na/λ``)."""
        return 0.5 * (self.na + min(self.condenser_na, self.na))

    @property
    def sigma(self) -> float:
        """Coherence parameter ``σ = condenser_na / na`` (0: coherent, ≥ 1: incoherent for absorption)."""
        return self.condenser_na / self.na

    def axial(self, defocus_um: float) -> float:
        """Physical focal displacement for a nominal defocus (applies :attr:`focal_shift_positive`)."""
        return defocus_um * self.focal_shift_positive if defocus_um > 0 else defocus_um

    def to_dict(self) -> dict[str, object]:
        """Plain-JSON form (stored in stack metadata)."""
        return {
            "na": self.na,
            "condenser_na": self.condenser_na,
            "immersion_index": self.immersion_index,
            "wavelengths_um": list(self.wavelengths_um),
            "chromatic_shift_um": list(self.chromatic_shift_um),
            "spherical_waves": self.spherical_waves,
            "focal_shift_positive": self.focal_shift_positive,
            "reference_wavelength_um": self.reference_wavelength_um,
            "pixel_um": self.pixel_um,
            "astigmatism_waves": self.astigmatism_waves,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Optics:
        """Inverse of :meth:`to_dict`; unknown keys are rejected."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise InputError(f"optics: unknown keys {sorted(unknown)}; accepted: {sorted(known)}")
        return cls(**d)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------------- PSF
def _psf_full(optics: Optics, defocus_um: float, wavelength_um: float, shape: tuple[int, int]) -> np.ndarray:
    """Image of a weak absorbing point on the full grid of ``shape`` (origin at [0, 0], float64, sums to 1).

    The inverse transform of the absorption weak-object transfer function (:func:`.wotf.transfer_functions`); for a
    wide condenser it is the incoherent PSF, for a narrow one it rings (and may dip below zero).
    """
    t_abs, _ = _wotf.transfer_functions(optics, defocus_um, wavelength_um, (int(shape[0]), int(shape[1])))
    p = np.fft.irfft2(t_abs.astype(np.float64), s=(int(shape[0]), int(shape[1])))
    return p / p.sum()


def psf(
    optics: Optics,
    defocus_um: float,
    *,
    wavelength_um: float | None = None,
    size: int = 65,
) -> np.ndarray:
    """Point-spread function at ``defocus_um`` as a centred ``size × size`` kernel that sums to 1.

    Parameters
    ----------
    optics : Optics
    defocus_um : float
        Distance of the focal plane from the object in µm (the capture's focus offset minus the object depth).
    wavelength_um : float, optional
        Defaults to the green channel's wavelength.
    size : int
        Odd kernel size in pixels. The PSF is computed on a grid of at least 2×``size`` and cropped, then
        renormalised, so a kernel too small for a large defocus loses its tails but still sums to 1.

    Returns
    -------
    np.ndarray
        ``(size, size)`` float64, centre at ``[size // 2, size // 2]``, sum 1.

    Example
    -------
    >>> k = psf(Optics(), 0.8)
    >>> round(float(k.sum()), 6)
    1.0
    """
    z = _check_defocus(defocus_um)
    if size < 1 or size % 2 == 0:
        raise InputError(f"psf size={size}; expected an odd positive number of pixels")
    lam = optics.wavelengths_um[1] if wavelength_um is None else float(wavelength_um)
    n = max(128, _fast_len(2 * size))
    full = np.fft.fftshift(_psf_full(optics, z, lam, (n, n)))
    c = n // 2
    r = size // 2
    k = full[c - r : c + r + 1, c - r : c + r + 1]
    return k / k.sum()


# ------------------------------------------------------------------------------------------------------------- focus shift
@functools.lru_cache(maxsize=256)
def best_focus_shift(optics: Optics, *, channel: int = 1, step_um: float = 0.01) -> float:
    """Defocus (µm) at which the thesis focus measure of a white-noise object peaks for ``channel``.

    With spherical aberration the plane of best focus moves away from the paraxial focus; the simulator puts the
    nominal 0 µm plane there so that, as in the thesis, the focus curve peaks at 0. Searched over ± three depths
    of field (``n·λ/NA²``) on a coarse grid, refined by a parabola through the best three points, rounded to
    ``step_um``.
    """
    shape = (96, 96)
    weight = _focus_filter_power(shape)
    lam = optics.wavelengths_um[channel]

    def score(z: float) -> float:
        t_abs, _ = _wotf.transfer_functions(optics, z, lam, shape)
        return float(np.sum(t_abs.astype(np.float64) ** 2 * weight))

    dof = optics.immersion_index * lam / (optics.na * optics.na)
    h = max(round(3.0 * dof / 12, 3), step_um)
    zs = np.arange(-12, 13) * h
    sc = np.array([score(float(z)) for z in zs])
    i = int(np.clip(np.argmax(sc), 1, len(zs) - 2))
    a, b, c = sc[i - 1 : i + 2]
    den = a - 2 * b + c
    frac = 0.5 * (a - c) / den if den < 0 else 0.0
    best = float(zs[i]) + float(np.clip(frac, -1, 1)) * h
    return round(round(best / step_um) * step_um, 6) + optics.chromatic_shift_um[channel]
