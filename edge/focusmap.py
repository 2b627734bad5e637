"""Per-tile focus map of a capture: estimated |defocus| (µm) per tile, for a tilted slide or a thick specimen that is
only partly in focus.

The map costs no extra network. For every tile it takes the restoration gain ``F(restored) / F(capture)`` (the thesis
focus measure F of the focus channel, summed over the tile; see :func:`~virtualfocus.edge.defocus.restoration_gain`),
smooths the log-gains with a 3×3 median (a focus surface is smooth, single tiles are noisy), and reads |defocus| off
the restoring model's gain calibration (its manifest's ``focus_map_gain``, measured per tile; else its frame
``focus_gain``)::

    rt = FocusRuntime.load(focus_map=True)
    frame = rt.restore(capture)
    frame.focus_map.um            # 6×6 float32 for a 360×360 capture (tiles of 60 px), NaN where a tile is blank
    frame.focus_map.untrusted_share

The estimate is a magnitude (``signed`` False): both sides of focus blur alike and the gain does not tell which.
Within about ±0.4 µm of focus the image barely changes (depth of field), so tiles there read 0…0.4 µm without
telling those apart; the map separates in-focus from clearly defocused regions. Figures:
``benchmarks/results/focus-map.md``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .defocus import DEFAULT_TRUSTED_UM, FocusGainCalibration
from .errors import InputError

__all__ = ["DEFAULT_TILE_PX", "MIN_TILE_PX", "FocusMap", "focus_map", "tile_edges", "tile_energy"]

#: Default tile side (px): 360 px captures get 6×6 tiles of 60 px.
DEFAULT_TILE_PX = 64
#: Smallest tile the focus filters can measure (they reach 6 px to each side).
MIN_TILE_PX = 16

_R = 6  # half-width of the thesis focus filters (see virtualfocus.edge.defocus.focus_energy)


def check_tile_px(tile_px: Any) -> int:
    """``tile_px`` as an int, or :class:`InputError` saying what is accepted."""
    if isinstance(tile_px, bool) or not isinstance(tile_px, (int, np.integer)) or tile_px < MIN_TILE_PX:
        raise InputError(f"focus map tile size {tile_px!r}: expected an integer of at least {MIN_TILE_PX} px")
    return int(tile_px)


def tile_edges(length: int, tile_px: int) -> np.ndarray:
    """Edges of the tiles along one side: ``round(length / tile_px)`` (at least 1) tiles of nearly equal size."""
    n = max(1, round(length / tile_px))
    return np.linspace(0, length, n + 1).round().astype(np.int64)


def tile_energy(plane: np.ndarray, y_edges: np.ndarray, x_edges: np.ndarray) -> np.ndarray:
    """Mean thesis focus energy (gx² + gy², the terms of F) of each tile of one plane.

    The filters need 6 px on each side, so tiles along the frame's border lose those 6 px; every tile keeps at
    least ``MIN_TILE_PX - 12`` rows and columns.
    """
    g = np.asarray(plane, np.float32)
    c = g[_R:-_R, _R:-_R]
    gx = 2 * c - g[_R:-_R, : -2 * _R] - g[_R:-_R, 2 * _R :]
    gy = 2 * c - g[: -2 * _R, _R:-_R] - g[2 * _R :, _R:-_R]
    gx *= gx
    gy *= gy
    gx += gy
    he, we = gx.shape
    ys = np.clip(y_edges[:-1] - _R, 0, he - 1)
    xs = np.clip(x_edges[:-1] - _R, 0, we - 1)
    sums = np.add.reduceat(np.add.reduceat(gx, ys, axis=0), xs, axis=1).astype(np.float64)
    counts = np.diff(np.r_[ys, he])[:, None] * np.diff(np.r_[xs, we])[None, :]
    return sums / counts


def _median3(a: np.ndarray) -> np.ndarray:
    """3×3 median of a small 2-D map (edges replicated; NaN tiles ignored and kept NaN)."""
    if a.shape[0] < 2 and a.shape[1] < 2:
        return a
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    stack = np.stack([p[i : i + h, j : j + w] for i in range(3) for j in range(3)])
    nan = np.isnan(a)
    if nan.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN neighbourhood: stays NaN
            out = np.nanmedian(stack, axis=0)
        out[nan] = np.nan
        return out
    return np.median(stack, axis=0)


@dataclass(frozen=True, eq=False)
class FocusMap:
    """Estimated |defocus| per tile of one capture.

    Attributes
    ----------
    um : np.ndarray
        rows × cols float32, |defocus| in µm per tile; NaN for a tile without texture (blank, saturated).
    y_edges, x_edges : tuple of int
        Tile edges in capture pixels (``rows + 1`` and ``cols + 1`` values; tile (i, j) covers
        ``y_edges[i]:y_edges[i+1]``, ``x_edges[j]:x_edges[j+1]``).
    signed : bool
        Always False: a magnitude, both sides of focus alike.
    trusted_um : (low, high)
        The restoring model's trusted range the tiles were compared with.
    untrusted_share : float
        Share of the tiles with an estimate that lie outside ``trusted_um`` (a magnitude is compared with the nearer
        bound, ``min(|low|, |high|)``, as for the frame's own estimate); 0 when no tile has an estimate.
    """

    um: np.ndarray
    y_edges: tuple[int, ...]
    x_edges: tuple[int, ...]
    signed: bool = False
    trusted_um: tuple[float, float] = DEFAULT_TRUSTED_UM
    untrusted_share: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.um.shape[0]), int(self.um.shape[1]))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.um if dtype is None else self.um.astype(dtype)

    def upscale(self, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """The map at capture size (H × W float32), each tile filled with its value; ``shape`` defaults to the
        capture's (``y_edges[-1]``, ``x_edges[-1]``) and may be any other size (tiles are scaled along)."""
        h, w = (self.y_edges[-1], self.x_edges[-1]) if shape is None else (int(shape[0]), int(shape[1]))
        ys = np.searchsorted(np.asarray(self.y_edges[1:-1]) * h / self.y_edges[-1], np.arange(h) + 0.5)
        xs = np.searchsorted(np.asarray(self.x_edges[1:-1]) * w / self.x_edges[-1], np.arange(w) + 0.5)
        return self.um[ys[:, None], xs[None, :]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``um`` as nested lists (None for NaN), the tile edges, the range and the untrusted share."""
        return {
            "um": [[None if not math.isfinite(v) else round(float(v), 3) for v in row] for row in self.um],
            "y_edges": list(self.y_edges),
            "x_edges": list(self.x_edges),
            "signed": self.signed,
            "trusted_um": list(self.trusted_um),
            "untrusted_share": round(self.untrusted_share, 4),
        }


def focus_map(capture: np.ndarray, restored: np.ndarray, calibration: FocusGainCalibration, *,
              tile_px: int = DEFAULT_TILE_PX, trusted_um: tuple[float, float] = DEFAULT_TRUSTED_UM,
              smooth: bool = True) -> FocusMap:
    """The focus map of one capture from its focus plane and the same plane restored.

    Parameters
    ----------
    capture, restored : np.ndarray
        H × W planes (the focus channel: green of RGB, the only channel of gray) in the same units (any dtype).
    calibration : FocusGainCalibration
        Restoration gain → |defocus| of the model that restored the capture.
    tile_px : int
        Tile side (at least :data:`MIN_TILE_PX`); the capture is cut into ``round(H / tile_px)`` ×
        ``round(W / tile_px)`` tiles of nearly equal size.
    smooth : bool
        3×3 median of the log-gains before the calibration (default; False: every tile on its own).

    Raises
    ------
    InputError
        Planes of different or non-2-D shapes, a tile size below :data:`MIN_TILE_PX`, or a capture smaller than one
        tile.
    """
    tile_px = check_tile_px(tile_px)
    capture, restored = np.asarray(capture), np.asarray(restored)
    if capture.ndim != 2 or capture.shape != restored.shape:
        raise InputError(f"focus map: expected two H×W planes of one shape, got {capture.shape} and {restored.shape}")
    h, w = capture.shape
    if h < tile_px or w < tile_px:
        raise InputError(f"focus map: a {h}×{w} capture is smaller than one {tile_px}×{tile_px} px tile")
    ye, xe = tile_edges(h, tile_px), tile_edges(w, tile_px)
    e_in = tile_energy(capture, ye, xe)
    e_out = tile_energy(restored, ye, xe)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_gain = np.where(e_in > 0, np.log(e_out / e_in), np.nan)
    log_gain[~np.isfinite(log_gain) & (e_in > 0)] = np.nan  # restored tile with no energy at all: no estimate
    if smooth:
        log_gain = _median3(log_gain)
    um = calibration.magnitudes_um(np.exp(log_gain)).astype(np.float32)
    lo, hi = float(trusted_um[0]), float(trusted_um[1])
    known = np.isfinite(um)
    bound = min(abs(lo), abs(hi))
    share = float(np.count_nonzero(um[known] > bound)) / int(known.sum()) if known.any() else 0.0
    return FocusMap(um, tuple(int(v) for v in ye), tuple(int(v) for v in xe), False, (lo, hi), share)
