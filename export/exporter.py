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
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.manifest import Compression, InputContract, Int8Verdict, Manifest, Parity, Quality

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
from .latency import Runner, onnxruntime_runner, openvino_runner, time_runners
from .onnx_export import export_onnx, padded_size
from .openvino_ir import conv_node_names, convert_onnx_to_ir, save_ir
from .precision import ExecutionHint, FilePrecision
from .quality import MetricFns, default_metrics, evaluate_quality
from .quantize import onnx_conv_names, quantize_onnx_qdq, quantize_openvino
from .steps import (
    MAX_FILE_MB,
    ShippedFile,
    check_file_sizes,
    check_name,
    created_now,
    describe_files,
    float_parity,
    model_stats,
    parity_record,
    spec_dict,
)

__all__ = ["MAX_FILE_MB", "PRECISIONS", "export_model", "model_stats"]

PRECISIONS: tuple[FilePrecision, ...] = tuple(FilePrecision)
_INT8_FILES = {"openvino": ("model-int8.xml", "model-int8.bin"), "onnxruntime": ("model-int8.onnx", None)}


def _contract_of(module: Any, contract: InputContract | None) -> InputContract:
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


def _file_precisions(precisions: Sequence[str | FilePrecision]) -> frozenset[FilePrecision]:
    valid = {p.value for p in FilePrecision}
    bad = sorted(str(p) for p in set(precisions) if str(p) not in valid)
    if bad or FilePrecision.FP32 not in precisions:
        raise InputError(f"precisions={[str(p) for p in precisions]}: expected a subset of {sorted(valid)} "
                         "including 'fp32'")
    return frozenset(FilePrecision(str(p)) for p in precisions)


