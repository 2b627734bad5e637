"""``export_model``: one torch generator → a verified model folder (ONNX, OpenVINO IR, INT8, manifest).

Folder layout (written into a temp folder, renamed into place only when complete)::

    model.onnx            fp32, dynamic N/H/W                      (ONNX Runtime; OpenVINO reads it too)
    model-static.onnx     fp32, 1×C×S×S, S = 360 padded to the model's multiple (368 for 16, 384 for 32)
    model.xml/.bin        OpenVINO IR, FP32 weights, dynamic H/W; OpenVINO runs it in bf16 on BF16 CPUs
    model-fp16.xml/.bin   OpenVINO IR, FP16-compressed weights
    model-int8.xml/.bin   NNCF INT8 — kept only if faster than model.xml (OpenVINO default) in this run and
                          within the INT8 quality limits
    model-int8.onnx       ONNX Runtime static QDQ INT8 — the same rule against model-static.onnx
    manifest.json

Latency of every path is measured in one round-robin loop (:func:`~virtualfocus.export.latency.time_runners`),
so that load from other processes falls on all paths alike when deciding whether INT8 pays.

Why the static file is padded: the runtime pads every capture to the pad multiple (reflect) and crops the
output, so a static 360×360 graph could not even be built for a 4-level (×16) U-Net. Latency is measured at the
padded size S, which is what a 360×360 capture costs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.manifest import InputContract, Manifest

from . import parity as _parity
from ._fs import atomic_folder
from .data import (
    Calibration,
    ValidationSet,
    calibration_tensors,
    check_calibration_arrays,
    from_model_output,
    simulated_stacks,
    to_model_input,
)
from .latency import onnxruntime_runner, openvino_runner, time_runners
from .onnx_export import export_onnx, padded_size
from .openvino_ir import conv_node_names, convert_onnx_to_ir, save_ir
from .quality import MetricFns, default_metrics, evaluate_quality
from .quantize import onnx_conv_names, quantize_onnx_qdq, quantize_openvino

__all__ = ["PRECISIONS", "export_model", "model_stats"]

PRECISIONS = ("fp32", "fp16", "int8")
MAX_FILE_MB = 20.0


def _spec_dict(spec: Any) -> dict[str, Any]:
    if spec is None:
        return {}
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        d = dataclasses.asdict(spec)
    elif isinstance(spec, dict):
        d = dict(spec)
    else:
        raise InputError(f"spec: expected a dataclass or a dict, got {type(spec).__name__}")
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def model_stats(module: Any, *, in_channels: int, size: int) -> dict[str, float]:
    """Parameters and compute of ``module`` for one ``size``×``size`` input (FLOPs counted by torch: 2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in module.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module.eval()(torch.zeros(1, in_channels, size, size))
    flops = fc.get_total_flops()
    return {"params": int(params), "gflops": round(flops / 1e9, 4), "gmacs": round(flops / 2e9, 4),
            "stats_size": size}


def _contract_of(module: Any, contract: InputContract | None, static: int | None = None) -> InputContract:
    if contract is not None:
        return contract
    pad = getattr(module, "pad_multiple", None)
    if not isinstance(pad, int) or pad < 1:
        raise InputError(f"{type(module).__name__}: has no integer `pad_multiple`; pass contract=InputContract(...)")
    return InputContract(channels=int(getattr(module, "out_channels", 3)), inputs=int(getattr(module, "inputs", 1)),
                         pad_multiple=pad, min_size=pad)


def _check_module(module: Any, c: InputContract) -> None:
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InputError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    n = c.pad_multiple * 2
    try:
        with torch.no_grad():
            y = module.eval()(torch.zeros(1, c.channels * c.inputs, n, n))
    except Exception as e:
        raise InputError(f"{type(module).__name__}: forward on a (1, {c.channels * c.inputs}, {n}, {n}) input failed "
                         f"({e}); the input contract {c} does not fit the model") from e
    if tuple(y.shape) != (1, c.channels, n, n):
        raise InputError(f"{type(module).__name__}: output shape {tuple(y.shape)} for a {n}×{n} input; expected "
                         f"(1, {c.channels}, {n}, {n})")


def export_model(
    module: Any,
    *,
    out_dir: str | os.PathLike[str],
    name: str,
    architecture: str,
    spec: Any = None,
    trained: bool,
    training: dict[str, Any] | None = None,
    contract: InputContract | None = None,
    precisions: Sequence[str] = PRECISIONS,
    size: int = 360,
    calibration: Calibration | Sequence[np.ndarray] | None = None,
    validation: ValidationSet | None = None,
    metrics: MetricFns | None = None,
    ignore_first_last: bool | None = None,
    accuracy_control: bool = True,
    max_psnr_drop: float = _parity.INT8_MAX_PSNR_DROP,
    max_fr_change: float = _parity.INT8_MAX_FR_CHANGE,
    latency_runs: int = 30,
    threads: int | None = None,
    max_file_mb: float = MAX_FILE_MB,
    overwrite: bool = False,
    description: str = "",
    trusted_defocus_um: tuple[float, float] | None = None,
    log: Any = None,
) -> Manifest:
    """Export a generator to a model folder with measured latency, quality and parity in its manifest.

    Parameters
    ----------
    module : torch.nn.Module
        The generator; ``(1, channels·inputs, H, W)`` in [-1, 1] → ``(1, channels, H, W)``. Needs
        ``pad_multiple`` (and ``in_channels``/``inputs``/``out_channels`` when not 3/1/3) unless ``contract`` is given.
    out_dir : path
        The model folder to create (``models/NAME``); written atomically.
    name, architecture : str
        Variant name users say, and the registry name it was built from.
    spec : dataclass or dict, optional
        The registry spec, stored in the manifest.
    trained : bool
        False labels an untrained export as such (it restores nothing).
    training : dict, optional
        Provenance (run dir, step, recipe, data).
    contract : InputContract, optional
        Overrides the contract inferred from the module.
    precisions : subset of {"fp32", "fp16", "int8"}
        fp32 (always written: ONNX + IR), fp16 (IR with FP16 weights), int8 (NNCF IR + ORT QDQ, kept if they pay).
    size : int
        Capture side the static file and the latency are for (padded to the multiple).
    calibration : Calibration or sequence of arrays, optional
        INT8 calibration data: simulated (default ``Calibration()``) or tensors ``(1, C, H, W)``.
    validation : ValidationSet, optional
        Fixed simulated stacks for quality and the INT8 verdict (default ``ValidationSet()``).
    metrics : MetricFns, optional
        Metric functions (default :func:`~virtualfocus.export.quality.default_metrics`).
    ignore_first_last : bool or None
        Keep the first and last convolution in float in both INT8 paths (True), never (False), or only when the
        all-INT8 file misses the quality limits (None, default; both attempts are recorded).
    accuracy_control : bool
        Use ``nncf.quantize_with_accuracy_control`` with ``max_psnr_drop`` (dB) on the validation set.
    latency_runs : int
        Timed runs per file (after 5 warm-up runs).
    threads : int, optional
        Inference threads for measurements (backend default when None).
    max_file_mb : float
        Largest file allowed in the folder.
    overwrite : bool
        Replace an existing ``out_dir``.
    description : str
        One line for users (default: architecture and whether it is trained).
    trusted_defocus_um : (float, float), optional
        Defocus range where the output can be trusted, if the caller has evidence for one (not claimed otherwise).
    log : callable, optional
        ``log(str)`` progress messages.

    Returns
    -------
    Manifest
        Loaded back from the finished folder (hashes verified).

    Raises
    ------
    InputError
        Bad precisions, a module that does not fit its contract, bad calibration data, an existing folder,
        a file over ``max_file_mb``. Nothing is left on disk.
    BackendError
        A conversion or quantization failed.
    """

    say = log or (lambda _m: None)
    bad = sorted(set(precisions) - set(PRECISIONS))
    if bad or "fp32" not in precisions:
        raise InputError(f"precisions={list(precisions)}: expected a subset of {list(PRECISIONS)} including 'fp32'")
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"name={name!r}: expected a plain folder name")
    c = _contract_of(module, contract)
    _check_module(module, c)
    in_ch = c.channels * c.inputs
    s = padded_size(size, c.pad_multiple)
    # The contract describes the dynamic files the runtime selects; the static ONNX file is listed as such and
    # its size recorded under compression["static_file"] (a static_size in the contract would make the runtime
    # tile every capture to that size).
    validation = validation or ValidationSet(size=size)
    if padded_size(validation.size, c.pad_multiple) != s:
        raise InputError(f"validation size {validation.size} pads to {padded_size(validation.size, c.pad_multiple)}, "
                         f"but size={size} pads to {s}; use the same capture size for both")
    metrics = metrics or default_metrics()
    calib: list[np.ndarray] | None = None
    calib_desc: dict[str, Any] = {}
    if "int8" in precisions:
        if calibration is None or isinstance(calibration, Calibration):
            cal = calibration or Calibration(size=size)
            calib = calibration_tensors(cal, multiple=c.pad_multiple, inputs=c.inputs, channels=c.channels)
            calib_desc = {**cal.describe(), "samples": len(calib)}
        else:
            calib = check_calibration_arrays(list(calibration), in_channels=in_ch, multiple=c.pad_multiple)
            calib_desc = {"source": "arrays", "samples": len(calib), "shape": list(calib[0].shape)}
    module = module.eval().to("cpu")
    torch_run = _parity.torch_runner(module)
    stacks = simulated_stacks(validation.stacks, seed=validation.seed, size=validation.size)
    x_static = (s, s)
    latency: dict[str, dict[str, float]] = {}
    quality: dict[str, Any] = {"validation": validation.describe(), "metrics": metrics.source}
    execution: dict[str, str] = {}
    dropped: dict[str, str] = {}
    files: list[tuple[str, str, str, str]] = []  # rel, backend, precision, shape
    xs = np.zeros((1, in_ch, s, s), np.float32)

    def q(run: Any) -> dict[str, Any]:
        return evaluate_quality(run, stacks, multiple=c.pad_multiple, metrics=metrics,
                                interval_um=validation.interval_um, inputs=c.inputs)

    with atomic_folder(out_dir, overwrite=overwrite) as tmp:
        say(f"ONNX export ({s}×{s} static + dynamic)")
        export_onnx(module, tmp / "model.onnx", in_channels=in_ch, size=x_static, dynamic=True)
        export_onnx(module, tmp / "model-static.onnx", in_channels=in_ch, size=x_static, dynamic=False)
        files += [("model.onnx", "onnxruntime", "fp32", "dynamic"), ("model-static.onnx", "onnxruntime", "fp32", "static")]
        ov_model = convert_onnx_to_ir(tmp / "model.onnx")
        save_ir(ov_model, tmp / "model.xml", compress_to_fp16=False)
        files.append(("model.xml", "openvino", "fp32", "dynamic"))
        if "fp16" in precisions:
            save_ir(ov_model, tmp / "model-fp16.xml", compress_to_fp16=True)
            files.append(("model-fp16.xml", "openvino", "fp16", "dynamic"))

        say("parity against torch")
        rng = np.random.default_rng(0)
        sim_plane = stacks[0].planes[int(np.argmin(np.abs(stacks[0].offsets_um + 0.6)))]
        sim_caps = [sim_plane] * c.inputs
        par_inputs = {"random": rng.uniform(-1, 1, (1, in_ch, s, s)).astype(np.float32),
                      "simulated": to_model_input(sim_caps, c.pad_multiple)[0]}
        ov_default = openvino_runner(tmp / "model.xml", shape=(1, in_ch, s, s), threads=threads)
        execution["openvino/fp32"] = ov_default.execution_precision  # type: ignore[attr-defined]
        cands = {"onnxruntime/fp32": onnxruntime_runner(tmp / "model.onnx", threads=threads),
                 "onnxruntime/fp32-static": onnxruntime_runner(tmp / "model-static.onnx", threads=threads),
                 "openvino/fp32-f32": openvino_runner(tmp / "model.xml", precision="f32", threads=threads),
                 "openvino/fp32": ov_default}
        tols: dict[str, float | None] = {"onnxruntime/fp32": _parity.FP32_RTOL,
                                         "onnxruntime/fp32-static": _parity.FP32_RTOL,
                                         "openvino/fp32-f32": _parity.FP32_RTOL, "openvino/fp32": None}
        if "fp16" in precisions:
            cands["openvino/fp16-f32"] = openvino_runner(tmp / "model-fp16.xml", precision="f32", threads=threads)
            tols["openvino/fp16-f32"] = None
        res = _parity.check_parity(torch_run, cands, par_inputs, tolerances=tols)
        # Dynamic files at a second, non-square size.
        h2, w2 = max(c.pad_multiple, s - 2 * c.pad_multiple), s + c.pad_multiple
        x2 = {"random-dynamic": rng.uniform(-1, 1, (1, in_ch, h2, w2)).astype(np.float32)}
        res_dyn = _parity.check_parity(
            torch_run, {"onnxruntime/fp32": cands["onnxruntime/fp32"],
                        "openvino/fp32-f32": openvino_runner(tmp / "model.xml", precision="f32", threads=threads)},
            x2, tolerances=tols)
        parity: dict[str, Any] = {
            "method": "max|y - y_torch| / max|y_torch| over the output tensor; worst over inputs",
            "inputs": {k: list(v.shape) for k, v in {**par_inputs, **x2}.items()},
            "float": {k: r.to_dict() for k, r in res.items()},
            "dynamic_shape": {k: r.to_dict() for k, r in res_dyn.items()},
            "note": f"openvino/fp32 runs with OpenVINO's default precision ({execution['openvino/fp32']}); "
                    "reported, not judged",
        }
        failed = [k for k, r in {**res, **{f"{k}@{h2}x{w2}": r for k, r in res_dyn.items()}}.items()
                  if r.passed is False]
        parity["passed"] = not failed
        if failed:
            parity["failed"] = failed

        say("quality of float files")
        shape = (1, in_ch, s, s)
        timed = {"onnxruntime/fp32": cands["onnxruntime/fp32-static"], "openvino/fp32": ov_default,
                 "openvino/fp32-f32": openvino_runner(tmp / "model.xml", precision="f32", shape=shape,
                                                      threads=threads)}
        execution["openvino/fp32-f32"] = "f32"
        execution["onnxruntime/fp32"] = "f32"
        quality["input"] = q(None)
        quality["onnxruntime/fp32"] = q(cands["onnxruntime/fp32"])
        quality["openvino/fp32"] = q(ov_default)
        if "fp16" in precisions:
            ov16 = openvino_runner(tmp / "model-fp16.xml", shape=shape, threads=threads)
            execution["openvino/fp16"] = ov16.execution_precision  # type: ignore[attr-defined]
            timed["openvino/fp16"] = ov16
            quality["openvino/fp16"] = q(ov16)

        int8: dict[str, Any] = {}
        if calib is not None:
            say(f"INT8: {len(calib)} calibration samples")
            ov_convs = conv_node_names(ov_model)
            onnx_convs = onnx_conv_names(tmp / "model.onnx")
            ends = {"openvino": [ov_convs[0], ov_convs[-1]] if len(ov_convs) > 2 else [],
                    "onnxruntime": [onnx_convs[0], onnx_convs[-1]] if len(onnx_convs) > 2 else []}
            # ignore_first_last None = "auto": quantize every layer first; keep the first and last convolution in
            # float only if the all-INT8 file misses the quality limits (they often carry the image's dynamic range).
            attempts = [True] if ignore_first_last else [False, True] if ignore_first_last is None else [False]
            val_items = []
            if accuracy_control:
                for st in stacks:
                    for i, z in enumerate(st.offsets_um):
                        if validation.interval_um[0] - 1e-6 <= z <= validation.interval_um[1] + 1e-6:
                            x, pads = to_model_input([st.planes[i]] * c.inputs, c.pad_multiple)
                            val_items.append((x, st.sharp, pads))

            def validate(compiled: Any, items: Any) -> float:
                vals = [metrics.psnr(gt, from_model_output(np.asarray(compiled(x)[0]), pads)) for x, gt, pads in items]
                return float(np.mean(vals))

            def ov_int8(ignore: bool) -> tuple[Any, dict[str, Any], dict[str, Any]]:
                qmodel, rec = quantize_openvino(ov_model, calib, ignored_names=ends["openvino"] if ignore else [],
                                                validation=val_items if accuracy_control else None,
                                                validation_fn=validate if accuracy_control else None,
                                                max_drop=max_psnr_drop if accuracy_control else None)
                save_ir(qmodel, tmp / "model-int8.xml", compress_to_fp16=False)
                run = openvino_runner(tmp / "model-int8.xml", shape=shape, threads=threads)
                return run, rec.to_dict(), q(run)

            def ort_int8(ignore: bool) -> tuple[Any, dict[str, Any], dict[str, Any]]:
                rec = quantize_onnx_qdq(tmp / "model.onnx", tmp / "model-int8.onnx", calib,
                                        exclude_nodes=ends["onnxruntime"] if ignore else [])
                run = onnxruntime_runner(tmp / "model-int8.onnx", threads=threads)
                return run, rec.to_dict(), q(run)

            for backend, make in (("openvino", ov_int8), ("onnxruntime", ort_int8)):
                tried = []
                for ignore in attempts:
                    run, rec_d, q8 = make(ignore)
                    verdict = _parity.int8_verdict(quality[f"{backend}/fp32"], q8, max_psnr_drop=max_psnr_drop,
                                                   max_fr_change=max_fr_change)
                    tried.append({"ignored_scope": rec_d["ignored_scope"], "verdict": verdict})
                    if verdict["passed"]:
                        break
                timed[f"{backend}/int8"] = run
                quality[f"{backend}/int8"] = q8
                int8[backend] = {**rec_d, "sibling": f"{backend}/fp32", "verdict": verdict, "attempts": tried}

        say(f"latency: {len(timed)} paths interleaved, {latency_runs} runs each at {s}×{s}")
        latency.update(time_runners(timed, xs, runs=latency_runs))
        for backend, (rel, extra) in {"openvino": ("model-int8.xml", "model-int8.bin"),
                                      "onnxruntime": ("model-int8.onnx", None)}.items():
            if backend not in int8:
                continue
            info = int8[backend]
            lat8, lat_sib = latency[f"{backend}/int8"]["p50"], latency[info["sibling"]]["p50"]
            info["faster_than_sibling"] = bool(lat8 < lat_sib)
            why = []
            if not info["faster_than_sibling"]:
                why.append(f"p50 {lat8} ms not faster than {info['sibling']}'s {lat_sib} ms (same run)")
            if not info["verdict"]["passed"]:
                why.append(f"PSNR drop {info['verdict']['psnr_drop_db']} dB / FR change "
                           f"{info['verdict']['fr_change']} over the limits")
            if why:
                dropped[rel] = "; ".join(why)
                for gone in (rel, extra):
                    if gone:
                        (tmp / gone).unlink()
            else:
                files.append((rel, backend, "int8", "dynamic"))
        if int8:
            parity["int8"] = {k: v["verdict"] for k, v in int8.items()}

        for f in sorted(tmp.iterdir()):
            mb = f.stat().st_size / 2**20
            if mb > max_file_mb:
                raise InputError(f"{Path(out_dir) / f.name}: {mb:.1f} MB exceeds max_file_mb={max_file_mb}; "
                                 "choose a smaller variant or raise the limit")
        described = []
        for rel, backend, prec, fshape in files:
            described.append(Manifest.describe_file(tmp, rel, backend=backend, precision=prec, shape=fshape))
            if rel.endswith(".xml"):
                described.append(Manifest.describe_file(tmp, rel[:-4] + ".bin", backend="weights", precision=prec,
                                                        shape=fshape))
        stats = model_stats(module, in_channels=in_ch, size=s)
        manifest = Manifest(
            name=name, architecture=architecture, input=c, files=described, trained=trained, spec=_spec_dict(spec),
            latency_ms=latency, quality=quality,
            params=int(stats["params"]), gflops_360=float(stats["gflops"]),
            trusted_defocus_um=trusted_defocus_um,
            training=dict(training or {}),
            compression={**stats, "static_file": {"path": "model-static.onnx", "size": [s, s]},
                         "execution_precision": execution, "latency_size": [s, s],
                         "latency_threads": threads, "calibration": calib_desc, "int8": int8, "dropped": dropped},
            parity=parity,
            created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            description=description or (f"{architecture} ({'trained' if trained else 'UNTRAINED: restores nothing'})"),
        )
        manifest.save(tmp)
    return Manifest.load(out_dir)
