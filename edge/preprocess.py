"""Pre- and post-processing shared by training, export parity tests and the runtime.

One piece of code turns any capture into what a model expects and back, so that PyTorch, ONNX Runtime and
OpenVINO always see identical inputs (CSBDeep's ``Normalizer`` / ``Resizer`` / ``n_tiles`` idea):

- :func:`to_unit` / :func:`from_unit` — any gray/RGB/RGBA, uint8/uint16/float capture ↔ float32 H×W×C in 0..1,
  remembering what is needed to give back the same shape, dtype and value scale (alpha is carried through).
- :class:`Normalizer` — 0..1 ↔ the model's value range (``[-1, 1]`` for tanh generators), HWC ↔ NCHW.
- :class:`PadCrop` — reflect-pad height and width to the model's multiple, crop back after inference.
- :class:`Tiler` — split a large image into overlapping tiles of one fixed size and blend them back with a smooth
  window, so that no seam shows and one compiled shape serves every tile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .errors import InputError

__all__ = [
    "MIN_SIDE",
    "ImageInfo",
    "Normalizer",
    "PadCrop",
    "Tiler",
    "from_unit",
    "to_unit",
    "uint16_scale",
    "validate_image",
]

#: Smallest height/width the runtime accepts. Smaller captures cannot hold a cell at 100× and are refused.
MIN_SIDE = 16

_INT_DTYPES = (np.uint8, np.uint16)
_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
_ACCEPTED = "a 2-D gray or H×W×{1,3,4} gray/RGB/RGBA numpy array of uint8, uint16 or float"


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`to_unit` needs to restore a result to the caller's layout.

    Attributes
    ----------
    shape, dtype : the caller's array shape and dtype.
    scale : value that maps to 1.0 (255 for uint8, 2**bit_depth - 1 for uint16, 1 or the image max for float).
    gray : the capture had one channel (2-D or H×W×1).
    alpha : the alpha plane of an RGBA capture (returned untouched), else None.
    nonfinite : count of NaN/Inf pixels that were replaced before restoration.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    gray: bool
    alpha: np.ndarray | None = None
    nonfinite: int = 0


def validate_image(image: Any, *, name: str = "image") -> np.ndarray:
    """Check that ``image`` is a capture the runtime can restore and return it as an ndarray.

    Raises
    ------
    InputError
        Naming ``name`` and what is accepted.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name}: got {type(image).__name__}; expected {_ACCEPTED}")
    if image.dtype not in _INT_DTYPES + _FLOAT_DTYPES:
        raise InputError(f"{name}: dtype {image.dtype} is not supported; expected {_ACCEPTED}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4)):
        pass
    else:
        raise InputError(f"{name}: shape {image.shape} is not supported; expected {_ACCEPTED}")
    h, w = image.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(f"{name}: {h}×{w} pixels is too small; height and width must be at least {MIN_SIDE}")
    return image


def uint16_scale(image: np.ndarray, bit_depth: int | None) -> float:
    """The value of a uint16 capture that maps to 1.0: ``2**bit_depth - 1``, or the smallest common depth that fits."""
    if bit_depth is not None:
        if not 9 <= int(bit_depth) <= 16:
            raise InputError(f"bit_depth={bit_depth}: expected 9..16 for a uint16 capture")
        return float(2 ** int(bit_depth) - 1)
    # 10/12/14-bit cameras deliver uint16 arrays that never reach 65535: scale by the smallest depth that fits.
    peak = int(image.max()) if image.size else 0
    for bits in (10, 12, 14, 16):
        if peak < 2**bits:
            return float(2**bits - 1)
    return 65535.0


def to_unit(
    image: np.ndarray, *, name: str = "image", bit_depth: int | None = None
) -> tuple[np.ndarray, ImageInfo]:
    """Convert a capture to float32 H×W×C (C = 1 or 3) in 0..1.

    Parameters
    ----------
    image : np.ndarray
        Gray (H×W or H×W×1), RGB or RGBA; uint8, uint16 (8..16 significant bits) or float (nominally 0..1; a float
        image whose maximum exceeds 1 is scaled by that maximum and given back on its own scale).
    bit_depth : int, optional
        Significant bits of a uint16 capture (e.g. 12). Inferred from the data when omitted.

    Returns
    -------
    unit, info : the converted image and what :func:`from_unit` needs.
    """
    image = validate_image(image, name=name)
    nonfinite = 0
    alpha = None
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3].copy()
        rgb = image[..., :3]
    else:
        rgb = image
    if image.dtype == np.uint8:
        scale = 255.0
        unit = rgb.astype(np.float32) * np.float32(1 / 255.0)
    elif image.dtype == np.uint16:
        scale = uint16_scale(rgb, bit_depth)
        unit = rgb.astype(np.float32) * np.float32(1 / scale)
    else:
        work = rgb.astype(np.float64) if rgb.dtype == np.float64 else rgb.astype(np.float32)
        bad = ~np.isfinite(work)
        nonfinite = int(bad.sum())
        if nonfinite:
            if nonfinite == work.size:
                raise InputError(f"{name}: every pixel is NaN or Inf; nothing to restore")
            work = np.where(bad, 0, work)
        peak = float(work.max())
        scale = peak if peak > 1.0 else 1.0
        unit = np.clip(work / scale if scale != 1.0 else work, 0.0, 1.0).astype(np.float32)
    gray = unit.ndim == 2 or unit.shape[2] == 1
    if unit.ndim == 2:
        unit = unit[..., None]
    unit = np.clip(unit, 0.0, 1.0, out=np.ascontiguousarray(unit) if unit.flags.writeable else None)
    return unit, ImageInfo(image.shape, image.dtype, scale, gray, alpha, nonfinite)


