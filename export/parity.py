"""Parity of exported files against the torch module they came from.

Float files are judged by the relative error ``max|y − y_torch| / max|y_torch|`` over the whole output tensor
(one number per input; tolerance 1e-4 for fp32 paths, i.e. ONNX Runtime and OpenVINO with
``INFERENCE_PRECISION_HINT=f32``). OpenVINO's default path on a BF16-capable CPU computes in bf16 and is reported
separately without a pass/fail. INT8 files are judged on the validation set by the drop of PSNR against the
ground truth (≤ 0.3 dB) and the change of the focus ratio FR (≤ 0.02), relative to the float file of the same
backend (see :func:`int8_verdict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from virtualfocus.edge.manifest import ParityCheck

from .latency import Runner

__all__ = ["FP32_RTOL", "INT8_MAX_FR_CHANGE", "INT8_MAX_PSNR_DROP", "ParityResult", "check_parity",
           "int8_verdict", "relative_error", "torch_runner"]

FP32_RTOL = 1e-4
INT8_MAX_PSNR_DROP = 0.3
INT8_MAX_FR_CHANGE = 0.02


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``max|candidate − reference| / max|reference|`` (inf when shapes differ)."""
    if reference.shape != candidate.shape:
        return float("inf")
    denom = float(np.abs(reference).max()) or 1.0
    return float(np.abs(candidate.astype(np.float64) - reference.astype(np.float64)).max() / denom)


@dataclass(frozen=True)
class ParityResult:
    """Worst relative error of one candidate over all parity inputs; ``tolerance`` None = reported only."""

    candidate: str
    rel_error: float
    per_input: dict[str, float]
    tolerance: float | None

    @property
    def passed(self) -> bool | None:
        return None if self.tolerance is None else bool(self.rel_error <= self.tolerance)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d

    def to_check(self) -> ParityCheck:
        """The manifest's record of this result."""
        return ParityCheck(candidate=self.candidate, rel_error=self.rel_error, per_input=dict(self.per_input),
                           tolerance=self.tolerance, passed=self.passed)


def torch_runner(module: Any) -> Runner:
    """Run a torch module in eval mode on CPU, no grad, as a numpy runner."""
    import torch

    module = module.eval().to("cpu")

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return run


def check_parity(reference: Runner, candidates: Mapping[str, Runner], inputs: Mapping[str, np.ndarray], *,
                 tolerances: Mapping[str, float | None]) -> dict[str, ParityResult]:
    """Run every candidate on every input and compare with ``reference``.

    Parameters
    ----------
    reference : runner
        Usually :func:`torch_runner` of the exported module.
    candidates : mapping name → runner
    inputs : mapping name → array ``(1, C, H, W)``
    tolerances : mapping name → relative tolerance or None (report only)
    """
    refs = {k: reference(x) for k, x in inputs.items()}
    out = {}
    for name, run in candidates.items():
        per = {k: relative_error(refs[k], run(x)) for k, x in inputs.items()}
        out[name] = ParityResult(candidate=name, rel_error=max(per.values()), per_input=per,
                                 tolerance=tolerances.get(name))
    return out


def int8_verdict(float_quality: Mapping[str, Any], int8_quality: Mapping[str, Any], *,
                 max_psnr_drop: float = INT8_MAX_PSNR_DROP, max_fr_change: float = INT8_MAX_FR_CHANGE) -> dict[str, Any]:
    """Compare validation-set quality of an INT8 file with its float sibling."""
    drop = float(float_quality["psnr"]) - float(int8_quality["psnr"])
    fr_change = abs(float(float_quality["fr"]) - float(int8_quality["fr"]))
    return {"psnr_drop_db": round(drop, 4), "fr_change": round(fr_change, 5), "max_psnr_drop_db": max_psnr_drop,
            "max_fr_change": max_fr_change, "passed": bool(drop <= max_psnr_drop and fr_change <= max_fr_change)}
