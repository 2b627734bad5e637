"""Physically based blood-smear z-stack simulator (numpy + OpenCV, seeded, fast).

A :class:`SmearField` is a periodic canvas of thin absorbing layers at known depths: red cells (Evans–Fung
biconcave discs with central pallor, overlapping), one white cell near the centre (neutrophil, lymphocyte,
monocyte, eosinophil or basophil; lobed/round nuclei with chromatin texture and granular cytoplasm) sitting higher
than the red cells, and platelets, in May-Grünwald-Giemsa-like colours with per-field stain variation. Captures
at any focus offset are rendered with the layered pupil-function optics of :mod:`.optics` plus camera noise.

:func:`simulate_stack` makes one labelled :class:`~virtualfocus.zstacks.stack.ZStack` (17 planes at 0.2 µm over
−1.6 … +1.6 µm by default, ground truth = highest focus measure, re-centred to 0 µm). ``virtualfocus simulate``
writes many of them in parallel (``--workers``, one process per core; ≥ 20 stacks/s of 401×401×17 on 2 cores, see
``benchmarks/simulator.py``). A stack depends only on its seed and config, never on the number of workers.

Example
-------
>>> stack = simulate_stack(0)
>>> stack.planes.shape, stack.sharp_index
((17, 401, 401, 3), 8)
>>> field = make_field(np.random.default_rng(1))          # for a simulated microscope
>>> img = field.render(0.35, rng=np.random.default_rng(2))   # one noisy capture 0.35 µm from focus
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import functools
import itertools
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.zstacks.stack import ZStack

from .optics import (
    Camera,
    Optics,
    absorbed_bands,
    add_camera_noise,
    best_focus_shift,
    canvas_len,
    layer_bands,
    motion_otf,
    render_bands,
    render_captures,
)

__all__ = [
    "WBC_TYPES",
    "SimConfig",
    "SmearField",
    "capture_stack",
    "focus_frame",
    "main",
    "make_field",
    "render_field",
    "simulate_stack",
]

# 2: 401-px fields on a 416-px canvas (was 405), real OTFs, new camera-noise stream (same model)
# 3: partially coherent optics (weak-object transfer functions), phase layers, debris
GENERATOR_VERSION = 3
WBC_TYPES = ("neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil")
_LOG10 = math.log(10.0)
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


# ----------------------------------------------------------------------------------------------- field object
class SmearField:
    """A simulated smear field: sharp absorbing layers at known depths, renderable at any focus offset.

    Attributes
    ----------
    absorbed : np.ndarray
        ``(L, P, P, 3)`` float32 fraction of light absorbed in each layer (front-to-back composited, so the
        layers sum to the in-focus absorption). ``P`` is the periodic canvas size (≥ output size).
    depths_um : np.ndarray
        ``(L,)`` depth of each layer, in µm, in the focus frame: offset 0 focuses the sharpest plane.
    background : np.ndarray
        ``(3,)`` relative illumination of an empty pixel per channel (0..1 of the camera range).
    optics : Optics
    size : (int, int)
        Output height and width (the top-left crop of the canvas).
    illumination : np.ndarray or None
        ``(H, W)`` multiplicative illumination profile (vignetting), applied after blurring.
    focus_map : np.ndarray or None
        ``(H, W)`` extra focus offset (µm) of every pixel (tilted/curved slide), or None for a flat field.
    nucleus_centres : list of [y, x]
        Centres of white-cell nuclei in output pixel coordinates.
    info : dict
        Provenance (white-cell types, depths, stain factors) for stack metadata.
    phase : np.ndarray or None
        ``(L, P, P)`` float32 phase delay of each layer in radians at the optics' reference wavelength
        (thickness × refractive-index difference); scaled by ``λ_ref/λ`` per channel and rendered with the phase
        weak-object transfer function. None: absorption only.
    """

    def __init__(
        self,
        absorbed: np.ndarray,
        depths_um: np.ndarray,
        background: np.ndarray,
        optics: Optics,
        *,
        size: tuple[int, int],
        illumination: np.ndarray | None = None,
        focus_map: np.ndarray | None = None,
        nucleus_centres: list[list[int]] | None = None,
        info: dict[str, Any] | None = None,
        phase: np.ndarray | None = None,
    ) -> None:
        absorbed = np.asarray(absorbed, dtype=np.float32)
        if phase is not None:
            phase = np.asarray(phase, dtype=np.float32)
            if phase.shape != absorbed.shape[:3]:
                raise InputError(f"SmearField: phase has shape {phase.shape}; expected {absorbed.shape[:3]}")
        self.phase = phase
        if absorbed.ndim != 4 or absorbed.shape[-1] != 3 or absorbed.shape[0] != len(depths_um):
            raise InputError(
                f"SmearField: absorbed has shape {absorbed.shape} for {len(depths_um)} depths; expected (L, P, P, 3)"
            )
        self.absorbed = absorbed
        self.depths_um = np.asarray(depths_um, dtype=np.float64)
        self.background = np.asarray(background, dtype=np.float32).reshape(3)
        self.optics = optics
        self.size = (int(size[0]), int(size[1]))
        if self.size[0] > absorbed.shape[1] or self.size[1] > absorbed.shape[2]:
            raise InputError(f"SmearField: output size {self.size} exceeds canvas {absorbed.shape[1:3]}")
        self.illumination = illumination
        self.focus_map = focus_map
        #: Offset grid (µm) on which a field with a focus map is rendered and interpolated per pixel.
        self.focus_map_step_um = 0.1
        self.nucleus_centres = nucleus_centres or []
        self.info = info or {}
        self._spectra: np.ndarray | None = None
        self._bands: list[np.ndarray] | None = None
        self._gain: np.ndarray | None = None

    @property
    def canvas_shape(self) -> tuple[int, int]:
        return (int(self.absorbed.shape[1]), int(self.absorbed.shape[2]))

    @property
    def spectra(self) -> np.ndarray:
        """``(L, 3, P, P//2+1)`` Fourier transforms of the layers (computed once; phase layers after the absorbing
        ones, see :attr:`layer_depths_um`)."""
        if self._spectra is None:
            from .optics import _rfft2

            self._spectra = _rfft2(np.moveaxis(self._all_layers(), -1, 1)).astype(np.complex64, copy=False)
        return self._spectra

    def _all_layers(self) -> np.ndarray:
        if self.phase is None:
            return self.absorbed
        scale = np.float32(self.optics.reference_wavelength_um) / np.asarray(
            self.optics.wavelengths_um, np.float32
        )
        return np.concatenate([self.absorbed, self.phase[..., None] * scale], axis=0)

    @property
    def layer_depths_um(self) -> np.ndarray:
        """Depths of all rendered layers: the absorbing ones, then (if any) the phase ones."""
        if self.phase is None:
            return self.depths_um
        return np.concatenate([self.depths_um, self.depths_um])

    @property
    def phase_layers(self) -> np.ndarray | None:
        """``(L_all,)`` bool marking the phase layers for the renderer, or None."""
        if self.phase is None:
            return None
        n = self.depths_um.size
        return np.arange(2 * n) >= n

    @property
    def bands(self) -> list[np.ndarray]:
        """Pass band of :attr:`spectra` per channel, computed once (see :func:`.optics.absorbed_bands`)."""
        if self._bands is None:
            if self._spectra is not None:
                self._bands = layer_bands(self._spectra, self.optics, self.canvas_shape)
            else:
                self._bands = absorbed_bands(self._all_layers(), self.optics)
        return self._bands

    def intensity(
        self,
        offsets_um: Sequence[float] | np.ndarray,
        *,
        motion: np.ndarray | None = None,
        exposure: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Noise-free relative intensity ``(Z, H, W, 3)`` float32 (1.0 = top of the camera range).

        ``exposure`` optionally scales each plane (lamp/exposure flicker), ``(Z,)``, default 1.
        """
        offsets = np.atleast_1d(np.asarray(offsets_um, dtype=np.float64))
        if not np.all(np.isfinite(offsets)):
            raise InputError(f"SmearField.render: offsets {offsets.tolist()} must be finite µm values")
        scale = None
        if exposure is not None:
            scale = np.asarray(exposure, dtype=np.float64).reshape(-1)
            if scale.size != offsets.size:
                raise InputError(
                    f"SmearField.intensity: {scale.size} exposure factors for {offsets.size} offsets"
                )
        if self.focus_map is None:
            return self._flat_intensity(offsets, motion, scale)
        # Spatially varying focus: render on a grid of offsets (step focus_map_step_um) at the nodes that some
        # pixel of some plane needs, and interpolate linearly per pixel between the two nearest renders.
        step = float(self.focus_map_step_um)
        fm = self.focus_map.astype(np.float32)
        lo_i = np.floor((offsets + float(fm.min())) / step).astype(int)
        hi_i = np.ceil((offsets + float(fm.max())) / step).astype(int)
        nodes = sorted({int(k) for a, b in zip(lo_i, hi_i, strict=True) for k in range(a, max(b, a + 1) + 1)})
        index = {k: j for j, k in enumerate(nodes)}
        renders = self._flat_intensity(np.round(np.array(nodes) * step, 6), motion, None)
        out = np.empty((offsets.size, *self.size, 3), dtype=np.float32)
        for i, o in enumerate(offsets):
            pos = np.clip((o + fm) / np.float32(step), lo_i[i], max(hi_i[i], lo_i[i] + 1)).astype(np.float32)
            acc = out[i]
            acc.fill(0.0)
            for k in range(int(lo_i[i]), max(int(hi_i[i]), int(lo_i[i]) + 1) + 1):
                # hat-function weight of node k at every pixel (two nodes are non-zero at any pixel)
                wk = np.maximum(np.float32(1.0) - np.abs(pos - np.float32(k)), np.float32(0.0))
                if wk.any():
                    acc += renders[index[k]] * wk[..., None]
        if scale is not None:
            out *= scale.astype(np.float32)[:, None, None, None]
        return out

    def _transmission(self) -> np.ndarray:
        """``(H, W, 3)`` float32 light reaching the camera where nothing absorbs: background · illumination."""
        if self._gain is None:
            h, w = self.size
            if self.illumination is None:
                self._gain = np.ascontiguousarray(
                    np.broadcast_to(self.background, (h, w, 3)), dtype=np.float32
                )
            else:
                self._gain = _tint(self.illumination, self.background)
        return self._gain

    def _flat_intensity(
        self, offsets: np.ndarray, motion: np.ndarray | None, exposure: np.ndarray | None
    ) -> np.ndarray:
        # intensity = exposure · background · illumination · (1 − absorbed), fused into the render
        h, w = self.size
        return render_bands(
            self.bands,
            self.layer_depths_um,
            offsets,
            self.optics,
            self.canvas_shape,
            extra_otf=motion,
            crop=(h, w),
            transmission=self._transmission(),
            exposure=exposure,
            phase_layers=self.phase_layers,
        )

    def captures(
        self,
        offsets_um: Sequence[float] | np.ndarray,
        *,
        rng: np.random.Generator,
        camera: Camera | None = None,
        exposure: Sequence[float] | np.ndarray | None = None,
        motion: np.ndarray | None = None,
        motion_planes: Sequence[bool] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Noisy captures ``(Z, H, W, 3)`` in the camera's dtype, rendered and noised in the CPU cache (fast path).

        The same optics and noise model as ``add_camera_noise(intensity(...))`` (:meth:`render_planes`), fused
        so the float intensity stack is never stored (:func:`~virtualfocus.simulation.optics.render_captures`); the
        noise is drawn in another order from ``rng``. ``motion_planes`` (``(Z,)`` bool) limits ``motion`` to some
        planes. A field with a focus map goes through :meth:`intensity` and :func:`add_camera_noise`.
        """
        camera = camera or Camera()
        offsets = np.atleast_1d(np.asarray(offsets_um, dtype=np.float64))
        if not np.all(np.isfinite(offsets)):
            raise InputError(f"SmearField.captures: offsets {offsets.tolist()} must be finite µm values")
        scale = None if exposure is None else np.asarray(exposure, dtype=np.float64).reshape(-1)
        if scale is not None and scale.size != offsets.size:
            raise InputError(f"SmearField.captures: {scale.size} exposure factors for {offsets.size} offsets")
        mask = None if motion_planes is None else np.asarray(motion_planes, dtype=bool).reshape(-1)
        if self.focus_map is not None:
            inten = self.intensity(offsets, motion=motion, exposure=scale)
            if motion is not None and mask is not None and not mask.all():
                still = np.flatnonzero(~mask)
                inten[still] = self.intensity(
                    offsets[still], exposure=None if scale is None else scale[still]
                )
            return add_camera_noise(inten, camera, rng)
        return render_captures(
            self.bands,
            self.layer_depths_um,
            offsets,
            self.optics,
            self.canvas_shape,
            transmission=self._transmission(),
            camera=camera,
            rng=rng,
            exposure=scale,
            extra_otf=motion,
            extra_planes=mask,
            phase_layers=self.phase_layers,
        )

    def render_planes(
        self,
        offsets_um: Sequence[float] | np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        camera: Camera | None = None,
        noise: bool = True,
        motion: np.ndarray | None = None,
    ) -> np.ndarray:
        """Captures at several focus offsets, ``(Z, H, W, 3)`` in the camera's dtype.

        Parameters
        ----------
        offsets_um : sequence of float
            Focus offsets in µm (0 = best focus of this field).
        rng : numpy.random.Generator, optional
            Source of camera noise; required when ``noise`` is true.
        camera : Camera, optional
            Defaults to an 8-bit :class:`~virtualfocus.simulation.optics.Camera`.
        noise : bool
            Without noise the intensity is quantised directly.
        motion : np.ndarray, optional
            Extra transfer function (:func:`~virtualfocus.simulation.optics.motion_otf` on the canvas grid).
        """
        camera = camera or Camera()
        inten = self.intensity(offsets_um, motion=motion)
        if noise:
            if rng is None:
                raise InputError("SmearField.render: rng is required for camera noise (or pass noise=False)")
            return add_camera_noise(inten, camera, rng)
        return _quantize(inten, camera)

    def render(
        self,
        offset_um: float,
        *,
        rng: np.random.Generator | None = None,
        camera: Camera | None = None,
        noise: bool = True,
    ) -> np.ndarray:
        """One capture ``(H, W, 3)`` at ``offset_um`` µm from best focus (see :meth:`render_planes`)."""
        return self.render_planes([float(offset_um)], rng=rng, camera=camera, noise=noise)[0]


def _quantize(intensity: np.ndarray, camera: Camera) -> np.ndarray:
    """Noise-free quantisation of relative intensity to the camera's dtype (12-bit MSB-aligned)."""
    levels = (1 << camera.bit_depth) - 1
    q = np.clip(intensity * np.float32(levels) + np.float32(0.5), 0, levels)
    if camera.bit_depth == 8:
        return q.astype(np.uint8)
    out = q.astype(np.uint16)
    return out << 4 if camera.bit_depth == 12 else out


def render_field(
    field: SmearField,
    offset_um: float,
    *,
    rng: np.random.Generator | None = None,
    camera: Camera | None = None,
    noise: bool = True,
) -> np.ndarray:
    """One defocused capture of ``field`` at ``offset_um`` (function form of :meth:`SmearField.render`)."""
    return field.render(offset_um, rng=rng, camera=camera, noise=noise)


# ------------------------------------------------------------------------------------------- field generation
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random texture in ~[-1, 1] with about ``cells`` features per side (cubic upsampling)."""
    cells = max(2, int(cells))
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _wrap(start: int, n: int, p: int) -> list[tuple[int, int, int]]:
    """``(canvas start, patch start, length)`` pieces of ``n`` ≤ ``p`` cells from ``start`` on a ring of ``p``."""
    a = start % p
    first = min(n, p - a)
    return [(a, 0, first)] if first == n else [(a, 0, first), (0, first, n - first)]


class _Canvas:
    """Per-depth optical-density layers on a periodic canvas (objects wrap around the borders)."""

    def __init__(self, p: int, depth_quantum_um: float = 0.1) -> None:
        self.p = p
        self.q = depth_quantum_um
        self.layers: dict[int, np.ndarray] = {}

    def add(self, depth_um: float, y0: int, x0: int, od: np.ndarray) -> None:
        key = round(depth_um / self.q)
        layer = self.layers.get(key)
        if layer is None:
            layer = self.layers[key] = np.zeros((self.p, self.p, 3), np.float32)
        h, w = od.shape[:2]
        if h > self.p or w > self.p:  # a patch larger than the (small) canvas: wrapped indices, as always
            ys = (y0 + np.arange(h)) % self.p
            xs = (x0 + np.arange(w)) % self.p
            layer[np.ix_(ys, xs)] += od
            return
        # at most four rectangles once wrapped around the borders
        for ly, py, n_y in _wrap(y0, h, self.p):
            for lx, px, n_x in _wrap(x0, w, self.p):
                layer[ly : ly + n_y, lx : lx + n_x] += od[py : py + n_y, px : px + n_x]

    def composite(self) -> tuple[np.ndarray, np.ndarray]:
        """Absorbed fraction per layer, composited front to back, and layer depths (sorted)."""
        keys = sorted(self.layers)
        depths = np.array([k * self.q for k in keys])
        out = np.empty((len(keys), self.p, self.p, 3), np.float32)
        passed = np.ones((self.p, self.p, 3), np.float32)
        # transmitted t = 10^-OD; absorbed in a layer = passed·(1 − t) = passed − passed·t; then passed ← passed·t
        flat = passed.reshape(self.p, -1)  # 2-D single-channel views for OpenCV
        t = np.empty_like(flat)
        for i, k in enumerate(keys):
            cv2.exp(np.multiply(self.layers[k].reshape(self.p, -1), np.float32(-_LOG10)), dst=t)
            cv2.multiply(flat, t, dst=t)
            cv2.subtract(flat, t, dst=out[i].reshape(self.p, -1))
            flat, t = t, flat
        return out, depths


@functools.lru_cache(maxsize=64)
def _grid_theta(half: int) -> np.ndarray:
    """Read-only float32 polar angle on :func:`_grid` (0 at the centre)."""
    yy, xx, _ = _grid(half)
    theta = np.arctan2(yy, xx)
    theta.setflags(write=False)
    return theta


@functools.lru_cache(maxsize=64)
def _grid_angles(half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read-only float32 ``sin 2θ, cos 2θ, sin 3θ, cos 3θ`` of the polar angle θ on :func:`_grid`."""
    theta = _grid_theta(half).astype(np.float64)
    out = tuple(f(k * theta).astype(np.float32) for k in (2, 3) for f in (np.sin, np.cos))
    for a in out:
        a.setflags(write=False)
    return out  # type: ignore[return-value]


@functools.lru_cache(maxsize=64)
def _grid(half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read-only float32 ``(yy, xx, radius)`` of a ``(2·half+1)²`` patch centred on 0 (cell patches reuse them)."""
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    rr = np.hypot(yy, xx)
    for a in (yy, xx, rr):
        a.setflags(write=False)
    return yy, xx, rr


def _tint(m: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float32 optical density: the ``(H, W)`` amount ``m`` times a per-channel ``colour``."""
    m = np.asarray(m, dtype=np.float32)
    return cv2.merge([m * np.float32(c) for c in np.asarray(colour, dtype=np.float32)])


def _soft_disc_mask(r: np.ndarray, radius: float, soft: float = 0.7) -> np.ndarray:
    m = (radius - r) / soft + 0.5
    return np.minimum(np.maximum(m, 0.0, out=m), 1.0, out=m)  # clip to 0..1 (np.clip's overhead adds up)


def _rbc(
    rng: np.random.Generator, px: float, stain: np.ndarray, radius_um: float
) -> tuple[np.ndarray, float]:
    """One red cell: Evans–Fung biconcave thickness profile → optical density patch, and its radius (px)."""
    kind = rng.random()
    r_px = radius_um / px
    half = math.ceil(r_px * 1.15) + 2
    yy, xx, _ = _grid(half)
    ang = rng.uniform(0, np.pi)
    ca, sa = math.cos(ang), math.sin(ang)
    u = xx * ca + yy * sa
    v = -xx * sa + yy * ca
    aspect = min(max(float(rng.normal(1.0, 0.05)), 0.85), 1.15)
    if kind < 0.06:  # elliptocyte / ovalocyte
        aspect = float(rng.uniform(1.2, 1.5))
    u *= 1.0 / aspect
    v *= aspect
    r = np.sqrt(u * u + v * v)
    # wobble 1 + 0.025 sin(2θ + φ₂) + 0.015 sin(3θ + φ₃), θ = θ₀ − ang the polar angle in the cell's frame:
    # expanded with the grid's cached sin/cos of 2θ₀, 3θ₀
    phi2 = rng.uniform(0, 6.3) - 2 * ang
    phi3 = rng.uniform(0, 6.3) - 3 * ang
    s2, c2, s3, c3 = _grid_angles(half)
    wobble = s2 * np.float32(0.025 * math.cos(phi2))
    wobble += c2 * np.float32(0.025 * math.sin(phi2))
    wobble += s3 * np.float32(0.015 * math.cos(phi3))
    wobble += c3 * np.float32(0.015 * math.sin(phi3))
    wobble += np.float32(1.0)
    if kind > 0.94:  # echinocyte-like crenation
        theta = _grid_theta(half) - np.float32(ang)
        wobble += 0.04 * np.maximum(np.sin(rng.integers(10, 16) * theta + rng.uniform(0, 6.3)), 0)
    rn = r / (r_px * wobble)
    rho2 = rn * rn
    s = np.minimum(np.maximum(1.0 - rho2, 0.0), 1.0)
    # Evans & Fung (1972): h = sqrt(1 - ρ²)(C0 + C1 ρ² + C2 ρ⁴), µm; C0 scaled for pallor variation
    c0 = 0.81 * float(rng.uniform(0.8, 1.6)) if kind > 0.05 else 2.2  # kind < 0.05: spherocyte, no pallor
    np.minimum(np.maximum(rho2, 0.0, out=rho2), 1.0, out=rho2)
    thick = np.sqrt(s) * (c0 + 7.83 * rho2 - 4.39 * rho2 * rho2) * (radius_um / 3.91)
    edge = _soft_disc_mask(rn * r_px, r_px, 0.8)
    thick = np.maximum(thick, 0.0) * edge
    # haemoglobin is not perfectly even: mottled texture at two scales (about 1.5 µm and 0.5 µm)
    tex = (
        1.0
        + 0.05 * _smooth_noise(rng, thick.shape, 5)
        + 0.03 * _smooth_noise(rng, thick.shape, max(5, int(2 * half * px / 0.5)))
    )
    # a thin darker rim: light refracted out of the objective's aperture at the cell's steep edge
    d = (rn - 0.97) * r_px
    rim = 0.6 * np.exp(-0.5 * (d / 1.2) ** 2)
    return _tint(thick * tex + rim, stain), r_px


def _shape_mask(h: int, w: int, draw: Any) -> np.ndarray:
    """Anti-aliased float mask drawn with OpenCV at 4× supersampling."""
    m = np.zeros((h * 4, w * 4), np.uint8)
    draw(m, 4)
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _wbc(
    rng: np.random.Generator, px: float, kind: str, stain_scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """One white cell: (cytoplasm OD, nucleus OD, nucleus centre offset (dy, dx)) patches of equal size."""
    radius_um = {"neutrophil": 6.0, "lymphocyte": 4.6, "monocyte": 7.5, "eosinophil": 6.3, "basophil": 5.6}[
        kind
    ]
    radius_um *= float(rng.uniform(0.9, 1.12))
    r = radius_um / px
    half = math.ceil(r * 1.12) + 3
    n = 2 * half + 1
    yy, xx, rr = _grid(half)
    theta = np.arctan2(yy, xx)
    wob = (
        1.0 + 0.03 * np.sin(3 * theta + rng.uniform(0, 6.3)) + 0.02 * np.sin(5 * theta + rng.uniform(0, 6.3))
    )
    cyto = _soft_disc_mask(rr, r * wob, 1.0)

    def poly(points: list[tuple[float, float]], width: float) -> Any:
        def draw(m: np.ndarray, s: int) -> None:
            pts = [(int((x + half) * s), int((y + half) * s)) for y, x in points]
            for a, b in itertools.pairwise(pts):
                cv2.line(m, a, b, 255, max(1, int(width * s)), cv2.LINE_AA)

        return draw

    if kind in ("neutrophil", "eosinophil", "basophil"):
        lobes = {"neutrophil": int(rng.integers(3, 6)), "eosinophil": 2, "basophil": int(rng.integers(2, 4))}[
            kind
        ]
        lobe_r = r * float(rng.uniform(0.24, 0.3)) * (1.25 if lobes == 2 else 1.0)
        # lobes along a random arc inside the cell, joined by thin chromatin strands
        a0 = rng.uniform(0, 2 * np.pi)
        arc = rng.uniform(2.0, 3.6)
        rad = r * rng.uniform(0.35, 0.5)
        cy, cx = rng.normal(0, r * 0.05, 2)
        centres = [
            (
                cy + rad * math.sin(a0 + arc * i / max(lobes - 1, 1)),
                cx + rad * math.cos(a0 + arc * i / max(lobes - 1, 1)),
            )
            for i in range(lobes)
        ]

        def draw_lobes(m: np.ndarray, s: int) -> None:
            poly(centres, lobe_r * 0.35)(m, s)
            for y, x in centres:
                ax = lobe_r * rng.uniform(0.85, 1.15)
                ay = lobe_r * rng.uniform(0.75, 1.05)
                cv2.ellipse(
                    m,
                    (int((x + half) * s), int((y + half) * s)),
                    (int(ax * s), int(ay * s)),
                    float(rng.uniform(0, 180)),
                    0,
                    360,
                    255,
                    -1,
                    cv2.LINE_AA,
                )

        nuc = _shape_mask(n, n, draw_lobes)
        ncy = float(np.mean([c[0] for c in centres]))
        ncx = float(np.mean([c[1] for c in centres]))
    elif kind == "lymphocyte":
        ncy, ncx = rng.normal(0, r * 0.08, 2)
        nr = r * rng.uniform(0.72, 0.85)
        nuc = _soft_disc_mask(np.hypot(yy - ncy, xx - ncx), nr * wob, 1.0)
    else:  # monocyte: kidney-shaped, indented nucleus
        ncy, ncx = rng.normal(0, r * 0.08, 2)
        nr = r * rng.uniform(0.55, 0.65)
        a = rng.uniform(0, 2 * np.pi)
        body = _soft_disc_mask(np.hypot((yy - ncy) / 0.85, xx - ncx), nr, 1.0)
        notch = _soft_disc_mask(
            np.hypot(yy - ncy - nr * 1.08 * math.sin(a), xx - ncx - nr * 1.08 * math.cos(a)), nr * 0.5, 4.0
        )
        nuc = np.clip(body - notch, 0, 1)
    nuc = np.minimum(nuc, cyto)
    chrom = (
        0.78
        + 0.22 * _smooth_noise(rng, (n, n), int(n * px / 0.6))
        + 0.1 * _smooth_noise(rng, (n, n), int(n * px / 0.25))
    )
    nuc_od = {  # per-channel OD of chromatin (haematoxylin/azure: absorbs red and green, passes blue)
        "neutrophil": (0.62, 0.80, 0.26),
        "lymphocyte": (0.70, 0.88, 0.28),
        "monocyte": (0.45, 0.60, 0.22),
        "eosinophil": (0.58, 0.76, 0.25),
        "basophil": (0.66, 0.85, 0.28),
    }[kind]
    cyto_od = {
        "neutrophil": (0.07, 0.10, 0.05),
        "lymphocyte": (0.22, 0.14, 0.05),
        "monocyte": (0.15, 0.13, 0.07),
        "eosinophil": (0.05, 0.10, 0.08),
        "basophil": (0.10, 0.10, 0.05),
    }[kind]
    cyto_tex = 1.0 + 0.15 * _smooth_noise(rng, (n, n), int(n * px / 0.8))
    c_od = _tint(cyto * cyto_tex, np.array(cyto_od, np.float32) * stain_scale)
    if kind in ("neutrophil", "eosinophil", "basophil"):
        # granules: dense small dots in the cytoplasm (neutrophil: fine lilac; eosinophil: coarse orange;
        # basophil: coarse dark purple, also over the nucleus)
        count, gsize, g_od = {
            "neutrophil": (int(r * r * 0.35), 0.10, (0.05, 0.08, 0.03)),
            "eosinophil": (int(r * r * 0.45), 0.17, (0.02, 0.11, 0.10)),
            "basophil": (int(r * r * 0.10), 0.20, (0.40, 0.48, 0.16)),
        }[kind]
        g = np.zeros((n, n), np.float32)
        gy = rng.uniform(0, n, count)
        gx = rng.uniform(0, n, count)
        np.add.at(g, (gy.astype(int), gx.astype(int)), 1.0)
        sig = gsize / px
        g = cv2.GaussianBlur(g, (0, 0), sig) * (2 * np.pi * sig * sig) * 0.8
        within = cyto if kind == "basophil" else cyto * (1 - nuc)
        c_od += _tint(np.clip(g, 0, 1.5) * within, np.array(g_od, np.float32) * stain_scale)
    n_od = _tint(nuc * chrom, np.array(nuc_od, np.float32) * stain_scale)
    return c_od.astype(np.float32), n_od.astype(np.float32), (float(ncy), float(ncx))


def _platelet(rng: np.random.Generator, px: float, stain_scale: np.ndarray) -> np.ndarray:
    r = float(rng.uniform(0.8, 1.5)) / px
    half = math.ceil(r * 1.3) + 2
    yy, xx, rr = _grid(half)
    theta = np.arctan2(yy, xx)
    wob = 1.0 + 0.15 * np.sin(2 * theta + rng.uniform(0, 6.3)) + 0.1 * np.sin(3 * theta + rng.uniform(0, 6.3))
    m = _soft_disc_mask(rr, r * wob, 0.8)
    tex = np.clip(0.5 + 0.6 * _smooth_noise(rng, m.shape, max(3, int(2 * half * px / 0.35))), 0.1, 1.4)
    return _tint(m * tex, np.array((0.32, 0.45, 0.14), np.float32) * stain_scale)


def _debris(rng: np.random.Generator, px: float) -> np.ndarray:
    """A small irregular speck of dust or stain precipitate (grey-brown, 0.3–1.2 µm)."""
    r = float(rng.uniform(0.3, 1.2)) / px
    half = math.ceil(r * 1.5) + 2
    yy, xx, rr = _grid(half)
    theta = np.arctan2(yy, xx)
    wob = 1.0 + 0.3 * np.sin(2 * theta + rng.uniform(0, 6.3)) + 0.2 * np.sin(5 * theta + rng.uniform(0, 6.3))
    m = _soft_disc_mask(rr, max(r * wob.min(), 0.6) * wob / wob.min() * 0.8, 0.8)
    return _tint(m * float(rng.uniform(0.15, 0.6)), np.array((0.9, 1.0, 1.1), np.float32))


_DEPTH_QUANTUM_UM = 0.05


def _snap(v: float) -> float:
    return round(round(v / _DEPTH_QUANTUM_UM) * _DEPTH_QUANTUM_UM, 6)


def _parseval_focus(
    absorbed: np.ndarray, depths: np.ndarray, optics: Optics, *, span_um: float = 1.0
) -> float:
    """Offset (µm, 0.05 grid) maximising the noise-free green-channel focus measure, via Parseval.

    ``F`` of the rendered green channel is ``Σ_f W(f) |Σ_k OTF(o − d_k)(f) A_k(f)|²`` with ``W`` the power response
    of the thesis filters; evaluated on a coarse-to-fine grid of offsets, on a 2× subsampled canvas for speed.
    """
    from .optics import _rfft2, otf

    p = absorbed.shape[1] // 2 * 2
    sub = np.stack(
        [cv2.resize(a[:p, :p, 1], (p // 2, p // 2), interpolation=cv2.INTER_AREA) for a in absorbed]
    )
    shape = (sub.shape[1], sub.shape[2])
    spec = _rfft2(sub)
    fy = np.fft.fftfreq(shape[0])[:, None] / 2  # in cycles per original pixel
    fx = np.fft.rfftfreq(shape[1])[None, :] / 2
    weight = (2 - 2 * np.cos(12 * np.pi * fx)) ** 2 + (2 - 2 * np.cos(12 * np.pi * fy)) ** 2
    weight_flat = weight.ravel()
    # the subsampled grid has pixel 2× larger: ask the OTF for the same physical frequencies
    sub_optics = Optics(**{**optics.to_dict(), "pixel_um": optics.pixel_um * 2})  # type: ignore[arg-type]
    lam = optics.wavelengths_um[1]
    shift = optics.chromatic_shift_um[1]

    # real transfer functions: accumulate the real and imaginary parts separately, in float32
    spec_re = np.ascontiguousarray(spec.real, dtype=np.float32)
    spec_im = np.ascontiguousarray(spec.imag, dtype=np.float32)
    re = np.empty(spec_re.shape[1:], np.float32)
    im = np.empty_like(re)

    def score(o: float) -> float:
        for k, d in enumerate(depths):
            t = otf(sub_optics, o - d - shift, lam, shape)
            if k == 0:
                cv2.multiply(t, spec_re[k], dst=re)
                cv2.multiply(t, spec_im[k], dst=im)
            else:
                cv2.accumulateProduct(t, spec_re[k], re)
                cv2.accumulateProduct(t, spec_im[k], im)
        power = cv2.magnitude(re, im)  # |acc|, then |acc|² weighted and summed (float64 accumulation)
        cv2.multiply(power, power, dst=power)
        return float(np.sum(weight_flat * power.ravel()))  # float64 products (no BLAS threads)

    coarse = np.round(np.arange(-span_um, span_um + 1e-9, 0.2), 6)
    best = float(coarse[int(np.argmax([score(o) for o in coarse]))])
    fine = np.round(best + np.arange(-0.15, 0.151, 0.05), 6)
    return float(fine[int(np.argmax([score(o) for o in fine]))])


def focus_frame(
    absorbed: np.ndarray,
    depths_um: np.ndarray,
    optics: Optics,
    *,
    rng: np.random.Generator,
    jitter_um: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Layer depths re-expressed so that focus offset 0 is the sharpest plane (noise-free green focus measure).

    Returns ``(depths − focus, focus)``; ``focus`` lies on the 0.05 µm grid and includes a uniform random
    sub-step error of ±``jitter_um`` (the autofocus never lands exactly on the best plane).
    """
    jitter = float(rng.uniform(-jitter_um, jitter_um)) if jitter_um > 0 else 0.0
    focus = _snap(best_focus_shift(optics) + jitter)
    focus += _snap(_parseval_focus(absorbed, np.asarray(depths_um) - focus, optics))
    return np.round(np.asarray(depths_um) - focus, 6), focus


def _place_rbcs(
    rng: np.random.Generator,
    canvas: _Canvas,
    cfg: SimConfig,
    p: int,
    rbc_stain: np.ndarray,
    wbc: tuple[float, float, float],
) -> list[tuple[float, float, float]]:
    """Red cells: random sequential placement with limited overlap, avoiding the white cell's core.

    ``wbc`` is the white cell's ``(centre y, centre x, core radius)`` in canvas pixels. Returns ``(y, x, r)``.
    """
    px = cfg.optics.pixel_um
    wcy, wcx, wbc_r = wbc
    target = float(rng.uniform(*cfg.rbc_coverage)) * p * p
    covered = 0.0
    placed: list[tuple[float, float, float]] = []
    tries = 0
    pys = np.empty(0)
    pxs = np.empty(0)
    prs = np.empty(0)
    while covered < target and tries < 3000:
        tries += 1
        radius_um = min(max(float(rng.normal(3.75, 0.25)), 3.0), 4.6)
        r_px = radius_um / px
        cy, cx = rng.uniform(0, p, 2)
        dwy = (cy - wcy + p / 2) % p - p / 2
        dwx = (cx - wcx + p / 2) % p - p / 2
        if math.hypot(dwy, dwx) < (wbc_r + r_px) * 0.9:
            continue
        if pys.size:
            dy = (cy - pys + p / 2) % p - p / 2
            dx = (cx - pxs + p / 2) % p - p / 2
            # mostly touching at most, sometimes overlapping (as in a real monolayer's thicker parts)
            lim = (r_px + prs) * (0.72 if rng.random() < 0.15 else 0.98)
            if (dy * dy + dx * dx < lim * lim).any():
                continue
        od, r_px = _rbc(rng, px, rbc_stain, radius_um)
        placed.append((cy, cx, r_px))
        pys, pxs, prs = np.append(pys, cy), np.append(pxs, cx), np.append(prs, r_px)
        covered += math.pi * r_px * r_px
        hh = od.shape[0]
        depth = rng.normal(0.0, cfg.rbc_depth_sd_um)
        canvas.add(depth, round(cy) - hh // 2, round(cx) - hh // 2, od)
    return placed


def _add_small_objects(
    rng: np.random.Generator, canvas: _Canvas, cfg: SimConfig, p: int, nuc_scale: np.ndarray
) -> None:
    """Platelets, debris specks and the faint plasma stain."""
    px = cfg.optics.pixel_um
    for _ in range(int(rng.integers(cfg.platelets[0], cfg.platelets[1] + 1) * (p * p) / (401 * 401))):
        od = _platelet(rng, px, nuc_scale)
        hh = od.shape[0]
        cy, cx = rng.uniform(0, p, 2)
        canvas.add(rng.normal(0.05, 0.05), int(cy) - hh // 2, int(cx) - hh // 2, od)

    for _ in range(int(rng.integers(cfg.debris[0], cfg.debris[1] + 1) * (p * p) / (401 * 401))):
        od = _debris(rng, px)
        hh = od.shape[0]
        cy, cx = rng.uniform(0, p, 2)
        canvas.add(rng.normal(0.0, 0.1), int(cy) - hh // 2, int(cx) - hh // 2, od)

    plasma = _tint(0.006 + 0.004 * _smooth_noise(rng, (p, p), 6), np.array((0.5, 1.0, 0.6), np.float32))
    canvas.add(0.0, 0, 0, plasma)


def make_field(
    rng: np.random.Generator, config: SimConfig | None = None, *, size: int | None = None
) -> SmearField:
    """Generate a random smear field (no rendering yet).

    Parameters
    ----------
    rng : numpy.random.Generator
    config : SimConfig, optional
    size : int, optional
        Overrides ``config.size``.

    Returns
    -------
    SmearField
        Depths are in the focus frame: offset 0 µm is the nominal best focus (the red-cell layer, shifted by the
        optics' best-focus shift and a random sub-step jitter).
    """
    cfg = config or SimConfig()
    out_size = int(size or cfg.size)
    optics = cfg.optics
    px = optics.pixel_um
    p = canvas_len(out_size)
    canvas = _Canvas(p)
    sv = cfg.stain_variation

    # stain: per-field multiplicative factors per channel for eosin (red cells) and azure (nuclei)
    rbc_stain = np.array((0.009, 0.066, 0.042), np.float32) * np.exp(rng.normal(0, 0.12 * sv, 3)).astype(
        np.float32
    )
    rbc_stain *= np.float32(np.exp(rng.normal(0, 0.15 * sv)))
    nuc_scale = np.exp(rng.normal(0, 0.1 * sv, 3)).astype(np.float32) * np.float32(
        np.exp(rng.normal(0, 0.12 * sv))
    )
    background = np.clip(
        np.array((0.86, 0.89, 0.86))
        * np.exp(rng.normal(0, 0.035 * sv, 3))
        * np.exp(rng.normal(0, 0.05 * sv)),
        0.5,
        0.97,
    )

    # white cell near the centre, higher than the red cells
    weights = np.array([_WBC_FREQUENCY[t] for t in cfg.wbc_types])
    kind = str(cfg.wbc_types[int(rng.choice(len(cfg.wbc_types), p=weights / weights.sum()))])
    c_od, n_od, (ncy, ncx) = _wbc(rng, px, kind, nuc_scale)
    wh = c_od.shape[0]
    wcy = out_size / 2 + rng.normal(0, out_size * 0.06)
    wcx = out_size / 2 + rng.normal(0, out_size * 0.06)
    wbc_depth = float(rng.uniform(*cfg.wbc_height_um))
    y0, x0 = round(wcy) - wh // 2, round(wcx) - wh // 2
    canvas.add(wbc_depth, y0, x0, c_od)
    canvas.add(wbc_depth + 0.1, y0, x0, n_od)  # the nucleus bulges above the cytoplasm
    wbc_r = wh / 2 * 0.85
    nucleus = [[round(wcy + ncy) % p, round(wcx + ncx) % p]]

    placed = _place_rbcs(rng, canvas, cfg, p, rbc_stain, (wcy, wcx, wbc_r))
    _add_small_objects(rng, canvas, cfg, p, nuc_scale)

    absorbed, depths = canvas.composite()
    # Offsets are "focal plane − object depth"; shifting depths by the focus position puts best focus at 0.
    # Depths and focus live on a 0.05 µm grid so that transfer functions are shared between stacks (cache).
    depths_focus, focus = focus_frame(absorbed, depths, optics, rng=rng, jitter_um=cfg.focus_jitter_um)

    illumination = None
    if cfg.vignetting > 0:
        cyv, cxv = rng.normal(out_size / 2, out_size * 0.1, 2)
        ramp = np.arange(out_size, dtype=np.float32)
        r2 = ((ramp - np.float32(cyv)) ** 2)[:, None] + ((ramp - np.float32(cxv)) ** 2)[None, :]
        illumination = (1.0 - np.float32(cfg.vignetting * sv / (0.5 * out_size**2)) * r2).astype(np.float32)

    focus_map = None
    info: dict[str, Any] = {
        "wbc_type": kind,
        "wbc_depth_um": round(wbc_depth, 4),
        "rbc_count": len(placed),
        "focus_um": round(focus, 4),
        "layer_depths_um": [round(float(d), 4) for d in depths_focus],
        "background": [round(float(b), 4) for b in background],
    }
    if cfg.focus_map_um > 0:
        yy, xx = np.mgrid[0:out_size, 0:out_size].astype(np.float32) / out_size - 0.5
        a, b, c = rng.normal(0, 1, 3)
        surf = (
            a * yy
            + b * xx
            + c * (yy * yy + xx * xx - 1 / 6)
            + 0.3 * _smooth_noise(rng, (out_size, out_size), 3)
        )
        surf = surf - surf.mean()
        focus_map = (surf / max(np.ptp(surf), 1e-6) * cfg.focus_map_um).astype(np.float32)
        t = cfg.focus_map_tiles
        tiles = cv2.resize(focus_map, (t, t), interpolation=cv2.INTER_AREA)
        info["focus_map_tiles_um"] = np.round(tiles, 4).tolist()

    phase = None
    if cfg.phase_rad > 0:
        dens = absorbed.mean(axis=-1)
        top = max(float(np.percentile(dens.sum(axis=0), 99.5)), 1e-6)
        phase = dens * np.float32(cfg.phase_rad / top)
    return SmearField(
        absorbed,
        depths_focus,
        background,
        optics,
        size=(out_size, out_size),
        illumination=illumination,
        focus_map=focus_map,
        nucleus_centres=[c for c in nucleus if c[0] < out_size and c[1] < out_size],
        info=info,
        phase=phase,
    )


# ---------------------------------------------------------------------------------------------------- stacks
def _focus_measure_green(planes: np.ndarray) -> np.ndarray:
    from virtualfocus.edge.metrics import focus_measure

    return np.array([focus_measure(p) for p in planes])


def _sharpest_plane(planes: np.ndarray) -> int:
    """``metrics.ground_truth_index(planes)`` — the plane with the highest thesis focus measure — faster.

    Scores every plane's green channel with the same filter responses as :func:`.metrics.focus_measure`, summing
    the squares in double precision with OpenCV (no float64 copies); planes within 1e-6 of the best are then
    re-scored exactly, so near-ties resolve exactly as :func:`.metrics.ground_truth_index` does.
    """
    from virtualfocus.edge.metrics import _responses, focus_measure, to_255

    scores = []
    for p in planes:
        if p.dtype == np.uint8:
            # ω = [−1 0 0 0 0 0 2 0 0 0 0 0 −1] on the valid region, in exact integer arithmetic: the same
            # responses as the float32 filters, without the zero taps
            g = p[..., 1].astype(np.int16)
            c = g[6:-6, 6:-6]
            gx = 2 * c - g[6:-6, :-12] - g[6:-6, 12:]
            gy = 2 * c - g[:-12, 6:-6] - g[12:, 6:-6]
        else:
            gx, gy = _responses(to_255(p[..., 1]))
        scores.append((cv2.norm(gx, cv2.NORM_L2SQR) + cv2.norm(gy, cv2.NORM_L2SQR)) / gx.size)
    best = max(scores)
    near = [i for i, v in enumerate(scores) if v >= best * (1.0 - 1e-6)]
    if len(near) == 1:
        return near[0]
    exact = [focus_measure(planes[i]) for i in near]
    return near[int(np.argmax(exact))]


def capture_stack(
    fld: SmearField, rng: np.random.Generator, cfg: SimConfig
) -> tuple[np.ndarray, np.ndarray, int, dict[str, Any]]:
    """Capture a focus series of ``fld`` as configured (motion blur, flicker, noise, re-centring).

    Returns
    -------
    planes, offsets_um, sharp_index, meta
        Offsets are relative to the plane with the highest focus measure; ``meta`` has ``motion`` and
        ``focus_shift_um``.
    """
    offsets = cfg.offsets_um
    centre = len(offsets) // 2
    motion = None
    motion_meta: dict[str, float] | None = None
    if cfg.motion_probability > 0 and rng.random() < cfg.motion_probability:
        length = float(rng.uniform(*cfg.motion_length_px))
        angle = float(rng.uniform(0, 180))
        motion = motion_otf(length, angle, fld.canvas_shape)
        motion_meta = {"length_px": round(length, 3), "angle_deg": round(angle, 3)}

    noise_rng = np.random.default_rng(rng.integers(2**63))
    flicker = (1.0 + cfg.flicker * rng.standard_normal(len(offsets))).astype(np.float32)
    flicker[centre] = 1.0

    # the ground-truth plane stays free of motion blur (a clean training target)
    motion_planes = np.arange(len(offsets)) != centre

    def capture(shift: float) -> np.ndarray:
        if cfg.noise:
            return fld.captures(
                offsets + shift,
                rng=noise_rng,
                camera=cfg.camera,
                exposure=flicker,
                motion=motion,
                motion_planes=motion_planes,
            )
        inten = fld.intensity(offsets + shift, motion=motion, exposure=flicker)
        if motion is not None:
            inten[centre] = fld.intensity([offsets[centre] + shift], exposure=flicker[centre : centre + 1])[0]
        return _quantize(inten, cfg.camera)

    # ground truth = highest focus measure; if it is not the centre plane, move the focus once and re-render so
    # the stack stays symmetric around its ground truth (as the thesis re-centred real stacks)
    shift = 0.0
    planes = capture(shift)
    sharp = _sharpest_plane(planes)
    if sharp != centre:
        shift = float(offsets[sharp])
        planes = capture(shift)
        sharp = _sharpest_plane(planes)
    offsets_rel = offsets - offsets[sharp]
    return planes, np.round(offsets_rel, 6), sharp, {"focus_shift_um": round(shift, 4), "motion": motion_meta}


def simulate_stack(seed: int, *, config: SimConfig | None = None, name: str | None = None) -> ZStack:
    """Simulate one labelled z-stack.

    Parameters
    ----------
    seed : int
        Everything (field, stain, noise, blur) is drawn from ``np.random.default_rng(seed)``; the same seed and
        config always give the same stack.
    config : SimConfig, optional
    name : str, optional
        Stack name; default ``sim-<seed>``.

    Returns
    -------
    ZStack
        Planes ``(Z, H, W, 3)`` (uint8, or uint16 for 12/16-bit cameras), offsets in µm re-centred so that the
        plane with the highest focus measure is at 0 (``sharp_index``), and ``meta`` with ``seed``, ``optics``,
        ``camera``, ``nucleus_centres`` ``[[y, x], ...]``, ``wbc_type``, ``motion`` and (if enabled)
        ``focus_map_tiles_um``.
    """
    cfg = config or SimConfig()
    rng = np.random.default_rng(int(seed))
    fld = make_field(rng, cfg)
    planes, offsets_rel, sharp, extra = capture_stack(fld, rng, cfg)
    meta: dict[str, Any] = {
        "source": "simulated",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "optics": cfg.optics.to_dict(),
        "camera": cfg.camera.to_dict(),
        "camera_bit_depth": cfg.camera.bit_depth,
        "pixel_um": cfg.optics.pixel_um,
        "nucleus_centres": fld.nucleus_centres,
        **extra,
        **fld.info,
    }
    return ZStack(planes, np.round(offsets_rel, 6), sharp, name=name or f"sim-{int(seed):06d}", meta=meta)


# ------------------------------------------------------------------------------------------------------- CLI
def _init_worker() -> None:
    """Per-process setup for a pool of simulators: one process per core, so OpenCV runs single-threaded, and
    large arrays are recycled (:func:`_keep_freed_memory`).

    Results never depend on it (every stack's random streams come from its own seed).
    """
    cv2.setNumThreads(1)
    _keep_freed_memory()


def _keep_freed_memory() -> None:
    """glibc: serve large arrays from the heap and keep freed memory for the next stack.

    By default every multi-megabyte array is a fresh mapping that the kernel must fault in and zero: about 8 % of
    a stack's CPU time. A simulator process reuses the same sizes stack after stack, so it keeps them instead
    (its memory stays at its peak). No effect elsewhere (other C libraries, other systems).
    """
    if not sys.platform.startswith("linux"):  # pragma: no cover
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD: mmap only above 256 MB
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: give memory back only above 1 GB free
    except (OSError, AttributeError):  # not glibc
        pass


def _main_importable() -> bool:
    """Whether ``spawn``/``forkserver`` workers can re-import ``__main__`` (not so for a script read from stdin)."""
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__spec__", None) is not None:
        return True
    path = getattr(main, "__file__", None)
    return path is None or Path(path).is_file()


def _pool(workers: int) -> Any:
    """A process pool of simulators, each OpenCV single-threaded (:func:`_init_worker`).

    Workers are started from a fresh server process (``forkserver``; ``spawn`` off Linux), never forked from the
    caller: a child forked after OpenCV has started its thread pool deadlocks in OpenCV.
    """
    import multiprocessing as mp

    if sys.platform.startswith("linux"):
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])  # import numpy/OpenCV/this module once, in the server
    else:  # pragma: no cover
        ctx = mp.get_context("spawn")
    return ctx.Pool(workers, initializer=_init_worker)


def _worker(args: tuple[int, int, str, SimConfig, bool]) -> tuple[str, float]:
    from virtualfocus.zstacks.stack import write_stack

    from .randomize import random_stack

    index, seed, out, cfg, randomize = args
    t0 = time.perf_counter()
    if randomize:  # a new microscope, camera and stain per stack
        stack = dataclasses.replace(random_stack(seed, size=cfg.size), name=f"rand-{index:06d}")
    else:
        stack = simulate_stack(seed, config=cfg, name=f"sim-{index:06d}")
    write_stack(Path(out) / stack.name, stack)
    return stack.name, time.perf_counter() - t0


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="virtualfocus simulate",
        description="Write simulated blood-smear z-stacks (multi-page TIFF + JSON sidecar) for training and tests.",
    )
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--stacks", type=int, required=True, help="number of stacks to write")
    ap.add_argument("--seed", type=int, default=0, help="base seed; stack i uses seed S+i (default 0)")
    ap.add_argument("--size", type=int, default=401, help="field size in pixels (default 401)")
    ap.add_argument(
        "--bit-depth", type=int, default=8, choices=(8, 12, 16), help="camera bit depth (default 8)"
    )
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument(
        "--motion", type=float, default=0.0, help="probability of motion blur per stack (default 0)"
    )
    ap.add_argument("--focus-map", type=float, default=0.0, help="per-pixel focus variation, µm peak-to-peak")
    ap.add_argument("--start", type=int, default=0, help="first stack index (to extend a folder; default 0)")
    ap.add_argument(
        "--randomize",
        action="store_true",
        help="draw objective, pixel size, condenser, aberrations, specimen, stain and camera per stack "
        "(virtualfocus.simulation.randomize; --bit-depth/--motion/--focus-map are then ignored)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``virtualfocus simulate``."""
    args = _parser().parse_args(argv)
    if args.stacks < 1:
        raise InputError(f"--stacks {args.stacks}; expected at least 1")
    if args.workers < 1:
        raise InputError(f"--workers {args.workers}; expected at least 1")
    cfg = SimConfig(
        size=args.size,
        camera=Camera(bit_depth=args.bit_depth),
        motion_probability=args.motion,
        focus_map_um=args.focus_map,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (i, args.seed + i, str(out), cfg, bool(args.randomize))
        for i in range(args.start, args.start + args.stacks)
    ]
    t0 = time.perf_counter()
    done = 0
    workers = args.workers
    if workers > 1 and not _main_importable():
        print(
            "note: worker processes could not re-import the main program (run from stdin?); "
            "simulating in this process",
            file=sys.stderr,
        )
        workers = 1
    if workers == 1:
        results = map(_worker, jobs)
        for _ in results:
            done += 1
    else:
        with _pool(workers) as pool:
            for _ in pool.imap_unordered(_worker, jobs, chunksize=4):
                done += 1
    dt = time.perf_counter() - t0
    print(
        f"wrote {done} stacks to {out} in {dt:.1f} s ({done / max(dt, 1e-9):.1f} stacks/s, {workers} workers)"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
