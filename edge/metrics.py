"""The thesis's image-quality metrics and success-rate tables (numpy + OpenCV, vectorised).

All metrics work on the **0..255 scale**, as the reference thesis reported them (MSE 41 at −1.4 µm …). Images are
taken on their natural scale: uint8 as is; uint16 and float32 are mapped with :func:`to_255` (uint16: ÷257, so
65535 → 255 and MSB-aligned 12-bit data maps the same way; float: ×255, i.e. float images are 0..1).

Definitions (thesis chapter 1.3 and 5; ``Y`` = ground truth, ``Ŷ`` = restored or input image):

* focus measure ``F(X) = mean((ωx∗X_G)² + (ωy∗X_G)²)``, ``ωx = [-1 0 0 0 0 0 2 0 0 0 0 0 -1]``, ``ωy = ωxᵀ``,
  on the green channel (gray images use their only channel). The mean is taken over the *valid* region (6 px in
  from each border) so that no padding rule leaks into the measure;
* ``MSE`` over all pixels and channels; ``PSNR = 10 log10(max(Y)² / MSE)``, capped at 50 dB (its value at MSE 0);
* ``SSIM`` as Wang et al. 2004: 11×11 Gaussian window σ 1.5, k1 0.01, k2 0.03, L 255, per channel then averaged,
  mean over the region not touched by the border (equal to ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)``);
* ``FR = F(Ŷ) / F(Y)`` (1 ideal, > 1 over-sharpened); ``FPW = mean(|(ωx∗Y_G)² − (ωx∗Ŷ_G)²| + |(ωy∗Y_G)² −
  (ωy∗Ŷ_G)²|)``; Brenner gradient ``mean((X_G[:, x+2] − X_G[:, x])²)`` as a second, classic focus measure.

Success rate (thesis §7.1, Table 7.1 and appendix A): within one stack, a restored image succeeds when its score
(MSE or FPW) is no worse than the **worst input plane of the same stack in the sharp band** (−0.2, +0.2, +0.4 µm;
0 µm is the ground truth itself). :func:`success_tables` gives the rate per focus level, per symmetric interval
(−1.2:1.2 … −0.2:0.2) and appendix-A's "which input level does the restored image match" distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from .errors import InputError

__all__ = [
    "DEFAULT_INTERVALS",
    "METRICS",
    "SHARP_BAND_UM",
    "SuccessTables",
    "brenner",
    "focus_curve",
    "focus_measure",
    "fpw",
    "fr",
    "green",
    "ground_truth_index",
    "mse",
    "psnr",
    "score_pair",
    "ssim",
    "success_tables",
    "to_255",
]

#: The sharp band of the thesis: planes whose inputs count as "in focus" (besides the ground truth at 0).
SHARP_BAND_UM = (-0.2, 0.2, 0.4)
#: Symmetric intervals of thesis Table 7.1, as (low, high) µm.
DEFAULT_INTERVALS = ((-1.2, 1.2), (-1.0, 1.0), (-0.8, 0.8), (-0.6, 0.6), (-0.4, 0.4), (-0.2, 0.2))
#: Metric names in report order; for each, whether larger is better.
METRICS = {"MSE": False, "SSIM": True, "PSNR": True, "FR": None, "FPW": False}
PSNR_CAP_DB = 50.0

_W = np.array([-1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, -1], np.float32)
_KX = _W[None, :]
_KY = _W[:, None]
_R = 6  # half-width of the focus filters: the valid region starts 6 px in


def to_255(img: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Map an image to float32 on the 0..255 scale the metrics use.

    uint8 → as is; uint16 → ÷257 (65535 → 255; 12-bit data stored MSB-aligned maps the same way); float → ×255
    (float images are 0..1). Raises :class:`InputError` for empty images, NaN/inf, or other dtypes.
    """
    a = np.asarray(img)
    if a.size == 0:
        raise InputError(f"{name}: empty image (shape {a.shape}); expected an H×W or H×W×3 image")
    if a.dtype == np.uint8:
        return a.astype(np.float32)
    if a.dtype == np.uint16:
        return a.astype(np.float32) * np.float32(1.0 / 257.0)
    if a.dtype.kind == "f":
        out = a.astype(np.float32) * np.float32(255.0)
        if not np.all(np.isfinite(out)):
            raise InputError(f"{name}: contains NaN or infinite values; expected finite pixel values")
        return out
    raise InputError(f"{name}: dtype {a.dtype}; expected uint8, uint16 or float (0..1)")


