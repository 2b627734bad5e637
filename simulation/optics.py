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
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from threading import Lock

import cv2
import numpy as np
from numpy.typing import ArrayLike
from virtualfocus.edge.errors import InputError

from . import wotf as _wotf
from .camera import Camera, _Noise, add_camera_noise, standard_normal_fast

__all__ = [
    "CHANNEL_NAMES",
    "Camera",
    "Optics",
    "absorbed_bands",
    "add_camera_noise",
    "best_focus_shift",
    "canvas_len",
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

try:  # scipy.fft keeps float32 and is ~4x faster than numpy.fft here; numpy is the fallback.
    import scipy.fft as _fft

    def _rfft2(a: np.ndarray) -> np.ndarray:
        return _fft.rfft2(a, axes=(-2, -1))

    def _irfft2(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        return _fft.irfft2(a, s=shape, axes=(-2, -1))

    def _fast_len(n: int) -> int:
        return int(_fft.next_fast_len(int(n), real=True))

    def _ifft2(a: np.ndarray) -> np.ndarray:
        return _fft.ifft2(a)

except ImportError:  # pragma: no cover - scipy is part of the training extra, not of the edge runtime

    def _rfft2(a: np.ndarray) -> np.ndarray:
        return np.fft.rfft2(a, axes=(-2, -1)).astype(np.complex64)

    def _irfft2(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        return np.fft.irfft2(a, s=shape, axes=(-2, -1)).astype(np.float32)

    def _fast_len(n: int) -> int:
        import cv2

        return int(cv2.getOptimalDFTSize(int(n)))

    def _ifft2(a: np.ndarray) -> np.ndarray:
        return np.fft.ifft2(a)


def fast_len(n: int) -> int:
    """Smallest FFT-friendly length ≥ ``n`` for scipy/numpy FFTs."""
    return _fast_len(n)


def canvas_len(n: int) -> int:
    """Side of a periodic simulation canvas for an ``n``-pixel field: the smallest even 13-smooth length ≥ ``n``.

    Rendering uses OpenCV's real DFT, which packs even lengths into half-length complex transforms and has fast
    kernels for small prime factors (401 → 416 = 2⁵·13; the odd 405 takes ~1.5× as long). A pure function of
    ``n``, so fields do not depend on the machine.
    """
    m = max(int(n), 2)
    while True:
        if m % 2 == 0:
            k = m
            for p in (2, 3, 5, 7, 11, 13):
                while k % p == 0:
                    k //= p
            if k == 1:
                return m
        m += 1


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


# --------------------------------------------------------------------------------------------------- PSF / OTF
def _check_defocus(defocus_um: float) -> float:
    z = float(defocus_um)
    if not math.isfinite(z):
        raise InputError(f"defocus_um={defocus_um!r}; expected a finite offset in µm")
    return z


@functools.lru_cache(maxsize=16)
def _pupil_grid(h: int, w: int, dx: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices and squared spatial frequencies (cycles/µm)² of the FFT grid, sorted by radius."""
    fy = np.fft.fftfreq(h, d=dx)[:, None]
    fx = np.fft.fftfreq(w, d=dx)[None, :]
    f2 = (fx * fx + fy * fy).ravel()
    order = np.argsort(f2, kind="stable")
    return order, f2[order], np.sqrt(f2[order])


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


class _LRU:
    """Small thread-safe LRU cache for transfer functions (they are ~0.3-1 MB each)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._d: OrderedDict[tuple[object, ...], np.ndarray] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[object, ...]) -> np.ndarray | None:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: tuple[object, ...], value: np.ndarray) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


_OTF_CACHE = _LRU(maxsize=768)
#: Render-ready transfer functions (pass band only, see :func:`_band_otf`); a few hundred per optics and grid.
_BAND_CACHE = _LRU(maxsize=768)
#: Defocus values are rounded to this step (µm) before caching; far below the 0.2 µm plane spacing.
DEFOCUS_QUANTUM_UM = 0.01


def _otf_key(
    optics: Optics, defocus_um: float, wavelength_um: float, shape: tuple[int, int]
) -> tuple[tuple[object, ...], float]:
    z = round(_check_defocus(defocus_um) / DEFOCUS_QUANTUM_UM) * DEFOCUS_QUANTUM_UM
    return (optics, round(z, 4), float(wavelength_um), (int(shape[0]), int(shape[1]))), z


def _real_otf(
    optics: Optics, z: float, wavelength_um: float, shape: tuple[int, int], *, phase: bool = False
) -> np.ndarray:
    """Absorption (or, with ``phase``, phase) weak-object transfer function on the full ``rfft2`` grid, float32.

    Real: the pupil and the condenser disc are centro-symmetric (defocus, spherical aberration, astigmatism along
    the image axes), so the cross-coefficient is even and both transfer functions are real and even in each axis.
    """
    t_abs, t_phase = _wotf.transfer_functions(optics, z, float(wavelength_um), (int(shape[0]), int(shape[1])))
    return t_phase if phase else t_abs


def otf(optics: Optics, defocus_um: float, wavelength_um: float, shape: tuple[int, int]) -> np.ndarray:
    """Optical transfer function on the ``rfft2`` grid of an image of ``shape`` (float32, cached, read-only).

    Multiplying an image's ``rfft2`` by this and inverting is a circular convolution with :func:`psf`. The PSF is
    centro-symmetric (radially symmetric pupil), so the transfer function is real: ``(H, W//2+1)`` float32.
    """
    key, z = _otf_key(optics, defocus_um, wavelength_um, shape)
    hit = _OTF_CACHE.get(key)
    if hit is not None:
        return hit
    o = _real_otf(optics, z, float(wavelength_um), key[3])  # type: ignore[arg-type]
    o.setflags(write=False)
    _OTF_CACHE.put(key, o)
    return o


def otf_band(optics: Optics, wavelength_um: float, shape: tuple[int, int]) -> tuple[int, int, int]:
    """Part of the ``rfft2`` grid of ``shape`` where the transfer function can be non-zero.

    An incoherent system passes spatial frequencies up to twice the pupil radius, ``2·NA_eff/λ`` (the OTF is the
    pupil's autocorrelation). Returns ``(rows_pos, rows_neg, cols)``: rows ``0 … rows_pos−1`` and the last
    ``rows_neg`` rows, columns ``0 … cols−1`` (one row/column of margin). Everywhere else the OTF is exactly zero
    (up to float rounding), so rendering skips it. The full grid if the pass band reaches the Nyquist frequency.
    """
    h, w = int(shape[0]), int(shape[1])
    f = w // 2 + 1
    cut = 2.0 * optics.effective_na * optics.pixel_um / float(wavelength_um)  # cycles per pixel
    if cut >= 0.5:
        return h, 0, f
    rows_pos = math.floor(cut * h) + 2
    rows_neg = math.floor(cut * h) + 1
    if rows_pos + rows_neg >= h:
        return h, 0, f
    return rows_pos, rows_neg, min(math.floor(cut * w) + 2, f)


def _band_rows(a: np.ndarray, band: tuple[int, int, int]) -> np.ndarray:
    """The pass-band rows and columns of ``a`` (``(..., H, F)``), contiguous.

    Row frequencies ``0 … rows_pos−1``, then ``−1, −2, … −rows_neg`` (mirror order: the radially symmetric OTF is
    the same at ``±f``, so the negative block lines up with rows ``1 … rows_neg`` of the positive one and only
    those are stored, see :func:`_band_otf`). The whole grid in natural order if the band is full.
    """
    rows_pos, rows_neg, cols = band
    if rows_neg == 0:
        return np.ascontiguousarray(a[..., :rows_pos, :cols])
    h = a.shape[-2]
    return np.concatenate([a[..., :rows_pos, :cols], a[..., h - 1 : h - rows_neg - 1 : -1, :cols]], axis=-2)


def _interleave(a: np.ndarray) -> np.ndarray:
    """Real ``(..., R, C)`` → float32 ``(..., R, 2C)`` with every value twice, to scale complex64 viewed as float32."""
    return np.repeat(np.asarray(a, dtype=np.float32), 2, axis=-1)


def _as_float_pairs(spectrum: np.ndarray) -> np.ndarray:
    """complex64 ``(..., R, C)`` viewed as float32 ``(..., R, 2C)`` (re, im interleaved), contiguous."""
    return np.ascontiguousarray(spectrum, dtype=np.complex64).view(np.float32)


def _band_otf(
    optics: Optics, defocus_um: float, wavelength_um: float, shape: tuple[int, int], *, phase: bool = False
) -> np.ndarray:
    """Render-ready transfer function: pass band only (:func:`otf_band`), each value twice (:func:`_interleave`).

    Only the non-negative row frequencies ``0 … rows_pos−1`` (the transfer functions are even in each axis: rows
    ``1 … rows_neg`` serve the negative block of :func:`_band_rows` too), unless the band is the full grid. With
    ``phase`` the phase transfer function, with the sign the renderer's ``1 − Σ T·layer`` needs. Cached separately
    from :func:`otf` (keyed the same way plus the kind); about 0.1–0.3 MB each on a 416² canvas.
    """
    key, z = _otf_key(optics, defocus_um, wavelength_um, shape)
    hit = _BAND_CACHE.get((*key, phase))
    if hit is not None:
        return hit
    rows_pos, rows_neg, cols = otf_band(optics, wavelength_um, shape)
    h = int(shape[0])
    both = _wotf.transfer_functions(
        optics, z, float(wavelength_um), (h, int(shape[1])), rows=rows_pos if rows_neg else None, cols=cols
    )
    out = []
    for kind, t in zip((False, True), both, strict=True):  # both kinds at once: a field usually needs both
        o = _interleave(t[:rows_pos, :cols])
        o.setflags(write=False)
        _BAND_CACHE.put((*key, kind), o)
        out.append(o)
    return out[int(phase)]


def clear_cache() -> None:
    """Drop every cached transfer function (frees memory; the next render recomputes them)."""
    _OTF_CACHE.clear()
    _BAND_CACHE.clear()
    _focus_filter_power_cached.cache_clear()
    _wotf.cross_coefficient.cache_clear()


def motion_otf(length_px: float, angle_deg: float, shape: tuple[int, int]) -> np.ndarray:
    """Transfer function of a uniform linear motion of ``length_px`` pixels at ``angle_deg`` (DBMID-style blur).

    The kernel is a box along the motion direction (sinc in frequency), so it conserves intensity.
    """
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    a = math.radians(angle_deg)
    proj = fx * math.cos(a) + fy * math.sin(a)
    return np.sinc(float(length_px) * proj).astype(np.complex64)


# ------------------------------------------------------------------------------------------------- focus shift
@functools.lru_cache(maxsize=8)
def _focus_filter_power_cached(h: int, w: int) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    # ω = [-1 0 0 0 0 0 2 0 0 0 0 0 -1] has frequency response 2 − 2 cos(2π·6f)
    hx = 2.0 - 2.0 * np.cos(2 * np.pi * 6 * fx)
    hy = 2.0 - 2.0 * np.cos(2 * np.pi * 6 * fy)
    return (hx * hx + hy * hy).astype(np.float32)


def _focus_filter_power(shape: tuple[int, int]) -> np.ndarray:
    """|ωx|² + |ωy|² of the thesis's focus-measure filters on the rfft grid (for Parseval focus curves)."""
    return _focus_filter_power_cached(int(shape[0]), int(shape[1]))


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


# --------------------------------------------------------------------------------------------------- rendering
def layer_bands(spectra: np.ndarray, optics: Optics, shape: tuple[int, int]) -> list[np.ndarray]:
    """Pass-band part of layer spectra per channel, in the form :func:`render_bands` takes.

    Parameters
    ----------
    spectra : np.ndarray
        ``(L, 3, H, W//2+1)`` complex ``rfft2`` of each layer's absorbed fraction per channel.

    Returns
    -------
    list of np.ndarray
        Per channel, ``(L, R, 2C)`` float32: the :func:`otf_band` rows and columns, complex values as
        interleaved (re, im) pairs.
    """
    return [
        _as_float_pairs(_band_rows(spectra[:, c], otf_band(optics, optics.wavelengths_um[c], shape)))
        for c in range(3)
    ]


def absorbed_bands(absorbed: np.ndarray, optics: Optics) -> list[np.ndarray]:
    """:func:`layer_bands` straight from the layers ``(L, H, W, 3)`` (real), via OpenCV's real DFT.

    Same values as ``layer_bands(rfft2(layers), …)`` up to float32 rounding, about twice as fast.
    """
    layers = np.asarray(absorbed, dtype=np.float32)
    if layers.ndim != 4 or layers.shape[-1] != 3:
        raise InputError(f"absorbed_bands: layers have shape {layers.shape}; expected (L, H, W, 3)")
    n_layers, h, w = layers.shape[:3]
    bands = [otf_band(optics, optics.wavelengths_um[c], (h, w)) for c in range(3)]
    out = [np.empty((n_layers, b[0] + b[1], 2 * b[2]), np.float32) for b in bands]
    for k in range(n_layers):
        for c, plane in enumerate(cv2.split(layers[k])):
            _ccs_to_band(cv2.dft(plane), bands[c], out[c][k])
    return out


def _ccs_to_band(ccs: np.ndarray, band: tuple[int, int, int], xf: np.ndarray) -> None:
    """Inverse of :func:`_band_to_ccs`: the pass band of a CCS-packed spectrum as (re, im) pairs in ``xf``."""
    h, w = ccs.shape
    rows_pos, rows_neg, cols = band
    pairs = min(cols - 1, (w - 1) // 2)
    if pairs > 0:
        xf[:rows_pos, 2 : 2 * pairs + 2] = ccs[:rows_pos, 1 : 2 * pairs + 1]
        if rows_neg:
            xf[rows_pos:, 2 : 2 * pairs + 2] = ccs[h - 1 : h - rows_neg - 1 : -1, 1 : 2 * pairs + 1]
    packed = [(0, 0)]
    if w % 2 == 0 and cols > w // 2:
        packed.append((w - 1, w // 2))
    top = min(rows_pos - 1, (h - 1) // 2)
    for col, j in packed:
        xf[0, 2 * j] = ccs[0, col]
        xf[0, 2 * j + 1] = 0.0
        if top > 0:
            xf[1 : top + 1, 2 * j : 2 * j + 2] = ccs[1 : 2 * top + 1, col].reshape(top, 2)
        if h % 2 == 0 and rows_pos > h // 2:
            xf[h // 2, 2 * j] = ccs[h - 1, col]
            xf[h // 2, 2 * j + 1] = 0.0
        # negative row frequencies are the conjugates of the stored positive ones
        if rows_neg:  # band order −1, −2, … −rows_neg
            i = np.arange(1, rows_neg + 1)
            xf[rows_pos:, 2 * j] = ccs[2 * i - 1, col]
            xf[rows_pos:, 2 * j + 1] = -ccs[2 * i, col]
        elif rows_pos == h and h > 2:  # full grid, natural order: rows h−n … h−1 are −n … −1
            n = (h - 1) // 2
            i = np.arange(n, 0, -1)
            xf[h - n :, 2 * j] = ccs[2 * i - 1, col]
            xf[h - n :, 2 * j + 1] = -ccs[2 * i, col]


def render_layers(
    spectra: np.ndarray,
    depths_um: np.ndarray,
    offsets_um: np.ndarray,
    optics: Optics,
    shape: tuple[int, int],
    *,
    extra_otf: np.ndarray | None = None,
    crop: tuple[int, int] | None = None,
) -> np.ndarray:
    """Absorbed-light images of a layered field at several focus offsets.

    Parameters
    ----------
    spectra : np.ndarray
        ``(L, 3, H, W//2+1)`` complex64 ``rfft2`` of each layer's absorbed fraction per channel.
    depths_um : np.ndarray
        ``(L,)`` depth of each layer in µm (positive = further along +z).
    offsets_um : np.ndarray
        ``(Z,)`` focus offsets to render, in the same frame as ``depths_um``.
    optics : Optics
    shape : (H, W)
        Real-space size of the (periodic) canvas.
    extra_otf : np.ndarray, optional
        ``(H, W//2+1)`` transfer function applied to every plane (e.g. :func:`motion_otf`).
    crop : (h, w), optional
        Return only the top-left ``h × w`` of the canvas.

    Returns
    -------
    np.ndarray
        ``(Z, h, w, 3)`` float32 absorbed fraction (0 = no absorption), blurred.
    """
    return render_bands(
        layer_bands(spectra, optics, shape),
        depths_um,
        offsets_um,
        optics,
        shape,
        extra_otf=extra_otf,
        crop=crop,
    )


def _render_plan(
    offsets_um: ArrayLike, exposure: ArrayLike | None, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, float]:
    """(plane offsets, per-plane exposure scale, inverse-DFT normalisation) shared by both render paths."""
    offsets = np.atleast_1d(np.asarray(offsets_um, dtype=np.float64))
    scale = (
        np.ones(offsets.size)
        if exposure is None
        else np.asarray(exposure, dtype=np.float64).reshape(offsets.size)
    )
    return offsets, scale, 1.0 / (int(shape[0]) * int(shape[1]))


def render_bands(
    bands: Sequence[np.ndarray],
    depths_um: np.ndarray,
    offsets_um: np.ndarray,
    optics: Optics,
    shape: tuple[int, int],
    *,
    extra_otf: np.ndarray | None = None,
    crop: tuple[int, int] | None = None,
    transmission: np.ndarray | None = None,
    exposure: np.ndarray | None = None,
    phase_layers: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`render_layers` on layer spectra already cut to the pass band (:func:`layer_bands`).

    Per plane and channel, ``Σₖ OTF(z − dₖ − shift) · Aₖ`` is accumulated over the pass band only (the real
    transfer functions scale the interleaved (re, im) spectra as float32: half the work of complex products),
    then inverted with OpenCV's real DFT. A field rendered several times (re-centring, motion) cuts its spectra
    once.

    Parameters
    ----------
    bands, depths_um, offsets_um, optics, shape, extra_otf, crop
        As :func:`layer_bands` / :func:`render_layers`.
    transmission : np.ndarray, optional
        ``(h, w, 3)`` light reaching the camera without absorption. If given, the result is the intensity
        ``exposure · transmission · (1 − absorbed)`` instead of the absorbed fraction, computed plane by plane.
    exposure : np.ndarray, optional
        ``(Z,)`` relative exposure of each plane (with ``transmission``; default 1).
    phase_layers : np.ndarray, optional
        ``(L,)`` bool: layers that hold phase (radians, per channel) instead of absorbed fraction; they are
        rendered with the phase transfer function (default: none).
    """
    offsets, scale, norm = _render_plan(offsets_um, exposure, shape)
    n_z = offsets.size
    h, w = int(shape[0]), int(shape[1])
    ch, cw = crop if crop is not None else (h, w)
    gain = None
    if transmission is not None:
        gain = np.ascontiguousarray(transmission, dtype=np.float32)
        if gain.shape != (ch, cw, 3):
            raise InputError(f"render_bands: transmission has shape {gain.shape}; expected {(ch, cw, 3)}")
    out = np.empty((n_z, ch, cw, 3), dtype=np.float32)
    planes = _absorbed_planes(
        bands, depths_um, offsets, optics, shape, extra_otf=extra_otf, phase_layers=phase_layers
    )
    for i, images in enumerate(planes):
        a = out[i]
        cv2.merge([img[:ch, :cw] for img in images], dst=a)
        if gain is not None:  # intensity = s·g·(1 − a) = s·g − s·g·a
            cv2.multiply(a, gain, dst=a, scale=-float(scale[i]) * norm)
            cv2.scaleAdd(gain, float(scale[i]), a, dst=a)
        else:
            a *= np.float32(norm)
    return out


def render_captures(
    bands: Sequence[np.ndarray],
    depths_um: np.ndarray,
    offsets_um: np.ndarray,
    optics: Optics,
    shape: tuple[int, int],
    *,
    transmission: np.ndarray,
    camera: Camera,
    rng: np.random.Generator,
    exposure: np.ndarray | None = None,
    extra_otf: np.ndarray | None = None,
    extra_planes: np.ndarray | None = None,
    phase_layers: np.ndarray | None = None,
) -> np.ndarray:
    """Noisy camera captures of a layered field: :func:`render_bands` then :func:`add_camera_noise`, fused.

    The same optics and the same noise model, computed channel by channel and plane by plane while the plane is
    in the CPU cache (the float intensity stack is never stored); the camera noise is drawn in that order from
    ``rng`` (deterministic for a given seed). ``transmission`` ``(h, w, 3)`` sets the output size (top-left crop
    of the canvas). ``extra_planes`` (``(Z,)`` bool) limits ``extra_otf`` to some planes.

    Returns
    -------
    np.ndarray
        ``(Z, h, w, 3)`` in ``camera.dtype``.
    """
    offsets, scale, norm = _render_plan(offsets_um, exposure, shape)
    n_z = offsets.size
    h, w = int(shape[0]), int(shape[1])
    gain = np.asarray(transmission, dtype=np.float32)
    ch, cw = gain.shape[:2]
    if gain.shape != (ch, cw, 3) or ch > h or cw > w:
        raise InputError(
            f"render_captures: transmission has shape {gain.shape}; expected (h, w, 3) within {shape}"
        )
    gains = cv2.split(gain)
    noise = _Noise(camera)
    x = np.empty((ch, cw), np.float32)
    # channel by channel (its spectra and transfer functions stay in cache), then interleaved as 8/16-bit
    digital = np.empty((3, n_z, ch, cw), dtype=camera.dtype)
    for c in range(3):
        planes = _channel_planes(
            c,
            bands[c],
            depths_um,
            offsets,
            optics,
            shape,
            extra_otf=extra_otf,
            extra_planes=extra_planes,
            phase_layers=phase_layers,
        )
        for i, img in enumerate(planes):
            s = float(scale[i])
            cv2.multiply(img[:ch, :cw], gains[c], dst=x, scale=-s * norm)  # intensity s·g·(1 − a)
            cv2.scaleAdd(gains[c], s, x, dst=x)
            noise.apply(x.reshape(-1), digital[c, i].reshape(-1), rng, float(x.min()))
    out = np.empty((n_z, ch, cw, 3), dtype=camera.dtype)
    for i in range(n_z):
        cv2.merge([digital[0, i], digital[1, i], digital[2, i]], dst=out[i])
    return out


def _absorbed_planes(
    bands: Sequence[np.ndarray],
    depths_um: np.ndarray,
    offsets: np.ndarray,
    optics: Optics,
    shape: tuple[int, int],
    *,
    extra_otf: np.ndarray | None = None,
    extra_planes: np.ndarray | None = None,
    phase_layers: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Per offset, the three channels' absorbed images on the canvas, unnormalised (× h·w), float32.

    The arrays are reused for the next plane: use them before advancing.
    """
    channels = [
        _channel_planes(
            c,
            bands[c],
            depths_um,
            offsets,
            optics,
            shape,
            extra_otf=extra_otf,
            extra_planes=extra_planes,
            phase_layers=phase_layers,
        )
        for c in range(3)
    ]
    yield from zip(*channels, strict=True)


def _channel_planes(
    c: int,
    spec: np.ndarray,
    depths_um: np.ndarray,
    offsets: np.ndarray,
    optics: Optics,
    shape: tuple[int, int],
    *,
    extra_otf: np.ndarray | None = None,
    extra_planes: np.ndarray | None = None,
    phase_layers: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Per offset, channel ``c``'s absorbed image on the canvas, unnormalised (× h·w), float32.

    ``Σₖ Tₖ(z − dₖ − shift) · Aₖ`` with ``Tₖ`` the absorption transfer function (the phase one for the layers that
    ``phase_layers`` marks as phase, in radians) over the pass band, then OpenCV's inverse real DFT. The array is
    reused for the next plane: use it before advancing.
    """
    depths = np.asarray(depths_um, dtype=np.float64)
    h, w = int(shape[0]), int(shape[1])
    extra_real = None
    extra_full = None
    if extra_otf is not None:
        extra_otf = np.asarray(extra_otf)
        if np.iscomplexobj(extra_otf) and np.any(extra_otf.imag):
            extra_full = extra_otf.astype(np.complex64)
        else:
            extra_real = extra_otf.real
    lam = optics.wavelengths_um[c]
    band = otf_band(optics, lam, shape)
    rows_pos, rows_neg, cols = band
    expected = (depths.size, rows_pos + rows_neg, 2 * cols)
    if spec.shape != expected:
        raise InputError(
            f"render_bands: channel {c} band spectra have shape {spec.shape}; expected {expected} "
            "(see layer_bands)"
        )
    extra_band = None if extra_real is None else _interleave(_band_rows(extra_real, band))
    # OpenCV's packed spectrum (CCS), zero outside the pass band. Usually the positive rows are accumulated
    # straight into it: in a buffer one column wider, the (re, im) pairs of column frequency j ≥ 1 fall on
    # CCS columns 2j−1, 2j; only column frequency 0 is re-packed and the negative rows copied afterwards.
    direct = extra_full is None and rows_neg > 0 and cols - 1 <= (w - 1) // 2
    buf = np.zeros((h, w + 1 if direct else w), np.float32)
    ccs = buf[:, 1:] if direct else buf
    pos = buf[:rows_pos, : 2 * cols] if direct else np.empty((rows_pos, 2 * cols), np.float32)
    neg = np.empty((rows_neg, 2 * cols), np.float32)
    img = np.empty((h, w), np.float32)
    # transfer functions by quantised defocus: planes share most of them (z − d repeats)
    memo: dict[tuple[int, bool], np.ndarray] = {}
    kinds = [False] * depths.size if phase_layers is None else [bool(p) for p in phase_layers]
    if len(kinds) != depths.size:
        raise InputError(f"render: phase_layers has {len(kinds)} entries for {depths.size} layers")
    for i, z in enumerate(offsets):
        extra_here = extra_planes is None or bool(extra_planes[i])
        zc = z - optics.chromatic_shift_um[c]
        otfs = []
        for d, kind in zip(depths, kinds, strict=True):
            q = (round((zc - d) / DEFOCUS_QUANTUM_UM), kind)
            t = memo.get(q)
            if t is None:
                t = memo[q] = _band_otf(optics, zc - d, lam, shape, phase=kind)  # rows 0 … rows_pos−1
            otfs.append(t)
        # one block of rows at a time, so its accumulator stays in the core's cache over the layers:
        # rows 0 … rows_pos−1, then rows −1 … −rows_neg (the OTF's rows 1 … rows_neg, see _band_rows)
        for acc, lo, hi, t_lo in ((pos, 0, rows_pos, 0), (neg, rows_pos, rows_pos + rows_neg, 1)):
            if hi == lo:
                continue
            for k, t in enumerate(otfs):
                if k == 0:
                    cv2.multiply(t[t_lo : t_lo + hi - lo], spec[k, lo:hi], dst=acc)
                else:
                    cv2.accumulateProduct(t[t_lo : t_lo + hi - lo], spec[k, lo:hi], acc)
            if extra_band is not None and extra_here:
                cv2.multiply(acc, extra_band[lo:hi], dst=acc)
        if direct:
            pairs = cols - 1
            top = rows_pos - 1
            col0 = buf[: top + 1, 0:2].copy()  # (re, im) of column frequency 0, rows 0 … top
            ccs[0, 0] = col0[0, 0]
            ccs[1 : 2 * top + 1, 0] = col0[1:].reshape(-1)
            if pairs > 0:
                ccs[h - 1 : h - rows_neg - 1 : -1, 1 : 2 * pairs + 1] = neg[:, 2 : 2 * pairs + 2]
        else:
            part = np.concatenate([pos, neg]) if rows_neg else pos
            if extra_full is not None:
                ccs.fill(0)
            if extra_full is not None and extra_here:
                full = np.zeros((h, w // 2 + 1), np.complex64)
                full_f = full.view(np.float32)
                full_f[:rows_pos, : 2 * cols] = part[:rows_pos]
                full_f[h - 1 : h - rows_neg - 1 : -1, : 2 * cols] = part[rows_pos:]
                full *= extra_full
                _band_to_ccs(full_f, (h, 0, w // 2 + 1), ccs)
            else:
                _band_to_ccs(part, band, ccs)
        cv2.dft(ccs, dst=img, flags=cv2.DFT_INVERSE | cv2.DFT_REAL_OUTPUT)
        yield img


def _band_to_ccs(xf: np.ndarray, band: tuple[int, int, int], ccs: np.ndarray) -> None:
    """Write a pass-band spectrum (rfft layout, (re, im) pairs, :func:`otf_band` rows) into OpenCV's CCS array.

    ``cv2.dft``'s packed format for a real ``h × w`` image (``DFT_INVERSE | DFT_REAL_OUTPUT`` reads it): column
    frequency ``j`` of ``1 … (w−1)//2`` occupies columns ``2j−1, 2j`` (re, im) at every row frequency; column
    frequencies 0 and (even ``w``) ``w/2`` are Hermitian along the rows and packed down columns 0 and ``w−1`` as
    ``re(0), re(1), im(1), re(2), im(2), …`` (plus ``re(h/2)`` for even ``h``). Entries outside the band are left
    as they are (zero).
    """
    h, w = ccs.shape
    rows_pos, rows_neg, cols = band
    pairs = min(cols - 1, (w - 1) // 2)
    if pairs > 0:
        ccs[:rows_pos, 1 : 2 * pairs + 1] = xf[:rows_pos, 2 : 2 * pairs + 2]
        if rows_neg:  # band order −1, −2, …: reversed into the grid's last rows
            ccs[h - 1 : h - rows_neg - 1 : -1, 1 : 2 * pairs + 1] = xf[rows_pos:, 2 : 2 * pairs + 2]
    packed = [(0, 0)]
    if w % 2 == 0 and cols > w // 2:
        packed.append((w - 1, w // 2))
    top = min(rows_pos - 1, (h - 1) // 2)
    for col, j in packed:
        ccs[0, col] = xf[0, 2 * j]
        if top > 0:
            ccs[1 : 2 * top + 1, col] = xf[1 : top + 1, 2 * j : 2 * j + 2].reshape(-1)
        if h % 2 == 0 and rows_pos > h // 2:
            ccs[h - 1, col] = xf[h // 2, 2 * j]
