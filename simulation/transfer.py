"""Transfer functions of the simulated optics on FFT grids, and their caches.

Optical transfer functions depend only on (optics, defocus, wavelength, grid), so they are cached (bounded,
thread-safe LRU; defocus rounded to :data:`DEFOCUS_QUANTUM_UM`) and stacks render fast after the first few. Both
are real (pupil and condenser are centro-symmetric) and zero beyond the partially coherent cut-off
``2·effective_na/λ``, so the renderer (:mod:`.render`) takes only that pass band (:func:`otf_band`), as float32.
The transfer functions themselves come from :mod:`.wotf`; grid sizes from :func:`canvas_len` / :func:`fast_len`.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from threading import Lock
from typing import TYPE_CHECKING

import numpy as np
from virtualfocus.edge.errors import InputError

from . import wotf as _wotf

if TYPE_CHECKING:  # optics.py imports this module
    from .optics import Optics

__all__ = [
    "DEFOCUS_QUANTUM_UM",
    "canvas_len",
    "clear_cache",
    "fast_len",
    "motion_otf",
    "otf",
    "otf_band",
]

try:  # scipy.fft keeps float32 and is ~4x faster than numpy.fft here; numpy is the fallback.
    import scipy.fft as _fft

    def _rfft2(a: np.ndarray) -> np.ndarray:
        return _fft.rfft2(a, axes=(-2, -1))


    def _fast_len(n: int) -> int:
        return int(_fft.next_fast_len(int(n), real=True))


except ImportError:  # pragma: no cover - scipy is part of the training extra, not of the edge runtime

    def _rfft2(a: np.ndarray) -> np.ndarray:
        return np.fft.rfft2(a, axes=(-2, -1)).astype(np.complex64)


    def _fast_len(n: int) -> int:
        import cv2

        return int(cv2.getOptimalDFTSize(int(n)))



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


def _check_defocus(defocus_um: float) -> float:
    z = float(defocus_um)
    if not math.isfinite(z):
        raise InputError(f"defocus_um={defocus_um!r}; expected a finite offset in µm")
    return z


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