def green(img: np.ndarray, *, name: str = "image") -> np.ndarray:
    """The focus-measure channel on the 0..255 scale: green of RGB, the only channel of gray."""
    a = to_255(img, name=name)
    if a.ndim == 3 and a.shape[-1] == 3:
        return np.ascontiguousarray(a[..., 1])
    if a.ndim == 3 and a.shape[-1] == 1:
        return np.ascontiguousarray(a[..., 0])
    if a.ndim == 2:
        return a
    raise InputError(f"{name}: shape {a.shape}; expected H×W, H×W×1 or H×W×3")


def _check_size(a: np.ndarray, name: str) -> None:
    if min(a.shape[:2]) <= 2 * _R:
        raise InputError(
            f"{name}: {a.shape[0]}×{a.shape[1]} is too small; the focus filters need more than 12 px"
        )


def _responses(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = cv2.filter2D(g, cv2.CV_32F, _KX, borderType=cv2.BORDER_REFLECT_101)[_R:-_R, _R:-_R]
    gy = cv2.filter2D(g, cv2.CV_32F, _KY, borderType=cv2.BORDER_REFLECT_101)[_R:-_R, _R:-_R]
    return gx, gy


def focus_measure(img: np.ndarray, *, name: str = "image") -> float:
    """Thesis focus measure ``F`` (mean squared response of ωx, ωy on the green channel, valid region)."""
    g = green(img, name=name)
    _check_size(g, name)
    gx, gy = _responses(g)
    return float(np.mean(gx.astype(np.float64) ** 2 + gy.astype(np.float64) ** 2))


def focus_curve(planes: np.ndarray | Sequence[np.ndarray], *, name: str = "stack") -> np.ndarray:
    """``F`` of every plane of a stack, ``(Z,)`` float64."""
    return np.array([focus_measure(p, name=f"{name}[{i}]") for i, p in enumerate(planes)])


def ground_truth_index(planes: np.ndarray | Sequence[np.ndarray], *, name: str = "stack") -> int:
    """Index of the plane with the highest focus measure (the thesis's ground truth)."""
    if len(planes) == 0:
        raise InputError(f"{name}: no planes; expected a stack of at least one image")
    return int(np.argmax(focus_curve(planes, name=name)))


def brenner(img: np.ndarray, *, name: str = "image") -> float:
    """Brenner gradient ``mean((G[:, x+2] − G[:, x])²)`` of the focus channel (0..255 scale)."""
    g = green(img, name=name).astype(np.float64)
    if g.shape[1] < 3:
        raise InputError(f"{name}: width {g.shape[1]} too small for the Brenner gradient (needs ≥ 3)")
    d = g[:, 2:] - g[:, :-2]
    return float(np.mean(d * d))


def _pair(y: np.ndarray, yhat: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a = to_255(y, name=names[0])
    b = to_255(yhat, name=names[1])
    if a.shape != b.shape:
        raise InputError(
            f"{names[1]}: shape {b.shape} differs from {names[0]} {a.shape}; expected equal shapes"
        )
    return a, b


def mse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean squared error over all pixels and channels, 0..255 scale."""
    a, b = _pair(y, yhat, ("ground truth", "image"))
    d = a.astype(np.float64) - b
    return float(np.mean(d * d))


def psnr(y: np.ndarray, yhat: np.ndarray) -> float:
    """``10 log10(max(Y)² / MSE)`` in dB, capped at 50 dB (the value used where MSE = 0)."""
    a, b = _pair(y, yhat, ("ground truth", "image"))
    d = a.astype(np.float64) - b
    m = float(np.mean(d * d))
    peak = float(a.max())
    if m == 0.0 or peak == 0.0:
        return PSNR_CAP_DB if m == 0.0 else 0.0
    return float(min(PSNR_CAP_DB, 10.0 * np.log10(peak * peak / m)))


_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2
_SSIM_PAD = 5  # radius of the 11×11 window


def _ssim_map_channel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a * mu_a
    sbb = blur(b * b) - mu_b * mu_b
    sab = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _SSIM_C1) * (2 * sab + _SSIM_C2)
    den = (mu_a * mu_a + mu_b * mu_b + _SSIM_C1) * (saa + sbb + _SSIM_C2)
    p = _SSIM_PAD
    return (num / den)[p:-p, p:-p]


def ssim(y: np.ndarray, yhat: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004; Gaussian σ 1.5, k1 .01, k2 .03, L 255), mean over channels."""
    a, b = _pair(y, yhat, ("ground truth", "image"))
    if min(a.shape[:2]) <= 2 * _SSIM_PAD:
        raise InputError(f"image: {a.shape[0]}×{a.shape[1]} too small for SSIM's 11×11 window")
    if a.ndim == 2:
        return float(np.mean(_ssim_map_channel(a, b)))
    return float(np.mean([np.mean(_ssim_map_channel(a[..., c], b[..., c])) for c in range(a.shape[-1])]))


def fr(y: np.ndarray, yhat: np.ndarray) -> float:
    """Focus ratio ``F(Ŷ) / F(Y)`` (1 is ideal; > 1 means over-sharpened or invented detail)."""
    fy = focus_measure(y, name="ground truth")
    return float(focus_measure(yhat, name="image") / fy) if fy > 0 else float("nan")


def fpw(y: np.ndarray, yhat: np.ndarray) -> float:
    """Pixel-wise focus difference (thesis §5.5), valid region, 0..255 scale."""
    gy_img = green(y, name="ground truth")
    gh_img = green(yhat, name="image")
    if gy_img.shape != gh_img.shape:
        raise InputError(f"image: shape {gh_img.shape} differs from ground truth {gy_img.shape}")
    _check_size(gy_img, "image")
    ax, ay = _responses(gy_img)
    bx, by = _responses(gh_img)
    d = np.abs(ax.astype(np.float64) ** 2 - bx.astype(np.float64) ** 2) + np.abs(
        ay.astype(np.float64) ** 2 - by.astype(np.float64) ** 2
    )
    return float(np.mean(d))


class _Reference:
    """Precomputed ground-truth quantities reused when scoring many images against one sharp plane."""

    def __init__(self, y: np.ndarray) -> None:
        self.y = to_255(y, name="ground truth")
        self.g = green(y, name="ground truth")
        _check_size(self.g, "ground truth")
        self.rx, self.ry = _responses(self.g)
        self.rx2 = self.rx.astype(np.float64) ** 2
        self.ry2 = self.ry.astype(np.float64) ** 2
        self.f = float(np.mean(self.rx2 + self.ry2))
        self.peak = float(self.y.max())


def score_pair(y: np.ndarray | _Reference, yhat: np.ndarray, *, ssim_on: bool = True) -> dict[str, float]:
    """All five thesis metrics of ``yhat`` against ground truth ``y`` (dict MSE, SSIM, PSNR, FR, FPW)."""
    ref = y if isinstance(y, _Reference) else _Reference(y)
    b = to_255(yhat, name="image")
    if b.shape != ref.y.shape:
        raise InputError(
            f"image: shape {b.shape} differs from ground truth {ref.y.shape}; expected equal shapes"
        )
    d = ref.y.astype(np.float64) - b
    m = float(np.mean(d * d))
    if m == 0.0:
        p = PSNR_CAP_DB
    elif ref.peak == 0.0:
        p = 0.0
    else:
        p = float(min(PSNR_CAP_DB, 10.0 * np.log10(ref.peak**2 / m)))
    g = b[..., 1] if b.ndim == 3 and b.shape[-1] == 3 else (b[..., 0] if b.ndim == 3 else b)
    bx, by = _responses(np.ascontiguousarray(g))
    bx2 = bx.astype(np.float64) ** 2
    by2 = by.astype(np.float64) ** 2
    f_hat = float(np.mean(bx2 + by2))
    out = {
        "MSE": m,
        "SSIM": float("nan"),
        "PSNR": p,
        "FR": f_hat / ref.f if ref.f > 0 else float("nan"),
        "FPW": float(np.mean(np.abs(ref.rx2 - bx2) + np.abs(ref.ry2 - by2))),
    }
    if ssim_on:
        if ref.y.ndim == 2:
            out["SSIM"] = float(np.mean(_ssim_map_channel(ref.y, b)))
        else:
            out["SSIM"] = float(
                np.mean([np.mean(_ssim_map_channel(ref.y[..., c], b[..., c])) for c in range(b.shape[-1])])
            )
    return out


def reference(y: np.ndarray) -> _Reference:
    """Precompute ground-truth quantities for :func:`score_pair` (saves work when scoring a whole stack)."""
    return _Reference(y)


# ---------------------------------------------------------------------------------------------- success rate
def _fmt_level(v: float) -> str:
    return f"{v:.1f}"


@dataclass(frozen=True)
class SuccessTables:
    """Success-rate tables for one metric (thesis Table 7.1 and appendix A).

    Attributes
    ----------
    metric : str
        Score the tables are based on ("MSE" or "FPW"; lower is better).
    levels : np.ndarray
        ``(Z,)`` focus levels (µm), the rows of the per-level tables.
    per_level : np.ndarray
        ``(Z,)`` % of stacks whose restored image at that level succeeds (NaN where no stack has the level).
    counts : np.ndarray
        ``(Z,)`` number of stacks contributing to each level.
    per_interval : dict
        ``"-0.8:0.8" -> %`` success pooled over every (stack, level) inside the interval.
    match : np.ndarray
        ``(Z, Z + 1)`` appendix-A table: % of restored images at row level whose score is best matched by the
        input at column level (the input with the smallest score that is still ≥ the restored score); the last
        column counts restored images worse than every input.
    sharp_band : tuple of float
    """

    metric: str
    levels: np.ndarray
    per_level: np.ndarray
    counts: np.ndarray
    per_interval: dict[str, float]
    match: np.ndarray
    sharp_band: tuple[float, ...] = field(default=SHARP_BAND_UM)

    def to_dict(self) -> dict[str, object]:
        def clean(v: float) -> float | None:
            return None if not np.isfinite(v) else round(float(v), 3)

        return {
            "metric": self.metric,
            "sharp_band_um": list(self.sharp_band),
            "levels_um": [round(float(v), 3) for v in self.levels],
            "per_level_pct": [clean(v) for v in self.per_level],
            "counts": [int(c) for c in self.counts],
            "per_interval_pct": {k: clean(v) for k, v in self.per_interval.items()},
            "match_pct": [[clean(v) for v in row] for row in self.match],
        }


def success_tables(
    input_scores: np.ndarray,
    restored_scores: np.ndarray,
    levels: Sequence[float] | np.ndarray,
    *,
    metric: str = "MSE",
    sharp_band: Sequence[float] = SHARP_BAND_UM,
    intervals: Sequence[tuple[float, float]] = DEFAULT_INTERVALS,
) -> SuccessTables:
    """Success-rate tables from per-stack scores.

    Parameters
    ----------
    input_scores : np.ndarray
        ``(S, Z)`` score (lower is better) of every stack's *input* plane at every level against its ground
        truth; NaN where a stack lacks that level.
    restored_scores : np.ndarray
        ``(S, Z)`` score of the restored image made from that input; NaN where missing.
    levels : sequence of float
        ``(Z,)`` focus levels in µm (columns of the score arrays).
    metric : str
        Name used in the report.
    sharp_band : sequence of float
        Levels whose inputs define the per-stack threshold (default −0.2, +0.2, +0.4 µm).
    intervals : sequence of (low, high)
        Symmetric intervals for the pooled rates.

    Returns
    -------
    SuccessTables

    Raises
    ------
    InputError
        When shapes disagree or a stack has no input in the sharp band.
    """
    x = np.asarray(input_scores, dtype=np.float64)
    y = np.asarray(restored_scores, dtype=np.float64)
    lv = np.round(np.asarray(levels, dtype=np.float64), 6)
    if x.ndim != 2 or x.shape != y.shape or x.shape[1] != lv.size:
        raise InputError(
            f"success_tables: input scores {x.shape}, restored scores {y.shape}, {lv.size} levels; "
            "expected two (stacks, levels) arrays with one column per level"
        )
    band_cols = [int(np.argmin(np.abs(lv - b))) for b in sharp_band if np.min(np.abs(lv - b)) < 1e-6]
    if not band_cols:
        raise InputError(
            f"success_tables: none of the sharp-band levels {tuple(sharp_band)} is among {lv.tolist()}"
        )
    with np.errstate(all="ignore"):
        band = x[:, band_cols]
        if np.any(np.all(np.isnan(band), axis=1)):
            bad = np.flatnonzero(np.all(np.isnan(band), axis=1)).tolist()
            raise InputError(
                f"success_tables: stacks {bad} have no input plane in the sharp band {tuple(sharp_band)}"
            )
        thresh = np.nanmax(band, axis=1)  # worst sharp-band input of each stack
        ok = y <= thresh[:, None]
        valid = ~np.isnan(y)
        counts = valid.sum(axis=0)
        per_level = np.where(counts > 0, 100.0 * (ok & valid).sum(axis=0) / np.maximum(counts, 1), np.nan)
        per_interval: dict[str, float] = {}
        for lo, hi in intervals:
            cols = (lv >= lo - 1e-9) & (lv <= hi + 1e-9)
            n = valid[:, cols].sum()
            per_interval[f"{_fmt_level(lo)}:{_fmt_level(hi)}"] = (
                float(100.0 * (ok & valid)[:, cols].sum() / n) if n else float("nan")
            )
        # appendix A: which input level's score is the tightest upper bound of the restored score
        z = lv.size
        match = np.zeros((z, z + 1))
        xs = np.where(np.isnan(x), np.inf, x)
        for j in range(z):
            rows = np.flatnonzero(valid[:, j])
            if rows.size == 0:
                match[j] = np.nan
                continue
            yy = y[rows, j][:, None]
            cand = np.where(xs[rows] >= yy, xs[rows], np.inf)
            best = np.argmin(cand, axis=1)
            worse = ~np.isfinite(cand[np.arange(rows.size), best])
            best[worse] = z
            match[j] = 100.0 * np.bincount(best, minlength=z + 1) / rows.size
    return SuccessTables(
        metric=metric,
        levels=lv,
        per_level=per_level,
        counts=counts,
        per_interval=per_interval,
        match=match,
        sharp_band=tuple(float(b) for b in sharp_band),
    )