@dataclass
class _Export:
    """One generator export in progress: its settings, then what each step has measured."""

    module: Any
    contract: InputContract
    padded: int  # side of the static file and of the latency measurements
    precisions: frozenset[FilePrecision]
    validation: ValidationSet
    metrics: MetricFns
    stacks: list[Any]
    calib: list[np.ndarray] | None
    calib_desc: dict[str, Any]
    ignore_first_last: bool | None
    accuracy_control: bool
    max_psnr_drop: float
    max_fr_change: float
    latency_runs: int
    threads: int | None
    say: Callable[[str], None]
    torch_run: Runner
    files: list[ShippedFile] = field(default_factory=list)
    execution: dict[str, str] = field(default_factory=dict)
    quality: Quality = field(default_factory=Quality)
    float_runners: dict[str, Runner] = field(default_factory=dict)  # from the parity step
    timed: dict[str, Runner] = field(default_factory=dict)  # the paths whose latency decides INT8
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    int8: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    ov_model: Any = None

    @property
    def in_channels(self) -> int:
        return self.contract.channels * self.contract.inputs

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_channels, self.padded, self.padded)

    def quality_of(self, run: Runner | None) -> dict[str, Any]:
        """Quality of ``run`` (None = the input itself) on the validation stacks."""
        return evaluate_quality(run, self.stacks, multiple=self.contract.pad_multiple, metrics=self.metrics,
                                interval_um=self.validation.interval_um, inputs=self.contract.inputs)


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
    precisions: Sequence[str | FilePrecision] = PRECISIONS,
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
    precisions : subset of FilePrecision ({"fp32", "fp16", "int8"})
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

    Notes
    -----
    The steps, in order: :func:`_prepare` (check the arguments, draw the data), then inside the atomic folder
    :func:`_write_files` → :func:`_check_parity` → :func:`_measure_quality` → :func:`_quantize_int8` →
    :func:`_decide_int8` → :func:`_write_manifest`.

    Raises
    ------
    InputError
        Bad precisions, a module that does not fit its contract, bad calibration data, an existing folder,
        a file over ``max_file_mb``. Nothing is left on disk.
    BackendError
        A conversion or quantization failed.
    """

    check_name(name)
    job = _prepare(module, precisions=precisions, contract=contract, size=size, calibration=calibration,
                   validation=validation, metrics=metrics, ignore_first_last=ignore_first_last,
                   accuracy_control=accuracy_control, max_psnr_drop=max_psnr_drop, max_fr_change=max_fr_change,
                   latency_runs=latency_runs, threads=threads, log=log)
    with atomic_folder(out_dir, overwrite=overwrite) as tmp:
        _write_files(job, tmp)
        parity = _check_parity(job, tmp)
        _measure_quality(job, tmp)
        _quantize_int8(job, tmp)
        _decide_int8(job, tmp)
        if job.int8:
            parity = dataclasses.replace(parity, int8={k: Int8Verdict.from_dict(v["verdict"], f"parity.int8.{k}")
                                                       for k, v in job.int8.items()})
        check_file_sizes(tmp, out_dir, max_file_mb, smaller="variant")
        _write_manifest(job, tmp, parity, name=name, architecture=architecture, spec=spec, trained=trained,
                        training=training, description=description, trusted_defocus_um=trusted_defocus_um)
    return Manifest.load(out_dir)


def _prepare(module: Any, *, precisions: Sequence[str | FilePrecision], contract: InputContract | None, size: int,
             calibration: Calibration | Sequence[np.ndarray] | None, validation: ValidationSet | None,
             metrics: MetricFns | None, ignore_first_last: bool | None, accuracy_control: bool,
             max_psnr_drop: float, max_fr_change: float, latency_runs: int, threads: int | None,
             log: Any) -> _Export:
    """Check the arguments against each other and the module; draw the validation and calibration data."""
    wanted = _file_precisions(precisions)
    c = _contract_of(module, contract)
    _check_module(module, c)
    s = padded_size(size, c.pad_multiple)
    # The contract describes the dynamic files the runtime selects; the static ONNX file is listed as such and
    # its size recorded under compression["static_file"] (a static_size in the contract would make the runtime
    # tile every capture to that size).
    validation = validation or ValidationSet(size=size)
    if padded_size(validation.size, c.pad_multiple) != s:
        raise InputError(f"validation size {validation.size} pads to {padded_size(validation.size, c.pad_multiple)}, "
                         f"but size={size} pads to {s}; use the same capture size for both")
    calib: list[np.ndarray] | None = None
    calib_desc: dict[str, Any] = {}
    if FilePrecision.INT8 in wanted:
        if calibration is None or isinstance(calibration, Calibration):
            cal = calibration or Calibration(size=size)
            calib = calibration_tensors(cal, multiple=c.pad_multiple, inputs=c.inputs, channels=c.channels)
            calib_desc = {**cal.describe(), "samples": len(calib)}
        else:
            calib = check_calibration_arrays(list(calibration), in_channels=c.channels * c.inputs,
                                             multiple=c.pad_multiple)
            calib_desc = {"source": "arrays", "samples": len(calib), "shape": list(calib[0].shape)}
    module = module.eval().to("cpu")
    metrics = metrics or default_metrics()
    return _Export(module=module, contract=c, padded=s, precisions=wanted, validation=validation, metrics=metrics,
                   stacks=simulated_stacks(validation.stacks, seed=validation.seed, size=validation.size),
                   calib=calib, calib_desc=calib_desc, ignore_first_last=ignore_first_last,
                   accuracy_control=accuracy_control, max_psnr_drop=max_psnr_drop, max_fr_change=max_fr_change,
                   latency_runs=latency_runs, threads=threads, say=log or (lambda _m: None),
                   torch_run=_parity.torch_runner(module),
                   quality=Quality(validation=validation.describe(), metrics=metrics.source))


def _write_files(job: _Export, tmp: Path) -> None:
    """The float files: dynamic and static ONNX, the OpenVINO IR, and its FP16-weight copy when asked for."""
    s = job.padded
    job.say(f"ONNX export ({s}×{s} static + dynamic)")
    export_onnx(job.module, tmp / "model.onnx", in_channels=job.in_channels, size=(s, s), dynamic=True)
    export_onnx(job.module, tmp / "model-static.onnx", in_channels=job.in_channels, size=(s, s), dynamic=False)
    job.files += [ShippedFile("model.onnx", "onnxruntime", FilePrecision.FP32, "dynamic"),
                  ShippedFile("model-static.onnx", "onnxruntime", FilePrecision.FP32, "static")]
    job.ov_model = convert_onnx_to_ir(tmp / "model.onnx")
    save_ir(job.ov_model, tmp / "model.xml", compress_to_fp16=False)
    job.files.append(ShippedFile("model.xml", "openvino", FilePrecision.FP32, "dynamic"))
    if FilePrecision.FP16 in job.precisions:
        save_ir(job.ov_model, tmp / "model-fp16.xml", compress_to_fp16=True)
        job.files.append(ShippedFile("model-fp16.xml", "openvino", FilePrecision.FP16, "dynamic"))


def _check_parity(job: _Export, tmp: Path) -> Parity:
    """Float files vs torch on a random and a simulated input at the static size, and the dynamic files at a
    second, non-square size. Returns the manifest's ``parity`` section."""
    job.say("parity against torch")
    c, s, threads = job.contract, job.padded, job.threads
    rng = np.random.default_rng(0)
    st = job.stacks[0]
    sim_plane = st.planes[int(np.argmin(np.abs(st.offsets_um + 0.6)))]
    inputs = {"random": rng.uniform(-1, 1, job.shape).astype(np.float32),
              "simulated": to_model_input([sim_plane] * c.inputs, c.pad_multiple)[0]}
    extra: dict[str, tuple[Runner, float | None]] = {
        "onnxruntime/fp32-static": (onnxruntime_runner(tmp / "model-static.onnx", threads=threads), _parity.FP32_RTOL)}
    if FilePrecision.FP16 in job.precisions:
        extra["openvino/fp16-f32"] = (openvino_runner(tmp / "model-fp16.xml", precision=ExecutionHint.F32,
                                                      threads=threads), None)
    fp = float_parity(job.torch_run, tmp, inputs, onnx="model.onnx", ir="model.xml", threads=threads, extra=extra)
    job.execution["openvino/fp32"] = fp.execution["openvino/fp32"]
    h2, w2 = max(c.pad_multiple, s - 2 * c.pad_multiple), s + c.pad_multiple
    x2 = {"random-dynamic": rng.uniform(-1, 1, (1, job.in_channels, h2, w2)).astype(np.float32)}
    dynamic = _parity.check_parity(
        job.torch_run, {"onnxruntime/fp32": fp.runners["onnxruntime/fp32"],
                        "openvino/fp32-f32": openvino_runner(tmp / "model.xml", precision=ExecutionHint.F32,
                                                             threads=threads)},
        x2, tolerances={"onnxruntime/fp32": _parity.FP32_RTOL, "openvino/fp32-f32": _parity.FP32_RTOL})
    job.float_runners = fp.runners
    return parity_record(fp.results, {**inputs, **x2}, over="the output tensor",
                         default_precision=job.execution["openvino/fp32"], dynamic=dynamic,
                         dynamic_suffix=f"@{h2}x{w2}")


