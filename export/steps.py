"""The steps every export shares, generator (:mod:`.exporter`) or defocus classifier (:mod:`.classifier`).

An export is: check the arguments → in an atomic folder (:func:`~virtualfocus.export._fs.atomic_folder`): write
the files → check parity against torch → measure quality (and, for generators, decide INT8) → check file sizes →
describe the files and write the manifest. The pieces here do the parts that do not depend on what the model is.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from virtualfocus.edge.errors import InputError
from virtualfocus.edge.manifest import Manifest, ModelFile, Parity

from . import parity as _parity
from .latency import Runner, onnxruntime_runner, openvino_runner
from .precision import ExecutionHint, FilePrecision

__all__ = [
    "MAX_FILE_MB",
    "FloatParity",
    "ShippedFile",
    "check_file_sizes",
    "check_name",
    "created_now",
    "describe_files",
    "float_parity",
    "model_stats",
    "parity_record",
    "spec_dict",
]

MAX_FILE_MB = 20.0


@dataclass(frozen=True)
class ShippedFile:
    """One file the manifest will list (an ``.xml`` brings its ``.bin`` along)."""

    path: str
    backend: str  # "onnxruntime" | "openvino"
    precision: FilePrecision
    shape: str  # "dynamic" | "static"


def check_name(name: str) -> None:
    """A variant name must be a plain folder name."""
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"name={name!r}: expected a plain folder name")


def spec_dict(spec: Any) -> dict[str, Any]:
    """The registry spec as the manifest stores it (tuples as lists)."""
    if spec is None:
        return {}
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        d = dataclasses.asdict(spec)
    elif isinstance(spec, dict):
        d = dict(spec)
    else:
        raise InputError(f"spec: expected a dataclass or a dict, got {type(spec).__name__}")
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


class ModelStats(TypedDict):
    """Size and cost of a network at one input size (the manifest's ``compression`` section takes these fields)."""

    params: int
    gflops: float
    gmacs: float
    stats_size: int


def model_stats(module: Any, *, in_channels: int, size: int) -> ModelStats:
    """Parameters and compute of ``module`` for one ``size``×``size`` input (FLOPs counted by torch: 2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in module.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module.eval()(torch.zeros(1, in_channels, size, size))
    flops = fc.get_total_flops()
    return {"params": int(params), "gflops": round(flops / 1e9, 4), "gmacs": round(flops / 2e9, 4),
            "stats_size": size}


@dataclass
class FloatParity:
    """The float files' runners and parity results (torch vs ONNX Runtime vs OpenVINO f32)."""

    runners: dict[str, Runner]
    results: dict[str, _parity.ParityResult]
    execution: dict[str, str]  # path → the precision OpenVINO actually ran it in


def float_parity(torch_run: Runner, tmp: Path, inputs: Mapping[str, Any], *, onnx: str, ir: str,
                 threads: int | None, extra: Mapping[str, tuple[Runner, float | None]] | None = None) -> FloatParity:
    """Parity of the fp32 files against torch: ONNX Runtime and OpenVINO with the f32 hint are judged with
    :data:`~virtualfocus.export.parity.FP32_RTOL`; OpenVINO's default precision is measured and reported.
    ``extra`` adds paths (runner, tolerance or None = reported only)."""
    ov_default = openvino_runner(tmp / ir, threads=threads)
    runners: dict[str, Runner] = {"onnxruntime/fp32": onnxruntime_runner(tmp / onnx, threads=threads)}
    tols: dict[str, float | None] = {"onnxruntime/fp32": _parity.FP32_RTOL}
    for key, (run, tol) in (extra or {}).items():
        runners[key], tols[key] = run, tol
    runners["openvino/fp32-f32"] = openvino_runner(tmp / ir, precision=ExecutionHint.F32, threads=threads)
    runners["openvino/fp32"] = ov_default
    tols.update({"openvino/fp32-f32": _parity.FP32_RTOL, "openvino/fp32": None})
    results = _parity.check_parity(torch_run, runners, dict(inputs), tolerances=tols)
    execution = {"openvino/fp32": str(getattr(ov_default, "execution_precision", "unknown")),
                 "openvino/fp32-f32": ExecutionHint.F32.value, "onnxruntime/fp32": ExecutionHint.F32.value}
    return FloatParity(runners=runners, results=results, execution=execution)


def parity_record(results: Mapping[str, _parity.ParityResult], inputs: Mapping[str, Any], *, over: str,
                  default_precision: str, dynamic: Mapping[str, _parity.ParityResult] | None = None,
                  dynamic_suffix: str = "") -> Parity:
    """The manifest's ``parity`` section: method, inputs, results, and which judged paths failed."""
    judged = dict(results)
    if dynamic is not None:
        judged.update({f"{k}{dynamic_suffix}": r for k, r in dynamic.items()})
    failed = tuple(k for k, r in judged.items() if r.passed is False)
    return Parity(
        method=f"max|y - y_torch| / max|y_torch| over {over}; worst over inputs",
        inputs={k: tuple(v.shape) for k, v in inputs.items()},
        float_checks={k: r.to_check() for k, r in results.items()},
        dynamic_shape={k: r.to_check() for k, r in (dynamic or {}).items()},
        note=f"openvino/fp32 runs with OpenVINO's default precision ({default_precision}); reported, not judged",
        passed=not failed, failed=failed,
    )


def check_file_sizes(tmp: Path, out_dir: str | os.PathLike[str], max_file_mb: float, *, smaller: str) -> None:
    """Every file in the folder is at most ``max_file_mb``; the error names the file and suggests ``smaller``."""
    for f in sorted(tmp.iterdir()):
        mb = f.stat().st_size / 2**20
        if mb > max_file_mb:
            raise InputError(f"{Path(out_dir) / f.name}: {mb:.1f} MB exceeds max_file_mb={max_file_mb}; "
                             f"choose a smaller {smaller} or raise the limit")


def describe_files(tmp: Path, files: Sequence[ShippedFile]) -> list[ModelFile]:
    """Manifest entries (size, sha256) of ``files``; an OpenVINO ``.xml`` is followed by its ``.bin`` weights."""
    described = []
    for f in files:
        described.append(Manifest.describe_file(tmp, f.path, backend=f.backend, precision=f.precision.value,
                                                shape=f.shape))
        if f.path.endswith(".xml"):
            described.append(Manifest.describe_file(tmp, f.path[:-4] + ".bin", backend="weights",
                                                    precision=f.precision.value, shape=f.shape))
    return described


def created_now() -> str:
    """The manifest's ``created`` time stamp (UTC)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
