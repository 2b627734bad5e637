"""Layered rendering: captures of a field of thin layers at known depths, at any focus offsets.

A capture at focus offset ``z`` is ``bg · (1 − Σₖ T_abs(z − dₖ) ∗ Aₖ − Σⱼ T_phase(z − dⱼ) ∗ φⱼ)``, computed in the
Fourier domain over the pass band only (:func:`~.transfer.otf_band`), with real float32 transfer functions
(:mod:`.transfer`) and OpenCV's real DFT. :func:`render_captures` adds camera noise (:mod:`.camera`) plane by plane
while the plane is in the CPU cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import ArrayLike
from virtualfocus.edge.errors import InputError

from .camera import Camera, _Noise
from .transfer import DEFOCUS_QUANTUM_UM, _as_float_pairs, _band_otf, _band_rows, _interleave, otf_band

if TYPE_CHECKING:  # optics.py imports this module
    from .optics import Optics

__all__ = ["absorbed_bands", "layer_bands", "render_bands", "render_captures", "render_layers"]


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
