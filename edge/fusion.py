"""Multi-focus fusion: several captures of one field at different focus → one all-in-focus image (numpy + OpenCV).

A tilted slide or a thick cell is in focus in a different plane at every place. Given captures of the same field
at several focus positions (registered: the stage moved only in z), :func:`fuse_planes` keeps, at every pixel,
the capture that is sharpest *there*:

1. per capture, a local focus measure: the energy of the thesis's focus filters (ωx, ωy, on the green channel or
   the gray image) averaged over a window of ``window`` pixels;
2. per pixel, the sharpest capture wins (a hard decision map per capture); the maps are smoothed by a Gaussian of
   ``consistency`` pixels so that neighbouring pixels agree (no speckle of alternating planes in flat areas);
3. the captures are blended with those weights in a Laplacian pyramid (Burt & Adelson 1983): every frequency band
   is mixed at its own scale, so the seams between regions taken from different planes do not show.

Flat regions (no texture in any capture) fall back to the mean of the captures.

>>> fused = fuse_planes([z0, z1, z2])          # same shape and dtype as the captures  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .errors import InputError

__all__ = ["focus_energy", "fuse_planes"]

_FOCUS = np.array([-1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, -1], np.float32)


def _check(captures: Sequence[np.ndarray]) -> list[np.ndarray]:
    imgs = [np.asarray(c) for c in captures]
    if len(imgs) < 2:
        raise InputError(f"fusion needs at least 2 captures of the same field; got {len(imgs)}")
    shape, dtype = imgs[0].shape, imgs[0].dtype
    for k, im in enumerate(imgs):
        if im.shape != shape:
            raise InputError(f"capture {k} is {im.shape}, capture 0 is {shape}; captures of one field must have the "
                             "same size and channels")
        if im.dtype != dtype:
            raise InputError(f"capture {k} is {im.dtype}, capture 0 is {dtype}; captures must share one pixel type")
        if im.ndim not in (2, 3) or (im.ndim == 3 and im.shape[2] not in (1, 3, 4)) or min(im.shape[:2]) < 16:
            raise InputError(f"capture {k}: shape {im.shape}; expected H×W, H×W×3 or H×W×4 of at least 16×16")
        if dtype not in (np.uint8, np.uint16, np.float32):
            raise InputError(f"capture {k}: pixel type {dtype}; expected uint8, uint16 or float32")
    return imgs


def focus_energy(image: np.ndarray, *, window: int = 9) -> np.ndarray:
    """Local focus measure: thesis focus filters' energy on green (or gray), box-averaged over ``window`` px."""
    a = np.asarray(image, dtype=np.float32)
    g = a[..., 1] if a.ndim == 3 and a.shape[2] >= 3 else (a[..., 0] if a.ndim == 3 else a)
    rx = cv2.filter2D(g, cv2.CV_32F, _FOCUS[None, :], borderType=cv2.BORDER_REFLECT)
    ry = cv2.filter2D(g, cv2.CV_32F, _FOCUS[:, None], borderType=cv2.BORDER_REFLECT)
    return cv2.blur(rx * rx + ry * ry, (window, window), borderType=cv2.BORDER_REFLECT)


def _pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    g = [img]
    for _ in range(levels):
        g.append(cv2.pyrDown(g[-1]))
    lap = [g[i] - cv2.pyrUp(g[i + 1], dstsize=(g[i].shape[1], g[i].shape[0])) for i in range(levels)]
    return [*lap, g[-1]]


def fuse_planes(captures: Sequence[np.ndarray], *, window: int = 9, consistency: float = 4.0,
                levels: int | None = None) -> np.ndarray:
    """All-in-focus image of one field from captures at different focus.

    Parameters
    ----------
    captures : sequence of arrays
        Two or more registered captures of one field: H×W, H×W×3 (RGB) or H×W×4 (alpha taken from the first);
        uint8, uint16 or float32, all alike.
    window : int
        Side of the window over which sharpness is compared (px).
    consistency : float
        Gaussian σ (px) smoothing the per-capture decision maps.
    levels : int, optional
        Laplacian pyramid levels (default: as many as keep the coarsest level ≥ 8 px, at most 6).

    Returns
    -------
    np.ndarray
        Same shape and dtype as the captures.

    Raises
    ------
    InputError
        Fewer than two captures, or captures that differ in size, channels or pixel type.
    """
    imgs = _check(captures)
    dtype, alpha, one_channel = imgs[0].dtype, None, imgs[0].ndim == 3 and imgs[0].shape[2] == 1
    if one_channel:
        imgs = [im[..., 0] for im in imgs]
    if imgs[0].ndim == 3 and imgs[0].shape[2] == 4:
        alpha = imgs[0][..., 3]
        imgs = [im[..., :3] for im in imgs]
    energy = np.stack([focus_energy(im, window=window) for im in imgs])
    best = np.argmax(energy, axis=0)
    flat = energy.max(axis=0) <= 1e-6 * max(float(energy.max()), 1e-12)
    weights = []
    for k in range(len(imgs)):
        w = (best == k).astype(np.float32)
        w[flat] = 1.0 / len(imgs)
        weights.append(cv2.GaussianBlur(w, (0, 0), consistency) if consistency > 0 else w)
    total = np.sum(weights, axis=0) + 1e-12
    h, w_ = imgs[0].shape[:2]
    n_levels = levels if levels is not None else max(1, min(6, int(np.log2(min(h, w_) / 8))))
    fused: list[np.ndarray] | None = None
    for im, wk in zip(imgs, weights, strict=True):
        f = im.astype(np.float32)
        wk = wk / total
        lp = _pyramid(f, n_levels)
        gp = [wk]
        for _ in range(n_levels):
            gp.append(cv2.pyrDown(gp[-1]))
        parts = [band * (g[..., None] if band.ndim == 3 else g) for band, g in zip(lp, gp, strict=True)]
        fused = parts if fused is None else [a + b for a, b in zip(fused, parts, strict=True)]
    assert fused is not None
    out = fused[-1]
    for band in reversed(fused[:-1]):
        out = cv2.pyrUp(out, dstsize=(band.shape[1], band.shape[0])) + band
    if dtype == np.uint8:
        res = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    elif dtype == np.uint16:
        res = np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    else:
        res = out.astype(np.float32)
    if one_channel:
        res = res[..., None]
    if alpha is not None:
        res = np.concatenate([res, alpha[..., None]], axis=2)
    return res