def from_unit(unit: np.ndarray, info: ImageInfo) -> np.ndarray:
    """Inverse of :func:`to_unit`: float 0..1 H×W×C back to the caller's shape, dtype and scale."""
    out = np.clip(unit, 0.0, 1.0)
    if info.gray and out.shape[2] != 1:
        out = out.mean(axis=2, keepdims=True)
    if info.dtype in (np.dtype(np.uint8), np.dtype(np.uint16)):
        out = np.rint(out * np.float32(info.scale)).astype(info.dtype)
    else:
        out = (out.astype(np.float64) * info.scale).astype(info.dtype)
    if info.alpha is not None:
        out = np.concatenate([out, info.alpha[..., None].astype(info.dtype)], axis=2)
    return out.reshape(info.shape)


@dataclass(frozen=True)
class Normalizer:
    """Map 0..1 H×W×C images to the model's NCHW value range and back.

    ``channels`` is what the model takes; a gray capture is repeated to RGB for a 3-channel model and the
    result averaged back by :func:`from_unit`.
    """

    value_range: tuple[float, float] = (-1.0, 1.0)
    channels: int = 3

    def before(self, unit: np.ndarray) -> np.ndarray:
        """H×W×C in 0..1 → 1×C×H×W float32 in ``value_range``."""
        if unit.shape[2] != self.channels:
            if unit.shape[2] == 1:
                unit = np.repeat(unit, self.channels, axis=2)
            elif self.channels == 1:
                unit = unit.mean(axis=2, keepdims=True)
        lo, hi = self.value_range
        x = unit.transpose(2, 0, 1)[None] * np.float32(hi - lo) + np.float32(lo)
        return np.ascontiguousarray(x, dtype=np.float32)

    def after(self, y: np.ndarray) -> np.ndarray:
        """1×C×H×W (or C×H×W) in ``value_range`` → H×W×C float32 in 0..1."""
        if y.ndim == 4:
            y = y[0]
        lo, hi = self.value_range
        return np.ascontiguousarray(((y - np.float32(lo)) * np.float32(1 / (hi - lo))).transpose(1, 2, 0))


