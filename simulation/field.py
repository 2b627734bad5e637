"""A simulated smear field and its captures: thin absorbing (and phase) layers at known depths, rendered at any
focus offset with the layered optics of :mod:`.optics` plus camera noise.

:func:`.specimen.make_field` draws one; :func:`.simulate.simulate_stack` turns one into a labelled z-stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from virtualfocus.edge.errors import InputError

from .camera import Camera, add_camera_noise, quantize
from .cells import _tint
from .render import absorbed_bands, layer_bands, render_bands, render_captures
from .transfer import _rfft2

if TYPE_CHECKING:
    from .optics import Optics

__all__ = ["SmearField", "render_field"]


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
        return quantize(inten, camera)

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