def _measure_quality(job: _Export, tmp: Path) -> None:
    """Validation-set quality of the input and of every float path the runtime may run."""
    job.say("quality of float files")
    runners = job.float_runners
    # latency is timed on the static ONNX file and on the IR reshaped to the static size (what the runtime runs)
    job.timed = {"onnxruntime/fp32": runners["onnxruntime/fp32-static"], "openvino/fp32": runners["openvino/fp32"],
                 "openvino/fp32-f32": openvino_runner(tmp / "model.xml", precision=ExecutionHint.F32,
                                                      shape=job.shape, threads=job.threads)}
    job.execution["openvino/fp32-f32"] = ExecutionHint.F32.value
    job.execution["onnxruntime/fp32"] = ExecutionHint.F32.value
    job.quality = job.quality.with_scores("input", job.quality_of(None))
    job.quality = job.quality.with_scores("onnxruntime/fp32", job.quality_of(runners["onnxruntime/fp32"]))
    job.quality = job.quality.with_scores("openvino/fp32", job.quality_of(runners["openvino/fp32"]))
    if FilePrecision.FP16 in job.precisions:
        ov16 = openvino_runner(tmp / "model-fp16.xml", shape=job.shape, threads=job.threads)
        job.execution["openvino/fp16"] = ov16.execution_precision  # type: ignore[attr-defined]
        job.timed["openvino/fp16"] = ov16
        job.quality = job.quality.with_scores("openvino/fp16", job.quality_of(ov16))


def _accuracy_items(job: _Export) -> list[tuple[np.ndarray, np.ndarray, Any]]:
    """(model input, sharp plane, pads) of every validation plane in the interval, for NNCF's accuracy control."""
    c, (lo, hi) = job.contract, job.validation.interval_um
    items = []
    for st in job.stacks:
        for i, z in enumerate(st.offsets_um):
            if lo - 1e-6 <= z <= hi + 1e-6:
                x, pads = to_model_input([st.planes[i]] * c.inputs, c.pad_multiple)
                items.append((x, st.sharp, pads))
    return items


