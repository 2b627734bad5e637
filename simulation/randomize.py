"""Randomized microscopes: optics, camera and stain drawn per stack, and real sharp images defocused through them.

A model that has seen one objective, one pixel size and one camera does not transfer (``../shared/DESIGN.md``,
"Real instruments vary"). This module draws a whole imaging chain per stack, seeded, and records it:

* :class:`RandomOptics` — the ranges (objective NA 0.75–1.4, dry below 1.0 and oil above; pixel size in the
  specimen 0.05–0.35 µm; condenser NA as σ = NA_cond/NA_obj 0.25–0.9; spherical aberration and astigmatism of
  either sign; a tilted slide; illumination fall-off; stain hue and saturation; gray cameras; 8/12/16-bit; shot and
  read noise over a realistic range; JPEG). :func:`sample_optics` draws an :class:`OpticsSample` from them.
* :func:`defocus_image` — the **semi-synthetic path**: a real in-focus RGB image (uint8, uint16 or float 0..1)
  becomes a complex specimen (absorbed fraction from the image, phase from a thickness map: cells found by their
  optical density, smoothed, plus the density itself) and is imaged at any list of focus offsets through the
  sampled partially coherent optics (:mod:`.wotf`) and camera. About 10–30 ms per 256×256 plane on one core.
* :func:`random_semisynthetic_stack` — a labelled stack from a real sharp field through a drawn chain
  (``virtualfocus semisynth --randomize``): real texture, randomized optics; what training should mostly see.
* :func:`random_stack` — a simulated smear field (:func:`.simulate.make_field`, with phase) through a sampled chain:
  the randomized simulator that ``benchmarks/realism.py`` compares with real stacks.

The defocus range of a stack is set in pixels of blur, not µm: the outermost plane (``n_planes // 2`` steps from
focus) blurs a point over ``blur_px`` pixels (geometrical diameter ``2|z|·tan(asin(NA_eff/n))/pixel``), drawn from
:attr:`RandomOptics.blur_px`, so low- and high-magnification optics cover the same range of image blur as the real
stack ``urjc-s1`` does at its outermost planes.

Example
-------
>>> rng = np.random.default_rng(0)
>>> sample = sample_optics(rng)
>>> img = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
>>> planes = defocus_image(img, sample, [-0.5, 0.0, 0.5], rng=rng)
>>> planes.shape
(3, 64, 64, 3)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import cv2
import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.zstacks.stack import ZStack

from .optics import Camera, Optics, add_camera_noise, best_focus_shift, canvas_len

__all__ = [
    "OpticsSample",
    "RandomOptics",
    "blur_diameter_px",
    "defocus_image",
    "finish_captures",
    "random_semisynthetic_stack",
    "random_stack",
    "sample_optics",
    "specimen_from_image",
]


@dataclass(frozen=True)
class RandomOptics:
    """Ranges of the randomized imaging chain (uniform unless noted; ``(lo, hi)`` tuples).

    Parameters
    ----------
    na : (float, float)
        Objective NA; below ``oil_above`` the objective is dry (immersion index 1.0), else oil (1.515).
    pixel_um : (float, float)
        Pixel size in the specimen, µm (log-uniform): camera pixel / magnification.
    max_upsampling : float
        Semi-synthetic stacks: a source image may be magnified up to this factor. Cameras often oversample the
        optics, so a capture in focus can be soft at the pixel scale; a restorer that never saw such fields
        sharpens every soft capture (measured: BCCD fields, FR up to 2.9 with the full model trained without).
    sigma : (float, float)
        Condenser NA / objective NA.
    spherical_waves, astigmatism_waves : (float, float)
        Magnitude of the Zernike coefficients (waves RMS); the sign is random.
    focal_shift_positive : (float, float)
        Focal displacement per µm on the positive side (index mismatch), see :class:`.optics.Optics`.
    blur_px : (float, float)
        Geometrical blur diameter (pixels) at the outermost plane of a stack; sets the step between planes.
    tilt_px : (float, float)
        Peak-to-peak focus change across the field, as a fraction of the stack's step (tilted slide).
    illumination : (float, float)
        Relative illumination fall-off at the field corners.
    stain_hue_deg, stain_saturation : (float, float)
        Rotation of the stain's colour around the gray axis (degrees) and scale of its saturation.
    phase_rad : (float, float)
        Peak phase delay of the thickest cells, radians at 0.54 µm (dried, mounted smears: Δn ≈ 0.02–0.06 over
        ≈ 2 µm gives 0.5–1.4 rad; thinner or index-matched preparations less).
    gray_probability, jpeg_probability : float
        Chance of a single-channel camera, of JPEG compression (8-bit only).
    jpeg_quality : (int, int)
    bit_depths : tuple of int
        Camera ADC depths to draw from (8, 12, 16).
    full_well_e : (float, float)
        Electrons at the top of the range (log-uniform): 2·10³ (a dim raw frame) … 10⁶ (averaged / binned).
    read_noise_e : (float, float)
    focus_jitter : float
        The true focus falls uniformly within ± this fraction of a step from the middle plane.
    layer_spread_steps, wbc_height_steps : (float, float)
        Specimen thickness in units of the stack's step (simulated fields, :func:`random_stack`): spread of the
        red cells' depths and the white cell's height above them. A 2 µm cell is several depths of field thick
        at high NA, and a tissue section at low NA too, so content comes into focus at different planes.
    """

    na: tuple[float, float] = (0.75, 1.4)
    oil_above: float = 1.0
    pixel_um: tuple[float, float] = (0.05, 0.35)
    max_upsampling: float = 2.0
    sigma: tuple[float, float] = (0.25, 0.9)
    spherical_waves: tuple[float, float] = (0.0, 0.2)
    astigmatism_waves: tuple[float, float] = (0.0, 0.04)
    focal_shift_positive: tuple[float, float] = (0.5, 1.0)
    blur_px: tuple[float, float] = (12.0, 96.0)
    tilt_px: tuple[float, float] = (0.0, 1.0)
    illumination: tuple[float, float] = (0.0, 0.15)
    stain_hue_deg: tuple[float, float] = (-15.0, 15.0)
    stain_saturation: tuple[float, float] = (0.7, 1.3)
    phase_rad: tuple[float, float] = (0.0, 1.2)
    gray_probability: float = 0.15
    jpeg_probability: float = 0.3
    jpeg_quality: tuple[int, int] = (70, 95)
    bit_depths: tuple[int, ...] = (8, 12, 16)
    full_well_e: tuple[float, float] = (2.0e3, 1.0e6)
    read_noise_e: tuple[float, float] = (1.0, 10.0)
    focus_jitter: float = 0.5
    layer_spread_steps: tuple[float, float] = (0.0, 1.0)
    wbc_height_steps: tuple[float, float] = (0.0, 2.0)


@dataclass(frozen=True)
class OpticsSample:
    """One drawn imaging chain (stored in the stack sidecar as ``meta["imaging"]`` via :meth:`to_dict`).

    ``step_um`` is the plane spacing that gives the drawn blur at the outermost of ``n_planes`` planes.
    """

    optics: Optics
    camera: Camera
    step_um: float
    n_planes: int
    blur_px: float
    tilt_um: tuple[float, float]
    illumination: float
    stain_hue_deg: float
    stain_saturation: float
    phase_rad: float
    gray: bool
    jpeg_quality: int | None
    focus_offset_um: float = 0.0
    layer_spread_um: float = 0.0
    wbc_height_um: float = 0.0

    @property
    def offsets_um(self) -> np.ndarray:
        """Nominal plane offsets ``−n//2 … +n//2`` steps, µm."""
        n = self.n_planes // 2
        return np.round(np.arange(-n, n + 1) * self.step_um, 6)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optics"] = self.optics.to_dict()
        d["camera"] = self.camera.to_dict()
        d["tilt_um"] = list(self.tilt_um)
        return d


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def blur_diameter_px(optics: Optics, defocus_um: float) -> float:
    """Geometrical defocus blur diameter in pixels: ``2|z|·tan(asin(NA_eff/n)) / pixel``."""
    s = min(optics.effective_na / optics.immersion_index, 0.99)
    return 2.0 * abs(defocus_um) * math.tan(math.asin(s)) / optics.pixel_um


