"""Bright-field microscope optics for simulated defocus: scalar pupil-function PSFs and layered rendering.

The model is the scalar (Born & Wolf) pupil-function model of a high-NA oil objective, evaluated as an
incoherent system:

* the pupil is a disc of radius ``NA_eff / λ`` in spatial frequency, where ``NA_eff = (NA_obj + NA_cond) / 2``.
  Bright-field transmission imaging is partially coherent; its cut-off frequency is ``(NA_obj + NA_cond) / λ``
  (Hopkins), which the incoherent model reproduces with this effective aperture, and the defocus blur of an
  absorbing object grows with the illumination cone rather than with the full objective aperture;
* defocus is the exact (non-paraxial) angular-spectrum phase ``2π z (√((n/λ)² − f²) − n/λ)`` in an immersion
  medium of index ``n`` (Gibson & Lanni's design condition: oil, coverslip and sample index-matched);
* a primary spherical aberration term ``W = s · √5 (6ρ⁴ − 6ρ² + 1)`` (Zernike Z₄⁰, ``s`` in waves RMS at the
  reference wavelength) breaks the symmetry between the two sides of focus, as index mismatch in a real dried
  smear does. With the default positive coefficient the **negative** offsets blur faster than the positive ones,
  which is the shape the reference thesis measured on real stacks (its table 6.1: MSE 36 at −1.2 µm vs 27 at
  +1.2 µm, and a sharp band of −0.2 … +0.4 µm; "the image is affected more when moving in the negative
  direction"). Flip the sign to mirror it;
* each colour channel has its own wavelength and an axial chromatic focus shift (green in the middle);
* the PSF is ``|F⁻¹{P}|²`` normalised to unit energy, so blurring conserves the mean intensity.

Rendering is layered: a field is a set of thin layers at known depths (the absorbed-light fraction of each layer,
per channel); a capture at focus offset ``z`` is ``bg · (1 − Σₖ PSF(z − dₖ) ∗ Aₖ)``, computed in the Fourier domain.
Optical transfer functions depend only on (optics, defocus, wavelength, grid) and are cached, so stacks render
fast after the first few.

Offsets are in µm with the thesis's sign convention as stored in :class:`~virtualfocus.edge.stack.ZStack`.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import numpy as np

from .errors import InputError

__all__ = [
    "CHANNEL_NAMES",
    "Camera",
    "Optics",
    "add_camera_noise",
    "best_focus_shift",
    "fast_len",
    "motion_otf",
    "otf",
    "psf",
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
    """Smallest FFT-friendly length ≥ ``n`` (used to size periodic simulation canvases)."""
    return _fast_len(n)


@dataclass(frozen=True)
class Optics:
    """Optical parameters of the simulated bright-field microscope (defaults: 100×/1.25 oil, blood smear).

    Parameters
    ----------
    na : float
        Numerical aperture of the objective.
    condenser_na : float
        Numerical aperture of the illumination; with ``na`` it sets the effective incoherent aperture
        ``(na + condenser_na) / 2`` (see the module docstring). This is the main knob for how fast images blur.
    immersion_index : float
        Refractive index of the immersion medium (oil 1.515); must exceed the effective NA.
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
    """

    na: float = 1.25
    condenser_na: float = 0.90
    immersion_index: float = 1.515
    wavelengths_um: tuple[float, float, float] = (0.61, 0.54, 0.46)
    chromatic_shift_um: tuple[float, float, float] = (0.08, 0.0, -0.08)
    spherical_waves: float = 0.03
    focal_shift_positive: float = 0.82
    reference_wavelength_um: float = 0.54
    pixel_um: float = 0.1

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
        """Aperture of the equivalent incoherent system, ``(na + condenser_na) / 2``."""
        return 0.5 * (self.na + self.condenser_na)

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
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Optics:
        """Inverse of :meth:`to_dict`; unknown keys are rejected."""
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise InputError(f"optics: unknown keys {sorted(unknown)}; accepted: {sorted(known)}")
        return cls(**d)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Camera:
    """Camera noise model: shot noise (Poisson, Gaussian approximation above 20 e⁻) plus read noise.

    Parameters
    ----------
    full_well_e : float
        Electrons at the top of the digital range (sets the shot-noise level; more = cleaner images). The
        default 10⁶ is an *effective* value: the thesis's stacks differ by only ~0.25 DN of noise at 8 bit
        (SSIM 0.998 between the ±0.2 µm planes), as after frame averaging or binning. Use ~2·10⁴ for one raw
        frame of a typical sCMOS camera.
    read_noise_e : float
        RMS read noise in electrons.
    bit_depth : {8, 12, 16}
        ADC depth. 12-bit values are stored MSB-aligned in uint16 (×16), as most scientific cameras deliver them,
        so every uint16 image maps to 0..255 the same way.
    """

    full_well_e: float = 1.0e6
    read_noise_e: float = 8.0
    bit_depth: int = 8

    def __post_init__(self) -> None:
        if self.bit_depth not in (8, 12, 16):
            raise InputError(f"Camera.bit_depth={self.bit_depth}; expected 8, 12 or 16")
        if self.full_well_e <= 0 or self.read_noise_e < 0:
            raise InputError(
                f"Camera(full_well_e={self.full_well_e}, read_noise_e={self.read_noise_e}); "
                "expected full_well_e > 0 and read_noise_e ≥ 0"
            )

    @property
    def dtype(self) -> type[np.generic]:
        return np.uint8 if self.bit_depth == 8 else np.uint16

    def to_dict(self) -> dict[str, object]:
        return {
            "full_well_e": self.full_well_e,
            "read_noise_e": self.read_noise_e,
            "bit_depth": self.bit_depth,
        }


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


def _pupil(optics: Optics, defocus_um: float, wavelength_um: float, shape: tuple[int, int]) -> np.ndarray:
    """Complex pupil function sampled on the FFT grid of an image of ``shape`` (origin at [0, 0])."""
    h, w = int(shape[0]), int(shape[1])
    order, f2_sorted, _ = _pupil_grid(h, w, float(optics.pixel_um))
    n_over_l = optics.immersion_index / wavelength_um
    fc = optics.effective_na / wavelength_um
    n_in = int(np.searchsorted(f2_sorted, fc * fc, side="right"))
    idx = order[:n_in]
    f2 = f2_sorted[:n_in]
    rho2 = f2 / (fc * fc)
    kz = np.sqrt(np.maximum(n_over_l * n_over_l - f2, 0.0))
    phase = (2.0 * np.pi * optics.axial(defocus_um)) * (kz - n_over_l)
    if optics.spherical_waves:
        z40 = math.sqrt(5.0) * (6.0 * rho2 * rho2 - 6.0 * rho2 + 1.0)
        waves = optics.spherical_waves * optics.reference_wavelength_um / wavelength_um
        phase += 2.0 * np.pi * waves * z40
    pupil = np.zeros(h * w, np.complex64)
    pupil[idx] = np.exp(1j * phase)
    return pupil.reshape(h, w)


def _psf_full(optics: Optics, defocus_um: float, wavelength_um: float, shape: tuple[int, int]) -> np.ndarray:
    pupil = _pupil(optics, defocus_um, wavelength_um, shape).astype(np.complex64)
    amp = _ifft2(pupil)
    p = (amp.real * amp.real + amp.imag * amp.imag).astype(np.float64)
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
#: Defocus values are rounded to this step (µm) before caching; far below the 0.2 µm plane spacing.
DEFOCUS_QUANTUM_UM = 0.01


def otf(optics: Optics, defocus_um: float, wavelength_um: float, shape: tuple[int, int]) -> np.ndarray:
    """Optical transfer function on the ``rfft2`` grid of an image of ``shape`` (complex64, cached).

    Multiplying an image's ``rfft2`` by this and inverting is a circular convolution with :func:`psf`.
    """
    z = round(_check_defocus(defocus_um) / DEFOCUS_QUANTUM_UM) * DEFOCUS_QUANTUM_UM
    key = (optics, round(z, 4), float(wavelength_um), (int(shape[0]), int(shape[1])))
    hit = _OTF_CACHE.get(key)
    if hit is not None:
        return hit
    p = _psf_full(optics, z, float(wavelength_um), (int(shape[0]), int(shape[1])))
    o = _rfft2(p.astype(np.float32)).astype(np.complex64)
    o.setflags(write=False)
    _OTF_CACHE.put(key, o)
    return o


def clear_cache() -> None:
    """Drop every cached transfer function (frees memory; the next render recomputes them)."""
    _OTF_CACHE.clear()
    _focus_filter_power_cached.cache_clear()


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


@functools.lru_cache(maxsize=32)
def best_focus_shift(
    optics: Optics, *, channel: int = 1, span_um: float = 1.0, step_um: float = 0.01
) -> float:
    """Defocus (µm) at which the thesis focus measure of a white-noise object peaks for ``channel``.

    With spherical aberration the plane of best focus moves away from the paraxial focus; the simulator puts the
    nominal 0 µm plane there so that, as in the thesis, the focus curve peaks at 0.
    """
    shape = (128, 128)
    weight = _focus_filter_power(shape)
    lam = optics.wavelengths_um[channel]
    zs = np.arange(-span_um, span_um + step_um / 2, step_um)
    scores = []
    for z in zs:
        o = np.fft.rfft2(_psf_full(optics, float(z), lam, shape))
        scores.append(float(np.sum(np.abs(o) ** 2 * weight)))
    return float(zs[int(np.argmax(scores))]) + optics.chromatic_shift_um[channel]


# --------------------------------------------------------------------------------------------------- rendering
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
    offsets = np.atleast_1d(np.asarray(offsets_um, dtype=np.float64))
    depths = np.asarray(depths_um, dtype=np.float64)
    n_z = offsets.size
    ch, cw = crop if crop is not None else shape
    out = np.empty((n_z, ch, cw, 3), dtype=np.float32)
    acc = np.empty((n_z, shape[0], shape[1] // 2 + 1), dtype=np.complex64)
    tmp = np.empty(acc.shape[1:], dtype=np.complex64)
    for c in range(3):
        lam = optics.wavelengths_um[c]
        shift = optics.chromatic_shift_um[c]
        for i, z in enumerate(offsets):
            a = acc[i]
            for k, d in enumerate(depths):
                t = otf(optics, z - d - shift, lam, shape)
                if k == 0:
                    np.multiply(t, spectra[k, c], out=a)
                else:
                    np.multiply(t, spectra[k, c], out=tmp)
                    a += tmp
            if extra_otf is not None:
                a *= extra_otf
        out[..., c] = _irfft2(acc, shape)[:, :ch, :cw]
    return out


@functools.lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    from statistics import NormalDist

    nd = NormalDist()
    return np.array([nd.inv_cdf((i + 0.5) / 65536.0) for i in range(65536)], np.float32)


def standard_normal_fast(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard-normal float32 samples by inverse-CDF lookup of 16-bit uniform integers.

    The 65 536 equiprobable quantiles reproduce the normal distribution to far below a grey level of camera
    noise (tails are cut at ±4.3 σ), at about a third of the cost of numpy's float32 ziggurat here — camera noise
    is otherwise the most expensive step of simulating a stack.
    """
    n = int(np.prod(shape))
    u = np.frombuffer(rng.bytes(2 * n), dtype=np.uint16)
    return np.take(_normal_quantiles(), u).reshape(shape)


