"""How a through-focus series blurs on the two sides of focus: statistics that compare simulated and real stacks.

Both statistics are independent of the specimen and of the step between planes, so stacks of any content, optics
and spacing can be put on one plot. For the planes ``k`` steps either side of the sharpest (``0``, highest thesis
focus measure ``F``):

* ``x = ½ (F(−k)/F(0) + F(+k)/F(0))`` — how blurred the pair is (1 = sharp, → 0 very blurred);
* ``y = corr(I(−k) − I(0), I(+k) − I(0))`` on the green channel after sub-pixel registration to the sharp plane
  (a brightness offset drops out) — ≈ +1 when both sides blur alike, negative when one side's change is the other's inverse
  (phase contrast that flips across focus, layers that come into focus on one side only);
* ``r = |ln(F(−k)/F(+k))|`` — how differently the focus measure falls off on the two sides.

:func:`pair_statistics` gives ``(k, x, y, r)`` rows for one stack; :func:`band` bins many stacks' curves by ``x``
and returns percentiles, so a real stack can be checked against a simulator's 10–90 % band
(``benchmarks/realism.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from virtualfocus.edge import metrics as M
from virtualfocus.zstacks.stack import ZStack

__all__ = ["PairStats", "band", "curve_at", "pair_statistics"]


@dataclass(frozen=True)
class PairStats:
    """Statistics of the plane pair ``k`` steps either side of the sharpest plane."""

    k: int
    x: float  #: mean relative focus measure of the pair
    y: float  #: correlation of the two sides' changes from the sharp plane
    r: float  #: |ln F(−k)/F(+k)|, asymmetry of the focus fall-off


def _green(plane: np.ndarray) -> np.ndarray:
    return M.green(plane).astype(np.float32)


def _register(ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    """``mov`` shifted onto ``ref`` (phase correlation, Hann window, sub-pixel)."""
    win = cv2.createHanningWindow(ref.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(ref, mov, win)
    if abs(dx) > 0.01 or abs(dy) > 0.01:
        h, w = mov.shape
        mat = np.array([[1, 0, -dx], [0, 1, -dy]], dtype=np.float32)
        mov = cv2.warpAffine(mov, mat, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    return mov


def pair_statistics(
    stack: ZStack | Sequence[np.ndarray] | np.ndarray,
    *,
    max_k: int = 8,
    margin: int = 16,
    register: bool = True,
) -> list[PairStats]:
    """``(k, x, y, r)`` for ``k = 1 … max_k`` where both planes exist (see the module docstring).

    Parameters
    ----------
    stack : ZStack or sequence of planes
        Planes in focus order; the sharpest is found by the thesis focus measure.
    register : bool
        Align each plane to the sharp one first (real stacks drift by a few pixels); simulated ones need not.
    margin : int
        Pixels cropped from every border before the correlation (registration and blur edges).
    """
    planes = stack.planes if isinstance(stack, ZStack) else np.asarray(stack)
    f = np.array([M.focus_measure(p) for p in planes])
    s = int(np.argmax(f))
    ref = _green(planes[s])
    crop = (slice(margin, -margin or None), slice(margin, -margin or None))
    out = []
    for k in range(1, max_k + 1):
        if s - k < 0 or s + k >= len(planes):
            break
        a, b = _green(planes[s - k]), _green(planes[s + k])
        if register:
            a, b = _register(ref, a), _register(ref, b)
        # a brightness offset between planes drops out: the correlation removes the means
        da = (a - ref)[crop].ravel().astype(np.float64)
        db = (b - ref)[crop].ravel().astype(np.float64)
        da -= da.mean()
        db -= db.mean()
        y = float(np.dot(da, db) / max(np.sqrt(np.dot(da, da) * np.dot(db, db)), 1e-12))
        fa, fb = f[s - k] / f[s], f[s + k] / f[s]
        out.append(PairStats(k, float(0.5 * (fa + fb)), y, float(abs(np.log(max(fa, 1e-9) / max(fb, 1e-9))))))
    return out


def curve_at(stats: Sequence[PairStats], xs: np.ndarray, field: str = "y") -> np.ndarray:
    """A stack's ``y`` (or ``r``) interpolated at blur levels ``xs`` (NaN outside the stack's range of ``x``)."""
    x = np.array([s.x for s in stats])
    v = np.array([getattr(s, field) for s in stats])
    out = np.full(len(xs), np.nan)
    if len(x) == 0:
        return out
    order = np.argsort(x)
    x, v = x[order], v[order]
    inside = (xs >= x[0]) & (xs <= x[-1])
    out[inside] = np.interp(xs[inside], x, v)
    return out


def band(
    curves: Sequence[Sequence[PairStats]], xs: np.ndarray, field: str = "y", q: tuple[float, float] = (10, 90)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(low, median, high, count)`` of many stacks' ``field`` at each blur level in ``xs`` (percentiles ``q``)."""
    vals = np.array([curve_at(c, xs, field) for c in curves])
    lo = np.full(len(xs), np.nan)
    med = np.full(len(xs), np.nan)
    hi = np.full(len(xs), np.nan)
    count = np.sum(np.isfinite(vals), axis=0)
    for j in range(len(xs)):
        col = vals[:, j][np.isfinite(vals[:, j])]
        if col.size >= 3:
            lo[j], med[j], hi[j] = np.percentile(col, [q[0], 50, q[1]])
    return lo, med, hi, count
