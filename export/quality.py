"""Quality of a runner on the fixed simulated validation set (thesis metrics, 0..255 scale).

The metric functions are passed in (:class:`MetricFns`; default: ``virtualfocus.edge.metrics``), so a caller can
evaluate with other definitions; the result records which were used. Restored images are compared as uint8, what
the runtime hands back to an 8-bit caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from virtualfocus.edge.metrics import SHARP_BAND_UM
from virtualfocus.zstacks.stack import ZStack

from .data import from_model_output, to_model_input
from .latency import Runner

__all__ = ["MetricFns", "default_metrics", "evaluate_quality"]

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class MetricFns:
    """Metric callables ``(ground_truth, image) -> float`` on HWC RGB images (uint8 or float 0..1), as in
    :mod:`virtualfocus.edge.metrics` (FR = ``F(image) / F(ground_truth)``)."""

    mse: Metric
    psnr: Metric
    ssim: Metric
    fr: Metric
    fpw: Metric
    source: str


def default_metrics() -> MetricFns:
    """The project's thesis metrics (:mod:`virtualfocus.edge.metrics`)."""
    from virtualfocus.edge import metrics as m

    return MetricFns(mse=m.mse, psnr=m.psnr, ssim=m.ssim, fr=m.fr, fpw=m.fpw, source="virtualfocus.edge.metrics")


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
        gt = st.sharp
        band = [i for i, z in enumerate(st.offsets_um) if any(abs(z - b) < 1e-6 for b in SHARP_BAND_UM)]
        thr_mse = max(metrics.mse(gt, st.planes[i]) for i in band)
        thr_fpw = max(metrics.fpw(gt, st.planes[i]) for i in band)
        for i, z in enumerate(st.offsets_um):
            if not interval_um[0] - 1e-6 <= z <= interval_um[1] + 1e-6:
                continue
            if run is None:
                out = st.planes[i]
            else:
                j = min(i + 1, len(st) - 1) if z >= 0 else max(i - 1, 0)
                caps = [st.planes[i]] if inputs == 1 else [st.planes[i], st.planes[j]]
                x, pads = to_model_input(caps, multiple)
                out = from_model_output(run(x), pads)
            e_mse, e_fpw = metrics.mse(gt, out), metrics.fpw(gt, out)
            rows.append((metrics.psnr(gt, out), metrics.ssim(gt, out), metrics.fr(gt, out), e_fpw,
                         e_mse <= thr_mse, e_fpw <= thr_fpw))
    a = np.array(rows, dtype=np.float64)
    return {"psnr": round(float(a[:, 0].mean()), 4), "ssim": round(float(a[:, 1].mean()), 5),
            "fr": round(float(a[:, 2].mean()), 5), "fpw": round(float(a[:, 3].mean()), 4),
            "success_mse": round(float(a[:, 4].mean()), 4), "success_fpw": round(float(a[:, 5].mean()), 4),
            "images": len(rows)}