def add_camera_noise(intensity: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Turn relative intensity (1.0 = top of the digital range) into a noisy quantised camera image.

    Shot noise is Poisson in electrons (drawn exactly below 20 e⁻; above, its Gaussian approximation, which is
    indistinguishable after quantisation and much faster); read noise is Gaussian.

    Returns
    -------
    np.ndarray
        Same shape, ``camera.dtype`` (uint8; uint16 for 12/16-bit, 12-bit MSB-aligned).
    """
    inten = np.asarray(intensity, dtype=np.float32)
    lo = float(inten.min()) if inten.size else 0.0
    if not math.isfinite(lo) or not math.isfinite(float(inten.max())):
        raise InputError(
            "add_camera_noise: intensity has NaN or infinite values; expected finite 0..1 values"
        )
    levels = float((1 << camera.bit_depth) - 1)
    fw = float(camera.full_well_e)
    # in digital numbers: mean I·L, variance I·L²/fw (shot) + (r·L/fw)² (read)
    dn = inten * np.float32(levels)
    sigma = dn * np.float32(levels / fw)
    sigma += np.float32((camera.read_noise_e * levels / fw) ** 2)
    np.maximum(sigma, 0.0, out=sigma)  # ringing can leave tiny negative intensities
    np.sqrt(sigma, out=sigma)
    sigma *= standard_normal_fast(rng, inten.shape)
    dn += sigma
    del sigma
    if lo * fw < 20.0:  # exact Poisson where the Gaussian approximation is poor (very dark pixels)
        low = inten * fw < 20.0
        lam = np.clip(inten[low], 0, None).astype(np.float64) * fw
        e = rng.poisson(lam) + rng.normal(0.0, camera.read_noise_e, lam.shape)
        dn[low] = (e * (levels / fw)).astype(np.float32)
    dn += np.float32(0.5)
    np.clip(dn, 0, levels, out=dn)
    if camera.bit_depth == 8:
        return dn.astype(np.uint8)
    img = dn.astype(np.uint16)
    if camera.bit_depth == 12:
        img <<= 4
    return img
