"""Classical restoration baselines for the evaluation report: unsharp masking and Richardson–Lucy deconvolution.

Both are tuned the way a careful engineer would before comparing against a network: a small grid search on a
validation subset of stacks (never the evaluated ones when enough stacks exist), choosing the parameters with
the lowest mean MSE over every defocused plane. Richardson–Lucy searches the width of a Gaussian PSF (the
defocus level is unknown at capture time, so one PSF must serve every plane, as a deployed baseline would).

All functions take and return images on their natural scale and dtype (uint8, uint16 or float 0..1).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.zstacks.stack import ZStack

__all__ = [
    "PhysicsWiener",
    "TunedBaseline",
    "gaussian_psf",
    "richardson_lucy",
    "tune_physics",
    "tune_richardson_lucy",
    "tune_unsharp",
    "unsharp_mask",
]

Restore = Callable[[np.ndarray], np.ndarray]


def _to_float(img: np.ndarray) -> tuple[np.ndarray, float]:
    a = np.asarray(img)
    if a.size == 0:
        raise InputError(f"image: empty (shape {a.shape}); expected an H×W or H×W×3 image")
    if a.dtype == np.uint8:
        return a.astype(np.float32), 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32), 65535.0
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise InputError("image: contains NaN or infinite values")
        return a.astype(np.float32), 1.0
    raise InputError(f"image: dtype {a.dtype}; expected uint8, uint16 or float")


def _back(x: np.ndarray, like: np.ndarray, top: float) -> np.ndarray:
    x = np.clip(x, 0, top)
    if like.dtype.kind == "u":
        return (x + 0.5).astype(like.dtype)
    return x.astype(like.dtype)


def unsharp_mask(img: np.ndarray, *, sigma: float = 2.0, amount: float = 1.0) -> np.ndarray:
    """``img + amount · (img − G_σ ∗ img)``, clipped to the input's range and dtype."""
    if sigma <= 0:
        raise InputError(f"unsharp_mask sigma={sigma}; expected a positive width in pixels")
    x, top = _to_float(img)
    blurred = cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return _back(x + amount * (x - blurred), np.asarray(img), top)


def gaussian_psf(sigma: float) -> np.ndarray:
    """Normalised 2-D Gaussian kernel of width ``sigma`` px (size 2·⌈3σ⌉+1)."""
    if sigma <= 0:
        raise InputError(f"gaussian_psf sigma={sigma}; expected a positive width in pixels")
    r = max(1, int(np.ceil(3 * sigma)))
    g = cv2.getGaussianKernel(2 * r + 1, sigma, cv2.CV_32F)
    k = g @ g.T
    return (k / k.sum()).astype(np.float32)


def richardson_lucy(img: np.ndarray, psf: np.ndarray, *, iterations: int = 10) -> np.ndarray:
    """Richardson–Lucy deconvolution of every channel with ``psf`` (OpenCV filters, reflective borders)."""
    if iterations < 1:
        raise InputError(f"richardson_lucy iterations={iterations}; expected ≥ 1")
    k = np.asarray(psf, np.float32)
    if k.ndim != 2 or k.sum() <= 0:
        raise InputError(f"richardson_lucy psf: shape {k.shape}; expected a 2-D kernel with positive sum")
    k = k / k.sum()
    k_flip = np.ascontiguousarray(k[::-1, ::-1])
    x, top = _to_float(img)
    obs = x / top + 1e-3  # keep the ratio finite in black pixels
    est = obs.copy()
    for _ in range(iterations):
        conv = cv2.filter2D(est, -1, k, borderType=cv2.BORDER_REFLECT_101)
        ratio = obs / np.maximum(conv, 1e-6)
        est *= cv2.filter2D(ratio, -1, k_flip, borderType=cv2.BORDER_REFLECT_101)
    return _back((est - 1e-3) * top, np.asarray(img), top)


@dataclass(frozen=True)
class TunedBaseline:
    """A baseline with its chosen parameters and validation score."""

    name: str
    params: dict[str, float]
    validation_mse: float
    restore: Restore

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return self.restore(img)


