"""Partially coherent bright-field imaging: weak-object transfer functions (fast) and Abbe's source sum (reference).

Köhler illumination: every point ``u_s`` of the condenser aperture (a disc of radius ``NA_cond/λ`` in spatial
frequency) sends a plane wave through the specimen, whose complex transmission is ``t(x) = exp(−μ(x) + iφ(x))``
(``μ``: absorption, ``φ``: phase = 2π·thickness·Δn/λ). The objective passes the shifted spectrum through its pupil
``P`` (a disc of radius ``NA_obj/λ`` with the defocus, spherical-aberration and astigmatism phase), and the camera
adds the intensities of all source points (Abbe; Born & Wolf §10.5):

    I(x) = Σ_s S(u_s) |F⁻¹{P(u) · T(u − u_s)}|²  /  Σ_s S(u_s)|P(u_s)|²        (:func:`abbe_image`)

For a weak object (``t ≈ 1 − μ + iφ``) the image is linear in ``μ`` and ``φ`` (Streibl 1985; Tian & Waller 2015):
with the transmission cross-coefficient ``C(v) = Σ_u S(u) P*(u) P(u + v)`` and ``B = C(0)``,

    I/B = 1 − T_abs ∗ a − T_phase ∗ φ,   T_abs = Re C / B,  T_phase = 2 Im C / B,   a = 2μ ≈ absorbed fraction

(for a centro-symmetric pupil and source, which defocus, spherical aberration and astigmatism keep). ``T_abs(0) =
1``; in focus without aberration ``T_phase = 0`` (a thin phase object is invisible), and out of focus phase turns
into intensity with **opposite signs on the two sides of focus**. Limits: condenser NA → 0 gives the coherent
transfer functions ``cos θ(v)``, ``2 sin θ(v)`` (``θ`` the pupil phase); a condenser much wider than the
objective gives the incoherent OTF (the pupil's autocorrelation) and no phase contrast.

``C`` is computed on a small frequency grid of its own (the pupil sampled with ≥ 16 points per radius, more when the
defocus phase is steep) by FFT cross-correlation, then resampled bilinearly onto any image's ``rfft2`` grid, so one
transfer-function pair costs well under a millisecond and does not depend on the image size. The layered renderer of
:mod:`.optics` caches them per (optics, defocus, wavelength, grid).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
import scipy.fft as sfft

if TYPE_CHECKING:  # optics.py imports this module
    from .optics import Optics

__all__ = ["abbe_image", "cross_coefficient", "pupil", "transfer_functions", "weak_object_image"]


def pupil(
    optics: Optics, defocus_um: float, wavelength_um: float, fy: np.ndarray, fx: np.ndarray
) -> np.ndarray:
    """Complex pupil ``P(fy, fx)`` (frequencies in cycles/µm, broadcastable arrays), zero outside ``NA/λ``.

    Phase: exact angular-spectrum defocus ``2π z (√((n/λ)² − f²) − n/λ)`` with ``z = optics.axial(defocus_um)``,
    primary spherical aberration (Zernike Z₄⁰, ``optics.spherical_waves``) and astigmatism along the image axes
    (Zernike Z₂², ``optics.astigmatism_waves``), both in waves RMS at the reference wavelength.
    """
    na = float(optics.na)
    n = float(optics.immersion_index)
    fc = na / wavelength_um
    fy, fx = np.broadcast_arrays(np.asarray(fy, np.float64), np.asarray(fx, np.float64))
    f2_all = fy * fy + fx * fx
    inside = f2_all <= fc * fc
    out = np.zeros(f2_all.shape, np.complex128)
    f2, gy, gx = f2_all[inside], fy[inside], fx[inside]  # evaluate the phase only inside the aperture
    n_over_l = n / wavelength_um
    kz = np.sqrt(np.maximum(n_over_l * n_over_l - f2, 0.0))
    phase = (2.0 * np.pi * optics.axial(defocus_um)) * (kz - n_over_l)
    rho2 = f2 / (fc * fc)
    scale = float(optics.reference_wavelength_um) / wavelength_um
    sph = float(optics.spherical_waves)
    if sph:
        phase += 2.0 * np.pi * sph * scale * math.sqrt(5.0) * (6.0 * rho2 * rho2 - 6.0 * rho2 + 1.0)
    ast = float(optics.astigmatism_waves)
    if ast:
        phase += 2.0 * np.pi * ast * scale * math.sqrt(6.0) * (gx * gx - gy * gy) / (fc * fc)
    out[inside] = np.exp(1j * phase)
    return out


def _source(optics: Optics, wavelength_um: float, fy: np.ndarray, fx: np.ndarray, df: float) -> np.ndarray:
    """Condenser aperture as an anti-aliased disc of radius ``NA_cond/λ`` (a single point when below one sample)."""
    fs = float(optics.condenser_na) / wavelength_um
    r = np.sqrt(fy * fy + fx * fx)
    s = np.clip(fs / df - r / df + 0.5, 0.0, 1.0)
    if s.sum() < 1.0:  # coherent limit: the on-axis point
        s = (r == 0).astype(np.float64)
    return s


def _grid_radius(optics: Optics, defocus_um: float, wavelength_um: float) -> int:
    """Pupil samples per radius so that the defocus phase changes by ≤ ½ wave per sample at the pupil edge."""
    na = float(optics.na)
    n = float(optics.immersion_index)
    z = abs(float(optics.axial(defocus_um)))
    edge = z * na * na / (wavelength_um * math.sqrt(max(n * n - na * na, 1e-6)))  # waves per radius-unit
    return int(min(60, max(16, math.ceil(2.0 * edge))))


@functools.lru_cache(maxsize=256)  # ≤ 0.5 MB each; a stack needs ~100, random optics never reuse them
def cross_coefficient(optics: Optics, defocus_um: float, wavelength_um: float) -> tuple[np.ndarray, float]:
    """Transmission cross-coefficient ``C(v)/B`` on its own grid: ``(C, df)``.

    ``C`` is ``(N, N)`` complex64 in FFT order (zero frequency at ``[0, 0]``, periodic) with step ``df``
    cycles/µm; it vanishes beyond ``(NA + min(NA_cond, NA))/λ``, well inside the grid. Cached.
    """
    lam = float(wavelength_um)
    rad = _grid_radius(optics, defocus_um, lam)
    na = float(optics.na)
    sigma = min(float(optics.condenser_na) / na, 1.0)
    df = na / lam / rad
    size = sfft.next_fast_len(int(2 * math.ceil(rad * (1.0 + sigma)) + 6))
    f = np.fft.fftfreq(size, d=1.0 / (size * df))  # FFT order: zero frequency at [0, 0]
    fy, fx = f[:, None], f[None, :]
    p = pupil(optics, defocus_um, lam, fy, fx).astype(np.complex64)
    s = _source(optics, lam, fy, fx, df).astype(np.float32)
    sp = s * p
    b = float(np.sum(s * (p.real * p.real + p.imag * p.imag)))
    if b <= 0:
        raise ValueError("condenser and objective apertures do not overlap")
    # c[k] = Σ_n conj(sp)[n] p[n + k]  ⇔  DFT(c) = conj(DFT(sp)) · DFT(p)
    c = sfft.ifft2(np.conj(sfft.fft2(sp)) * sfft.fft2(p))
    c *= np.float32(1.0 / b)
    c.setflags(write=False)
    return c, df


def transfer_functions(
    optics: Optics,
    defocus_um: float,
    wavelength_um: float,
    shape: tuple[int, int],
    *,
    rows: int | None = None,
    cols: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(T_abs, T_phase)`` on the ``rfft2`` grid of an image of ``shape`` (float32 each).

    ``rows``/``cols`` restrict the result to the first row and column frequencies (the renderer's pass band:
    non-negative row frequencies only); by default the whole ``(H, W//2+1)`` grid in FFT order.
    """
    c, df = cross_coefficient(optics, round(float(defocus_um), 6), float(wavelength_um))
    h, w = int(shape[0]), int(shape[1])
    na = float(optics.na)
    cut = (na + min(float(optics.condenser_na), na)) / float(wavelength_um)
    map_x, map_y, outside = _resample_maps(
        h,
        w,
        float(optics.pixel_um),
        rows,
        cols,
        float(df),
        int(c.shape[0]),
        cut,
    )
    two = cv2.merge([np.ascontiguousarray(c.real), np.ascontiguousarray(c.imag * 2.0)])
    out = cv2.remap(two, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    # nothing passes beyond the partially coherent cut-off (resampling would leak one coarse cell past it)
    out[outside] = 0.0
    t_abs, t_phase = cv2.split(out)
    t_abs[0, 0] = 1.0  # exact DC (bilinear resampling is exact there too; guards rounding)
    return t_abs, t_phase


@functools.lru_cache(maxsize=64)
def _resample_maps(
    h: int, w: int, px: float, rows: int | None, cols: int | None, df: float, n: int, cut: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates of an image's ``rfft2`` grid (or its first ``rows`` × ``cols``) on a cross-coefficient grid."""
    nr = h if rows is None else int(rows)
    nc = w // 2 + 1 if cols is None else int(cols)
    fy = np.fft.fftfreq(h, d=px)[:nr] if rows is None else np.arange(nr) / (h * px)
    fx = np.arange(nc) / (w * px)
    map_y = np.ascontiguousarray(np.broadcast_to(np.mod(fy / df, n)[:, None], (nr, nc)), dtype=np.float32)
    map_x = np.ascontiguousarray(np.broadcast_to(np.mod(fx / df, n)[None, :], (nr, nc)), dtype=np.float32)
    outside = (fy * fy)[:, None] + (fx * fx)[None, :] > cut * cut
    for a in (map_x, map_y, outside):
        a.setflags(write=False)
    return map_x, map_y, outside


def weak_object_image(
    absorption: np.ndarray, phase: np.ndarray, optics: Optics, defocus_um: float, wavelength_um: float
) -> np.ndarray:
    """Intensity (background 1) of a thin specimen ``exp(−μ + iφ)`` by the weak-object transfer functions.

    ``absorption`` is ``μ`` (amplitude attenuation), ``phase`` is ``φ`` in radians, both ``(H, W)``.
    """
    shape = absorption.shape
    t_abs, t_phase = transfer_functions(optics, defocus_um, wavelength_um, shape)
    a = np.fft.rfft2(2.0 * np.asarray(absorption, np.float64))
    p = np.fft.rfft2(np.asarray(phase, np.float64))
    return 1.0 - np.fft.irfft2(t_abs * a + t_phase * p, s=shape)


def abbe_image(
    transmission: np.ndarray, optics: Optics, defocus_um: float, wavelength_um: float
) -> np.ndarray:
    """Reference intensity (background 1) of a thin specimen of complex ``transmission`` ``(H, W)``: Abbe's sum.

    One coherent image per condenser-aperture point on the image's own frequency grid (tilted plane waves that are
    periodic on the canvas), weighted by the anti-aliased disc of radius ``NA_cond/λ``. Exact for strong objects
    too; slow (two FFTs per source point).
    """
    t = np.asarray(transmission, np.complex128)
    h, w = t.shape
    px = float(optics.pixel_um)
    lam = float(wavelength_um)
    fy = np.fft.fftfreq(h, d=px)[:, None]
    fx = np.fft.fftfreq(w, d=px)[None, :]
    dfy, dfx = 1.0 / (h * px), 1.0 / (w * px)
    s = _source(optics, lam, fy, fx, min(dfy, dfx))
    spec = np.fft.fft2(t)
    out = np.zeros((h, w))
    norm = 0.0
    for iy, ix in zip(*np.nonzero(s), strict=True):
        weight = float(s[iy, ix])
        uy, ux = float(fy[iy, 0]), float(fx[0, ix])
        # field = e^{2πi u_s x} · F⁻¹{P(u + u_s) T(u)}: the tilt drops out of the intensity
        shifted = pupil(optics, defocus_um, lam, fy + uy, fx + ux)
        field = np.fft.ifft2(shifted * spec)
        out += weight * (field.real**2 + field.imag**2)
        p0 = pupil(optics, defocus_um, lam, np.array([[uy]]), np.array([[ux]]))[0, 0]
        norm += weight * abs(p0) ** 2
    return out / norm
