"""Runners for exported files and a latency timer (p50/p95 after warm-up).

A *runner* is a callable ``(N, C, H, W) float32 -> (N, C', H, W) float32``; parity, quality and latency all go
through the same runners so they measure the same thing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from virtualfocus.edge.errors import BackendError, InputError

from .precision import ExecutionHint, parse_choice

__all__ = ["Runner", "onnxruntime_runner", "openvino_runner", "time_runner", "time_runners"]

Runner = Callable[[np.ndarray], np.ndarray]

OV_PRECISIONS = tuple(h.value for h in ExecutionHint)


def openvino_runner(path: str | os.PathLike[str] | Any, *, precision: str | ExecutionHint = ExecutionHint.DEFAULT,
                    threads: int | None = None, shape: tuple[int, ...] | None = None) -> Runner:
    """Compile an IR/ONNX file (or an ``openvino.Model``) on the CPU.

    Parameters
    ----------
    precision : ExecutionHint or its value ("default", "f32", "bf16", "f16")
        ``INFERENCE_PRECISION_HINT``; "default" leaves OpenVINO's choice (bf16 on AVX-512 BF16 CPUs).
    threads : int, optional
        ``INFERENCE_NUM_THREADS``.
    shape : tuple, optional
        Reshape a dynamic model to this static input shape before compiling (what the runtime does).
    """
    import openvino as ov

    hint = parse_choice(ExecutionHint, precision, what="precision")
    core = ov.Core()
    try:
        model = core.read_model(str(path)) if isinstance(path, (str, os.PathLike)) else path.clone()
        if shape is not None:
            model.reshape({model.inputs[0].get_any_name(): ov.PartialShape(list(shape))})
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if hint is not ExecutionHint.DEFAULT:
            config["INFERENCE_PRECISION_HINT"] = hint.value
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        compiled = core.compile_model(model, "CPU", config)
    except Exception as e:  # OpenVINO raises plain RuntimeError
        raise BackendError(f"{path}: OpenVINO could not compile the model ({e})") from e
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    used = compiled.get_property("INFERENCE_PRECISION_HINT")
    run.execution_precision = used.to_string() if hasattr(used, "to_string") else str(used)  # type: ignore[attr-defined]
    return run


def onnxruntime_runner(path: str | os.PathLike[str], *, threads: int | None = None) -> Runner:
    """An ONNX Runtime CPU session (all graph optimisations on)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise BackendError(f"{path}: ONNX Runtime could not load the model ({e})") from e
    name = sess.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(sess.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0], dtype=np.float32)

    return run


def time_runner(run: Runner, x: np.ndarray, *, runs: int = 30, warmup: int = 5) -> dict[str, float]:
    """Median/95th percentile wall time of ``run(x)`` in ms over ``runs`` calls after ``warmup`` calls."""
    if runs < 1 or warmup < 0:
        raise InputError(f"runs={runs}, warmup={warmup}: expected runs ≥ 1 and warmup ≥ 0")
    for _ in range(warmup):
        run(x)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        run(x)
        times[i] = (time.perf_counter() - t0) * 1e3
    return {"p50": round(float(np.percentile(times, 50)), 3), "p95": round(float(np.percentile(times, 95)), 3),
            "mean": round(float(times.mean()), 3), "runs": float(runs)}


def time_runners(runners: dict[str, Runner], x: np.ndarray, *, runs: int = 30, warmup: int = 5) -> dict[str, dict[str, float]]:
    """Like :func:`time_runner` for several runners, called round-robin so that load from other processes on a
    shared machine falls on all of them alike (a fair "is INT8 faster than its sibling" comparison)."""
    if runs < 1 or warmup < 0:
        raise InputError(f"runs={runs}, warmup={warmup}: expected runs ≥ 1 and warmup ≥ 0")
    for run in runners.values():
        for _ in range(warmup):
            run(x)
    times = {k: np.empty(runs) for k in runners}
    for i in range(runs):
        for k, run in runners.items():
            t0 = time.perf_counter()
            run(x)
            times[k][i] = (time.perf_counter() - t0) * 1e3
    return {k: {"p50": round(float(np.percentile(t, 50)), 3), "p95": round(float(np.percentile(t, 95)), 3),
                "mean": round(float(t.mean()), 3), "runs": float(runs)} for k, t in times.items()}