def _validation_pairs(stacks: Iterable[ZStack], max_planes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for s in stacks:
        idx = [i for i in range(len(s)) if i != s.sharp_index]
        step = max(1, len(idx) // max(1, max_planes))
        for i in idx[::step][:max_planes]:
            pairs.append((s.planes[i], s.sharp))
    if not pairs:
        raise InputError("baseline tuning: no validation planes; expected at least one stack with 2+ planes")
    return pairs


def _score(fn: Restore, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    from virtualfocus.edge.metrics import mse

    return float(np.mean([mse(y, fn(x)) for x, y in pairs]))


def tune_unsharp(
    stacks: Iterable[ZStack],
    *,
    sigmas: Sequence[float] = (1.0, 2.0, 3.0, 5.0),
    amounts: Sequence[float] = (0.25, 0.5, 1.0, 1.5, 2.5),
    max_planes: int = 6,
) -> TunedBaseline:
    """Grid-search unsharp masking's width and amount for the lowest mean MSE on the validation stacks."""
    pairs = _validation_pairs(stacks, max_planes)
    best: tuple[float, float, float] | None = None
    for s in sigmas:
        for a in amounts:
            m = _score(functools.partial(unsharp_mask, sigma=s, amount=a), pairs)
            if best is None or m < best[0]:
                best = (m, s, a)
    assert best is not None
    m, s, a = best

    def restore(im: np.ndarray) -> np.ndarray:
        return unsharp_mask(im, sigma=s, amount=a)

    return TunedBaseline("unsharp", {"sigma": s, "amount": a}, m, restore)


def tune_richardson_lucy(
    stacks: Iterable[ZStack],
    *,
    widths: Sequence[float] = (0.75, 1.0, 1.5, 2.0, 3.0, 4.0),
    iterations: Sequence[int] = (5, 15),
    max_planes: int = 6,
) -> TunedBaseline:
    """Search the Gaussian PSF width (and iteration count) of Richardson–Lucy for the lowest mean MSE."""
    pairs = _validation_pairs(stacks, max_planes)
    best: tuple[float, float, int] | None = None
    for w in widths:
        k = gaussian_psf(w)
        for it in iterations:
            m = _score(functools.partial(richardson_lucy, psf=k, iterations=it), pairs)
            if best is None or m < best[0]:
                best = (m, w, it)
    assert best is not None
    m, w, it = best
    k = gaussian_psf(w)

    def restore(im: np.ndarray) -> np.ndarray:
        return richardson_lucy(im, k, iterations=it)

    return TunedBaseline("richardson-lucy", {"psf_sigma_px": w, "iterations": it}, m, restore)


class PhysicsWiener:
    """Wiener deconvolution with the optics model's own PSF at each plane's true defocus: an oracle, the upper
    reference for classical methods (a deployed method knows neither the optics nor the defocus).

    For a plane at offset ``d`` from the ground truth, channel ``c`` is filtered with
    ``H₀ · conj(H_d) / (|H_d|² + nsr)``, where ``H_d`` is the optical transfer function of
    :func:`virtualfocus.simulation.optics.psf` at ``d`` (the channel's wavelength and chromatic shift) and ``H₀``
    the in-focus one: the estimate is the in-focus image, not a perfectly sharp one. Only stacks whose
    ``meta["optics"]`` describes their optics (simulated and semi-synthetic stacks) qualify; elsewhere it returns
    None and the evaluation leaves the plane unscored for it.
    """

    needs_stack = True

    def __init__(self, *, nsr: float = 1e-2, kernel: int = 65, name: str = "physics-wiener",
                 validation_mse: float = float("nan")) -> None:
        if nsr <= 0:
            raise InputError(f"PhysicsWiener nsr={nsr}; expected a positive noise-to-signal ratio")
        self.nsr, self.kernel, self.name, self.validation_mse = float(nsr), int(kernel), name, validation_mse
        self._otf: dict[tuple[object, ...], np.ndarray] = {}

    @property
    def params(self) -> dict[str, float]:
        return {"nsr": self.nsr, "psf": "optics model at the true defocus (oracle)"}  # type: ignore[dict-item]

    def _transfer(self, optics_d: dict[str, object], d: float, c: int, shape: tuple[int, int]) -> np.ndarray:
        from virtualfocus.simulation.optics import Optics, psf

        key = (json.dumps(optics_d, sort_keys=True), round(d, 4), c, shape)
        if key not in self._otf:
            optics = Optics.from_dict(dict(optics_d))
            lam, shift = optics.wavelengths_um[c], optics.chromatic_shift_um[c]
            otfs = []
            for z in (d - shift, -shift):
                k = psf(optics, z, wavelength_um=lam, size=self.kernel)
                big = np.zeros(shape, np.float64)
                big[: self.kernel, : self.kernel] = k
                big = np.roll(big, (-(self.kernel // 2), -(self.kernel // 2)), axis=(0, 1))
                otfs.append(np.fft.rfft2(big))
            h_d, h_0 = otfs
            if len(self._otf) > 256:
                self._otf.clear()
            self._otf[key] = (h_0 * np.conj(h_d) / (np.abs(h_d) ** 2 + self.nsr)).astype(np.complex64)
        return self._otf[key]

    def __call__(self, img: np.ndarray, stack: ZStack, index: int) -> np.ndarray | None:
        optics = stack.meta.get("optics")
        if not isinstance(optics, dict) or stack.meta.get("offset_unit") == "plane":
            return None
        d = float(stack.offsets_um[index] - stack.offsets_um[stack.sharp_index])
        x, top = _to_float(img)
        pad = self.kernel // 2
        chans = x[..., None] if x.ndim == 2 else x
        out = np.empty_like(chans)
        for c in range(chans.shape[-1]):
            ch = cv2.copyMakeBorder(chans[..., c], pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
            otf_c = 1 if chans.shape[-1] == 1 else c  # gray: the green channel's optics
            filt = self._transfer(optics, d, otf_c, ch.shape)
            est = np.fft.irfft2(np.fft.rfft2(ch) * filt, s=ch.shape)
            out[..., c] = est[pad:-pad, pad:-pad]
        return _back(out.reshape(x.shape), np.asarray(img), top)


def tune_physics(stacks: Iterable[ZStack], *, nsrs: Sequence[float] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
                 max_planes: int = 6) -> PhysicsWiener:
    """Choose the Wiener noise-to-signal ratio of :class:`PhysicsWiener` for the lowest mean MSE on stacks that
    carry their optics."""
    from virtualfocus.edge.metrics import mse

    usable = [s for s in stacks if isinstance(s.meta.get("optics"), dict)]
    if not usable:
        raise InputError("physics baseline tuning: no stack with meta['optics']; expected simulated stacks")
    triples = []
    for s in usable:
        idx = [i for i in range(len(s)) if i != s.sharp_index]
        step = max(1, len(idx) // max(1, max_planes))
        triples += [(s, i) for i in idx[::step][:max_planes]]
    best: tuple[float, float] | None = None
    for nsr in nsrs:
        w = PhysicsWiener(nsr=nsr)
        m = float(np.mean([mse(s.sharp, w(s.planes[i], s, i)) for s, i in triples]))  # type: ignore[arg-type]
        if best is None or m < best[0]:
            best = (m, nsr)
    assert best is not None
    return PhysicsWiener(nsr=best[1], validation_mse=best[0])