def sample_optics(
    rng: np.random.Generator, ranges: RandomOptics | None = None, *, n_planes: int = 17
) -> OpticsSample:
    """Draw one imaging chain from ``ranges`` (default :class:`RandomOptics`), deterministic for a seeded ``rng``."""
    r = ranges or RandomOptics()
    if n_planes < 3 or n_planes % 2 == 0:
        raise InputError(f"sample_optics: n_planes={n_planes}; expected an odd number ≥ 3")
    na = float(rng.uniform(*r.na))
    n_imm = 1.515 if na > r.oil_above else 1.0
    na = min(na, 0.95 * n_imm)
    sigma = float(rng.uniform(*r.sigma))
    sign = lambda: 1.0 if rng.random() < 0.5 else -1.0  # noqa: E731
    optics = Optics(
        na=na,
        condenser_na=sigma * na,
        immersion_index=n_imm,
        spherical_waves=round(sign() * float(rng.uniform(*r.spherical_waves)), 4),
        astigmatism_waves=round(sign() * float(rng.uniform(*r.astigmatism_waves)), 4),
        focal_shift_positive=round(float(rng.uniform(*r.focal_shift_positive)), 4),
        pixel_um=round(_log_uniform(rng, *r.pixel_um), 4),
    )
    blur = _log_uniform(rng, *r.blur_px)
    per_um = blur_diameter_px(optics, 1.0)
    step = round(blur / per_um / (n_planes // 2), 4)
    tilt = float(rng.uniform(*r.tilt_px)) * step
    angle = float(rng.uniform(0, 2 * math.pi))
    bits = int(rng.choice(np.asarray(r.bit_depths)))
    camera = Camera(
        full_well_e=round(_log_uniform(rng, *r.full_well_e), 1),
        read_noise_e=round(float(rng.uniform(*r.read_noise_e)), 3),
        bit_depth=bits,
    )
    gray = bool(rng.random() < r.gray_probability)
    jpeg = int(rng.integers(r.jpeg_quality[0], r.jpeg_quality[1] + 1)) if bits == 8 else None
    if jpeg is not None and rng.random() >= r.jpeg_probability:
        jpeg = None
    jitter = float(rng.uniform(-r.focus_jitter, r.focus_jitter)) * step
    return OpticsSample(
        optics=optics,
        camera=camera,
        step_um=step,
        n_planes=n_planes,
        blur_px=round(blur, 3),
        tilt_um=(round(tilt * math.cos(angle), 4), round(tilt * math.sin(angle), 4)),
        illumination=round(float(rng.uniform(*r.illumination)), 4),
        stain_hue_deg=round(float(rng.uniform(*r.stain_hue_deg)), 3),
        stain_saturation=round(float(rng.uniform(*r.stain_saturation)), 4),
        phase_rad=round(float(rng.uniform(*r.phase_rad)), 4),
        gray=gray,
        jpeg_quality=jpeg,
        focus_offset_um=round(jitter, 4),
        layer_spread_um=round(float(rng.uniform(*r.layer_spread_steps)) * step, 4),
        wbc_height_um=round(float(rng.uniform(*r.wbc_height_steps)) * step, 4),
    )


# ---------------------------------------------------------------------------------------------- image → specimen
def _to_unit(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise InputError(f"defocus_image: image has shape {a.shape}; expected (H, W, 3) RGB or (H, W) gray")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    x = a.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise InputError("defocus_image: image has NaN or infinite values")
    return np.clip(x, 0.0, 1.0)


def _stain_matrix(hue_deg: float, saturation: float) -> np.ndarray:
    """3×3 map on optical densities: scale the chroma (component off the gray axis) and rotate it about the axis."""
    g = np.full(3, 1 / math.sqrt(3))
    proj = np.outer(g, g)
    a = math.radians(hue_deg)
    k = np.array([[0, -g[2], g[1]], [g[2], 0, -g[0]], [-g[1], g[0], 0]])
    rot = np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * (k @ k)
    return (proj + saturation * rot @ (np.eye(3) - proj)).astype(np.float32)


def specimen_from_image(image: np.ndarray, sample: OpticsSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(absorbed (H, W, 3), phase (H, W) rad at 0.54 µm, background (3,))`` of a real sharp image.

    The background is the bright mode of each channel (the 99th percentile); the optical density
    ``−ln(I/bg)`` gets the sample's stain change; cells are where the mean density exceeds a third of its 99.5th
    percentile, and their thickness map is the smoothed mask (flat-topped cells) plus the density (thicker where
    denser), normalised so the thickest cells reach ``sample.phase_rad``.
    """
    a = _to_unit(image)
    bg = np.maximum(
        np.percentile(a.reshape(-1, 3)[:: max(1, a.shape[0] * a.shape[1] // 20000)], 99, axis=0), 1e-3
    )
    od = -np.log(np.clip(a / bg, 1e-3, 1.5))
    if sample.stain_hue_deg or sample.stain_saturation != 1.0:
        od = od @ _stain_matrix(sample.stain_hue_deg, sample.stain_saturation).T
    absorbed = (1.0 - np.exp(-np.clip(od, -0.4, 7.0))).astype(np.float32)
    dens = od.mean(axis=-1).astype(np.float32)
    top = float(np.percentile(dens, 99.5))
    if top <= 1e-3 or sample.phase_rad <= 0:
        return absorbed, np.zeros(dens.shape, np.float32), bg.astype(np.float32)
    sd = max(0.4 / sample.optics.pixel_um, 0.7)  # cells' edges are rounded over ~0.4 µm
    mask = cv2.GaussianBlur((dens > top / 3).astype(np.float32), (0, 0), sd)
    thick = 0.6 * mask + 0.4 * np.clip(dens / top, 0, 1.5)
    phase = (thick * np.float32(sample.phase_rad / max(float(np.percentile(thick, 99.5)), 1e-6))).astype(
        np.float32
    )
    return absorbed, phase, bg.astype(np.float32)


def _illumination(shape: tuple[int, int], amount: float, rng: np.random.Generator) -> np.ndarray | None:
    if amount <= 0:
        return None
    h, w = shape
    cy, cx = rng.normal(h / 2, h * 0.1), rng.normal(w / 2, w * 0.1)
    yy = ((np.arange(h, dtype=np.float32) - np.float32(cy)) / np.float32(0.5 * h)) ** 2
    xx = ((np.arange(w, dtype=np.float32) - np.float32(cx)) / np.float32(0.5 * w)) ** 2
    return (1.0 - np.float32(amount / 2) * (yy[:, None] + xx[None, :])).astype(np.float32)


def _tilt_map(shape: tuple[int, int], tilt_um: tuple[float, float]) -> np.ndarray | None:
    if tilt_um[0] == 0 and tilt_um[1] == 0:
        return None
    h, w = shape
    yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    return (np.float32(tilt_um[0]) * yy + np.float32(tilt_um[1]) * xx).astype(np.float32)


def _map_step(optics: Optics) -> float:
    """Offset grid for tilted fields: half the depth of field ``n·λ/NA²`` (at least 0.1 µm)."""
    return max(0.1, round(optics.immersion_index * 0.54 / (optics.na * optics.na) / 2, 3))


def finish_captures(intensity: np.ndarray, sample: OpticsSample, rng: np.random.Generator) -> np.ndarray:
    """Camera side of a sample: gray sensor, Poisson-Gaussian noise, bit depth, JPEG. ``(Z, H, W, 3)`` → camera dtype."""
    inten = np.asarray(intensity, np.float32)
    if (
        sample.gray
    ):  # a monochrome sensor under white light: one luminance channel, repeated for RGB consumers
        lum = inten @ np.array([0.25, 0.5, 0.25], np.float32)
        inten = np.repeat(lum[..., None], 3, axis=-1)
    out = add_camera_noise(inten, sample.camera, rng)
    if sample.gray:
        out[..., 1] = out[..., 0]
        out[..., 2] = out[..., 0]
    if sample.jpeg_quality is not None and out.dtype == np.uint8:
        params = [cv2.IMWRITE_JPEG_QUALITY, int(sample.jpeg_quality)]
        for i in range(out.shape[0]):
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(out[i, ..., ::-1]), params)
            if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
                raise InputError("JPEG encoding failed")
            dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            if dec is None:  # pragma: no cover
                raise InputError("JPEG decoding failed")
            out[i] = dec[..., ::-1]
    return out


def defocus_image(
    image: np.ndarray,
    sample: OpticsSample,
    offsets_um: np.ndarray | list[float],
    *,
    rng: np.random.Generator,
    noise: bool = True,
) -> np.ndarray:
    """Defocused captures of a real sharp image through a sampled imaging chain (the semi-synthetic path).

    Parameters
    ----------
    image : np.ndarray
        ``(H, W, 3)`` RGB (or ``(H, W)`` gray) in-focus image: uint8, uint16 or float 0..1. It is taken to be
        sampled at ``sample.optics.pixel_um`` (resample it first to change magnification).
    sample : OpticsSample
        From :func:`sample_optics`.
    offsets_um : sequence of float
        Focus offsets in µm; 0 is the best focus of the optics (plus ``sample.focus_offset_um``).
    rng : numpy.random.Generator
        Illumination centre and camera noise.
    noise : bool
        Without noise the intensities are quantised directly (and neither gray conversion nor JPEG is skipped).

    Returns
    -------
    np.ndarray
        ``(Z, H, W, 3)`` in the camera's dtype (uint8, or uint16 for 12/16-bit).
    """
    from .simulate import SmearField

    absorbed, phase, bg = specimen_from_image(image, sample)
    h, w = absorbed.shape[:2]
    margin = max(8, min(64, math.ceil(1.2 * sample.blur_px)))
    ph, pw = canvas_len(h + 2 * margin), canvas_len(w + 2 * margin)

    # periodic canvas: the image plus reflected surroundings, rolled so the image sits at the top-left
    def pad(x: np.ndarray) -> np.ndarray:
        big = cv2.copyMakeBorder(x, margin, ph - h - margin, margin, pw - w - margin, cv2.BORDER_REFLECT_101)
        return np.roll(big, (-margin, -margin), axis=(0, 1))

    field = SmearField(
        pad(absorbed)[None],
        np.zeros(1),
        bg,
        sample.optics,
        size=(h, w),
        illumination=_illumination((h, w), sample.illumination, rng),
        focus_map=_tilt_map((h, w), sample.tilt_um),
        phase=pad(phase)[None] if np.any(phase) else None,
    )
    field.focus_map_step_um = _map_step(sample.optics)
    focus = best_focus_shift(sample.optics) + sample.focus_offset_um
    inten = field.intensity(np.asarray(offsets_um, np.float64) + focus)
    if not noise:
        levels = (1 << sample.camera.bit_depth) - 1
        q = np.clip(inten * np.float32(levels) + np.float32(0.5), 0, levels)
        return q.astype(sample.camera.dtype)
    return finish_captures(inten, sample, rng)


# -------------------------------------------------------------------------------------------- randomized stacks
def random_stack(
    seed: int,
    *,
    ranges: RandomOptics | None = None,
    size: int = 401,
    n_planes: int = 17,
) -> ZStack:
    """A simulated smear field (with phase) through a randomly drawn imaging chain: one labelled stack.

    The field comes from :func:`.simulate.make_field` at the sampled pixel size; each layer's phase is its mean
    absorbed fraction scaled so the densest cells reach ``sample.phase_rad``. ``layer_spread_um`` and
    ``wbc_height_um`` set how far cells sit from one plane, in units of the stack's step (real smears are
    thinner than the depth of field). ``meta["imaging"]`` records the whole chain.
    """
    from .simulate import SimConfig, SmearField, capture_stack, make_field

    rng = np.random.default_rng(int(seed))
    sample = sample_optics(rng, ranges, n_planes=n_planes)
    step = sample.step_um
    cfg = SimConfig(
        size=size,
        z_step_um=step,
        z_half_range_um=step * (n_planes // 2),
        optics=sample.optics,
        camera=sample.camera,
        wbc_height_um=(sample.wbc_height_um, sample.wbc_height_um),
        rbc_depth_sd_um=sample.layer_spread_um,
        focus_jitter_um=0.0,
        flicker=0.005,
        vignetting=sample.illumination,
        noise=False,
        phase_rad=sample.phase_rad,
    )
    fld = make_field(rng, cfg)
    fld = SmearField(
        fld.absorbed,
        fld.depths_um - sample.focus_offset_um,
        fld.background,
        fld.optics,
        size=fld.size,
        illumination=fld.illumination,
        focus_map=_tilt_map(fld.size, sample.tilt_um),
        nucleus_centres=fld.nucleus_centres,
        info=fld.info,
        phase=fld.phase,
    )
    fld.focus_map_step_um = _map_step(sample.optics)
    noise_free = replace(cfg, noise=False, camera=Camera(bit_depth=16))
    planes16, offsets, sharp, extra = capture_stack(fld, rng, noise_free)
    inten = planes16.astype(np.float32) / 65535.0
    planes = finish_captures(inten, sample, rng)
    meta: dict[str, Any] = {
        "source": "simulated-random",
        "seed": int(seed),
        "imaging": sample.to_dict(),
        "optics": sample.optics.to_dict(),
        "camera": sample.camera.to_dict(),
        "camera_bit_depth": sample.camera.bit_depth,
        "pixel_um": sample.optics.pixel_um,
        "nucleus_centres": fld.nucleus_centres,
        **extra,
        **fld.info,
    }
    return ZStack(planes, offsets, sharp, name=f"rand-{int(seed):06d}", meta=meta)


def random_semisynthetic_stack(
    image: np.ndarray,
    seed: int,
    *,
    size: int = 256,
    source_pixel_um: float = 0.2,
    ranges: RandomOptics | None = None,
    n_planes: int = 17,
    name: str = "semi",
    source: str = "",
) -> ZStack:
    """A labelled stack from a real sharp field through a randomly drawn imaging chain (:func:`defocus_image`).

    The image (pixel ``source_pixel_um``) is resampled to the drawn pixel size (the draw is limited to pixel
    sizes at most ``ranges.max_upsampling`` finer than the source's and at which the image still covers
    ``size × size``) and a random ``size × size`` crop is defocused at the
    sample's offsets. Ground truth is the plane with the highest focus measure; offsets are relative to it.
    ``meta["imaging"]`` records the chain.
    """
    from virtualfocus.edge.metrics import focus_measure

    r = ranges or RandomOptics()
    rng = np.random.default_rng(int(seed))
    a = _to_unit(image)
    if source_pixel_um <= 0:
        raise InputError(f"source_pixel_um={source_pixel_um}; expected a positive pixel size in µm")
    h, w = a.shape[:2]
    # at most max_upsampling finer than the source (its "sharp" texture then turns soft at the pixel scale, as on
    # an oversampling camera), nor so coarse that the image no longer covers the field
    min_px = max(r.pixel_um[0], source_pixel_um / max(1.0, r.max_upsampling))
    max_px = min(r.pixel_um[1], source_pixel_um * min(h, w) / size)
    if max_px < min_px:
        raise InputError(
            f"{name}: a {h}×{w} image at {source_pixel_um} µm/px cannot cover {size}×{size} px at "
            f"{min_px} µm/px"
        )
    sample = sample_optics(rng, replace(r, pixel_um=(min_px, max_px)), n_planes=n_planes)
    scale = source_pixel_um / sample.optics.pixel_um
    interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    a = np.clip(cv2.resize(a, None, fx=scale, fy=scale, interpolation=interp), 0.0, 1.0)
    h, w = a.shape[:2]
    y0 = int(rng.integers(0, max(h - size, 0) + 1))
    x0 = int(rng.integers(0, max(w - size, 0) + 1))
    crop = np.ascontiguousarray(a[y0 : y0 + size, x0 : x0 + size])
    if crop.shape[:2] != (size, size):
        raise InputError(f"{name}: resampled image {h}×{w} is smaller than {size}×{size}")
    planes = defocus_image(crop, sample, sample.offsets_um, rng=rng)
    sharp = int(np.argmax([focus_measure(p) for p in planes]))
    offsets = np.round(sample.offsets_um - sample.offsets_um[sharp], 6)
    meta: dict[str, Any] = {
        "source": "semisynthetic-random",
        "source_image": source,
        "source_pixel_um": source_pixel_um,
        "crop_origin": [y0, x0],
        "seed": int(seed),
        "imaging": sample.to_dict(),
        "optics": sample.optics.to_dict(),
        "camera": sample.camera.to_dict(),
        "camera_bit_depth": sample.camera.bit_depth,
        "pixel_um": sample.optics.pixel_um,
    }
    return ZStack(planes, offsets, sharp, name=name, meta=meta)