@dataclass(frozen=True)
class PadCrop:
    """Reflect-pad H×W×C images to a multiple of ``multiple`` (and at least ``min_size``) and crop back."""

    multiple: int = 16
    min_size: int = 0

    def padded_shape(self, h: int, w: int) -> tuple[int, int]:
        m = self.multiple
        return max(-(-h // m) * m, self.min_size), max(-(-w // m) * m, self.min_size)

    def pad(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """Pad symmetrically; returns the padded image and (top, bottom, left, right)."""
        h, w = image.shape[:2]
        ph, pw = self.padded_shape(h, w)
        top, left = (ph - h) // 2, (pw - w) // 2
        pads = (top, ph - h - top, left, pw - w - left)
        if pads == (0, 0, 0, 0):
            return image, pads
        # Reflection needs the image to be larger than the pad; tiny captures fall back to edge replication.
        mode = cv2.BORDER_REFLECT_101 if max(pads) < min(h, w) else cv2.BORDER_REPLICATE
        out = cv2.copyMakeBorder(image, *pads, borderType=mode)
        if out.ndim == 2:
            out = out[..., None]
        return out, pads

    @staticmethod
    def crop(image: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
        top, bottom, left, right = pads
        h, w = image.shape[:2]
        return image[top : h - bottom, left : w - right]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)  # the last tile is shifted inside the image, never padded
    return sorted(set(starts))


@dataclass(frozen=True)
class Tiler:
    """Overlapping tiles of one size, blended back with a raised-cosine window.

    Images up to ``max_tile`` on both sides run whole. Larger ones (1920×1200 scan images) are split into the
    fewest tiles of at most ``max_tile`` per side that overlap by at least ``overlap`` pixels; all tiles share
    one shape (a multiple of ``multiple``; the last row/column is shifted inward, never padded) so one compiled
    model shape serves the whole image. Weights ramp over ``overlap`` pixels only where a tile meets another tile
    and the blend is normalised by the summed weights, so it is a partition of unity everywhere: an identity
    model gives the image back exactly and no seam can show.
    """

    max_tile: int = 1024
    overlap: int = 32
    multiple: int = 16

    def __post_init__(self) -> None:
        if self.multiple < 1 or self.max_tile < self.multiple or not 0 <= 2 * self.overlap < self.max_tile:
            raise InputError(
                f"Tiler(max_tile={self.max_tile}, overlap={self.overlap}, multiple={self.multiple}): need "
                "multiple ≥ 1, max_tile ≥ multiple and 0 ≤ 2·overlap < max_tile"
            )

    def needs_tiling(self, h: int, w: int) -> bool:
        return h > self.max_tile or w > self.max_tile

    def _axis(self, length: int) -> int:
        """Tile length along one axis: the fewest tiles ≤ max_tile that overlap by ≥ overlap."""
        if length <= self.max_tile:
            return length
        top = self.max_tile - self.max_tile % self.multiple
        n = -(-(length - self.overlap) // (top - self.overlap))
        tile = -(-(length + (n - 1) * self.overlap) // n)
        return min(-(-tile // self.multiple) * self.multiple, length)

    def tile_shape(self, h: int, w: int) -> tuple[int, int]:
        """The one (height, width) every tile of an h×w image has."""
        return self._axis(h), self._axis(w)

    def tiles(self, h: int, w: int) -> Iterator[tuple[slice, slice]]:
        th, tw = self.tile_shape(h, w)
        for y in _starts(h, th, self.overlap):
            for x in _starts(w, tw, self.overlap):
                yield slice(y, y + th), slice(x, x + tw)

    def run(self, image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Apply ``fn`` (H×W×C → H×W×C', same H and W) tile by tile and blend.

        Parameters
        ----------
        image : H×W×C float32.
        fn : restores one tile.
        """
        h, w = image.shape[:2]
        if not self.needs_tiling(h, w):
            return fn(image)
        th, tw = self.tile_shape(h, w)
        ys, xs = _starts(h, th, self.overlap), _starts(w, tw, self.overlap)
        acc: np.ndarray | None = None
        norm = np.zeros((h, w, 1), np.float32)
        for sy, sx in self.tiles(h, w):
            out = fn(np.ascontiguousarray(image[sy, sx]))
            if acc is None:
                acc = np.zeros((h, w, out.shape[2]), np.float32)
            wy = _edge_window(th, self.overlap, first=sy.start == ys[0], last=sy.start == ys[-1])
            wx = _edge_window(tw, self.overlap, first=sx.start == xs[0], last=sx.start == xs[-1])
            wgt = (wy[:, None] * wx[None, :])[..., None]
            acc[sy, sx] += out * wgt
            norm[sy, sx] += wgt
        assert acc is not None
        return acc / norm


def _edge_window(n: int, overlap: int, *, first: bool, last: bool) -> np.ndarray:
    """Raised-cosine ramps over ``overlap`` pixels on the sides shared with a neighbouring tile."""
    wgt = np.ones(n, np.float32)
    if overlap > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap, dtype=np.float32) + 0.5) / overlap)
        if not first:
            wgt[:overlap] = ramp
        if not last:
            wgt[n - overlap :] = ramp[::-1]
    return wgt
