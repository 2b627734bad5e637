"""Quality of a runner on the fixed simulated validation set (thesis metrics, 0..255 scale).

The metric functions are passed in (:class:`MetricFns`), so the same evaluation runs with the project's
``virtualfocus.edge.metrics`` (preferred) or with the small stand-ins below while that module is not available;
the result records which was used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from virtualfocus.edge.stack import ZStack

from .data import from_model_output, to_model_input
from .latency import Runner

__all__ = ["MetricFns", "default_metrics", "evaluate_quality"]

Metric = Callable[[np.ndarray, np.ndarray], float]
SHARP_BAND_UM = (-0.2, 0.2, 0.4)  # the thesis's success threshold: worst input among these planes


@dataclass(frozen=True)
class MetricFns:
    """Metric callables ``(restored, reference) -> float`` on HWC RGB images on the 0..255 scale (FR: ``F(a)/F(b)``)."""

    mse: Metric
    psnr: Metric
    ssim: Metric
    fr: Metric
    fpw: Metric
    source: str


_WX = np.array([-1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, -1], np.float32)[None, :]


def _grad2(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    g = np.ascontiguousarray(img[..., 1] if img.ndim == 3 else img, dtype=np.float32)
    gx = cv2.filter2D(g, cv2.CV_32F, _WX, borderType=cv2.BORDER_REFLECT)
    gy = cv2.filter2D(g, cv2.CV_32F, _WX.T, borderType=cv2.BORDER_REFLECT)
    return gx * gx, gy * gy


def _standin_metrics() -> MetricFns:
    import cv2

    def mse(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        m = mse(a, b)
        return 50.0 if m == 0 else float(min(50.0, 10 * np.log10(float(b.max()) ** 2 / m)))

    def ssim(a: np.ndarray, b: np.ndarray) -> float:
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        a, b = a.astype(np.float32), b.astype(np.float32)

        def blur(x: np.ndarray) -> np.ndarray:
            return cv2.GaussianBlur(x, (11, 11), 1.5)

        ma, mb = blur(a), blur(b)
        va, vb, cov = blur(a * a) - ma * ma, blur(b * b) - mb * mb, blur(a * b) - ma * mb
        s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
        return float(s.mean())

    def focus(a: np.ndarray) -> float:
        x, y = _grad2(a)
        return float(np.mean(x + y))

    def fr(a: np.ndarray, b: np.ndarray) -> float:
        return focus(a) / max(focus(b), 1e-12)

    def fpw(a: np.ndarray, b: np.ndarray) -> float:
        ax, ay = _grad2(a)
        bx, by = _grad2(b)
        return float(np.mean(np.abs(bx - ax) + np.abs(by - ay)))

    return MetricFns(mse=mse, psnr=psnr, ssim=ssim, fr=fr, fpw=fpw, source="export-builtin-standin")


def default_metrics() -> MetricFns:
    """The project's metrics from ``virtualfocus.edge.metrics`` when importable, else the stand-ins."""
    try:
        from virtualfocus.edge import metrics as m
    except ImportError:
        return _standin_metrics()
    return MetricFns(mse=m.mse, psnr=m.psnr, ssim=m.ssim, fr=m.focus_ratio, fpw=m.fpw, source="virtualfocus.edge.metrics")


def evaluate_quality(run: Runner | None, stacks: list[ZStack], *, multiple: int, metrics: MetricFns,
                     interval_um: tuple[float, float] = (-0.8, 0.8), inputs: int = 1) -> dict[str, Any]:
    """Mean PSNR/SSIM/FR/FPW and success rates (by MSE and by FPW) over planes within ``interval_um``.

    Parameters
    ----------
    run : runner or None
        None evaluates the input itself (the "no model" baseline).
    stacks : list of ZStack
        RGB uint8 stacks with their sharp plane as ground truth.
    multiple : int
        Pad multiple of the model.
    inputs : int
        Two-shot models get the plane and its neighbour further from focus.

    Returns
    -------
    dict
        ``psnr, ssim, fr, fpw`` means, ``success_mse``, ``success_fpw`` (fractions), ``images``.
    """
    rows: list[tuple[float, float, float, float, bool, bool]] = []
    for st in stacks:
        gt = st.sharp.astype(np.float32)
        band = [i for i, z in enumerate(st.offsets_um) if any(abs(z - b) < 1e-6 for b in SHARP_BAND_UM)]
        thr_mse = max(metrics.mse(st.planes[i].astype(np.float32), gt) for i in band)
        thr_fpw = max(metrics.fpw(st.planes[i].astype(np.float32), gt) for i in band)
        for i, z in enumerate(st.offsets_um):
            if not interval_um[0] - 1e-6 <= z <= interval_um[1] + 1e-6:
                continue
            if run is None:
                out = st.planes[i].astype(np.float32)
            else:
                j = min(i + 1, len(st) - 1) if z >= 0 else max(i - 1, 0)
                caps = [st.planes[i]] if inputs == 1 else [st.planes[i], st.planes[j]]
                x, hw = to_model_input(caps, multiple)
                out = from_model_output(run(x), hw)
            rows.append((metrics.psnr(out, gt), metrics.ssim(out, gt), metrics.fr(out, gt), metrics.fpw(out, gt),
                         metrics.mse(out, gt) <= thr_mse, metrics.fpw(out, gt) <= thr_fpw))
    a = np.array(rows, dtype=np.float64)
    return {"psnr": round(float(a[:, 0].mean()), 4), "ssim": round(float(a[:, 1].mean()), 5),
            "fr": round(float(a[:, 2].mean()), 5), "fpw": round(float(a[:, 3].mean()), 4),
            "success_mse": round(float(a[:, 4].mean()), 4), "success_fpw": round(float(a[:, 5].mean()), 4),
            "images": len(rows)}