def _quantize_int8(job: _Export, tmp: Path) -> None:
    """INT8 files for both backends. With ``ignore_first_last=None`` every layer is quantized first, and the first
    and last convolution are kept in float only if the all-INT8 file misses the quality limits (they often carry
    the image's dynamic range); every attempt is recorded."""
    if job.calib is None:
        return
    calib = job.calib
    job.say(f"INT8: {len(calib)} calibration samples")
    ov_convs, onnx_convs = conv_node_names(job.ov_model), onnx_conv_names(tmp / "model.onnx")
    ends = {"openvino": [ov_convs[0], ov_convs[-1]] if len(ov_convs) > 2 else [],
            "onnxruntime": [onnx_convs[0], onnx_convs[-1]] if len(onnx_convs) > 2 else []}
    attempts = [True] if job.ignore_first_last else [False, True] if job.ignore_first_last is None else [False]
    control = job.accuracy_control
    items = _accuracy_items(job) if control else []

    def mean_psnr(compiled: Any, items: Any) -> float:
        return float(np.mean([job.metrics.psnr(gt, from_model_output(np.asarray(compiled(x)[0]), pads))
                              for x, gt, pads in items]))

    def quantize(backend: str, ignore: bool) -> tuple[Runner, dict[str, Any]]:
        if backend == "openvino":
            qmodel, rec = quantize_openvino(job.ov_model, calib, ignored_names=ends["openvino"] if ignore else [],
                                            validation=items if control else None,
                                            validation_fn=mean_psnr if control else None,
                                            max_drop=job.max_psnr_drop if control else None)
            save_ir(qmodel, tmp / "model-int8.xml", compress_to_fp16=False)
            return openvino_runner(tmp / "model-int8.xml", shape=job.shape, threads=job.threads), rec.to_dict()
        rec = quantize_onnx_qdq(tmp / "model.onnx", tmp / "model-int8.onnx", calib,
                                exclude_nodes=ends["onnxruntime"] if ignore else [])
        return onnxruntime_runner(tmp / "model-int8.onnx", threads=job.threads), rec.to_dict()

    for backend in _INT8_FILES:
        tried = []
        for ignore in attempts:
            run, rec = quantize(backend, ignore)
            q8 = job.quality_of(run)
            verdict = _parity.int8_verdict(job.quality.measured[f"{backend}/fp32"], q8, max_psnr_drop=job.max_psnr_drop,
                                           max_fr_change=job.max_fr_change)
            tried.append({"ignored_scope": rec["ignored_scope"], "verdict": verdict})
            if verdict["passed"]:
                break
        job.timed[f"{backend}/int8"] = run
        job.quality = job.quality.with_scores(f"{backend}/int8", q8)
        job.int8[backend] = {**rec, "sibling": f"{backend}/fp32", "verdict": verdict, "attempts": tried}


def _decide_int8(job: _Export, tmp: Path) -> None:
    """Time every path in one interleaved loop; keep an INT8 file only if it is faster than its float sibling in
    this run and within the quality limits, else delete it and say why."""
    s = job.padded
    job.say(f"latency: {len(job.timed)} paths interleaved, {job.latency_runs} runs each at {s}×{s}")
    job.latency.update(time_runners(job.timed, np.zeros(job.shape, np.float32), runs=job.latency_runs))
    for backend, (rel, extra) in _INT8_FILES.items():
        if backend not in job.int8:
            continue
        info = job.int8[backend]
        lat8, lat_sib = job.latency[f"{backend}/int8"]["p50"], job.latency[info["sibling"]]["p50"]
        info["faster_than_sibling"] = bool(lat8 < lat_sib)
        why = []
        if not info["faster_than_sibling"]:
            why.append(f"p50 {lat8} ms not faster than {info['sibling']}'s {lat_sib} ms (same run)")
        if not info["verdict"]["passed"]:
            why.append(f"PSNR drop {info['verdict']['psnr_drop_db']} dB / FR change "
                       f"{info['verdict']['fr_change']} over the limits")
        if why:
            job.dropped[rel] = "; ".join(why)
            for gone in (rel, extra):
                if gone:
                    (tmp / gone).unlink()
        else:
            job.files.append(ShippedFile(rel, backend, FilePrecision.INT8, "dynamic"))


def _write_manifest(job: _Export, tmp: Path, parity: Parity, *, name: str, architecture: str, spec: Any,
                    trained: bool, training: dict[str, Any] | None, description: str,
                    trusted_defocus_um: tuple[float, float] | None) -> None:
    s = job.padded
    stats = model_stats(job.module, in_channels=job.in_channels, size=s)
    Manifest(
        name=name, architecture=architecture, input=job.contract, files=describe_files(tmp, job.files),
        trained=trained, spec=spec_dict(spec), latency_ms=job.latency, quality=job.quality,
        params=int(stats["params"]), gflops_360=float(stats["gflops"]),
        trusted_defocus_um=trusted_defocus_um,
        training=dict(training or {}),
        compression=Compression(**stats, static_file={"path": "model-static.onnx", "size": [s, s]},
                                execution_precision=dict(job.execution), latency_size=(s, s),
                                latency_threads=job.threads, calibration=job.calib_desc, int8=job.int8,
                                dropped=job.dropped),
        parity=parity,
        created=created_now(),
        description=description or (f"{architecture} ({'trained' if trained else 'UNTRAINED: restores nothing'})"),
    ).save(tmp)
