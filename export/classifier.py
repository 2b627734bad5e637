"""``export_defocus_classifier``: a torch focus-distance classifier → a verified defocus-estimator model folder.

Folder layout (written into a temp folder, renamed into place only when complete)::

    model.onnx        fp32, static 1×3×S×S → 1×K logits (S = the crop the classifier was trained on, K classes)
    model.xml/.bin    OpenVINO IR of the same graph, FP32 weights
    manifest.json     task "defocus", classes_um (the K signed class centres, µm), input.static_size [S, S]

The edge runs it through :class:`~virtualfocus.edge.defocus.DefocusClassifier` (a few fixed crops per capture,
probabilities averaged, estimate = probability-weighted mean of ``classes_um``). The manifest records parity of
the logits (torch vs ONNX Runtime vs OpenVINO f32; OpenVINO's default bf16 reported), latency per crop and per
whole estimate, and the estimate's accuracy and mean absolute error on held-out simulated stacks, measured with the
edge class itself on the files being shipped.
"""

from __future__ import annotations

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
from .data import ValidationSet, simulated_stacks
from .exporter import MAX_FILE_MB, _spec_dict, model_stats
from .latency import onnxruntime_runner, openvino_runner, time_runners
from .onnx_export import export_onnx
from .openvino_ir import convert_onnx_to_ir, save_ir

__all__ = ["export_defocus_classifier", "validate_defocus_classifier"]


def _check_classifier(module: Any, crop: int, classes: int) -> None:
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InputError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    try:
        with torch.no_grad():
            y = module.eval()(torch.zeros(1, 3, crop, crop))
    except Exception as e:
        raise InputError(f"{type(module).__name__}: forward on a (1, 3, {crop}, {crop}) input failed ({e}); "
                         "check the crop size") from e
    if tuple(y.shape) != (1, classes):
        raise InputError(f"{type(module).__name__}: output shape {tuple(y.shape)} for a {crop}×{crop} crop; expected "
                         f"(1, {classes}) logits, one per classes_um entry")


def validate_defocus_classifier(folder: str | os.PathLike[str], stacks: Sequence[Any], *, backend: str,
                                precision: str = "default", crops: int = 5) -> dict[str, Any]:
    """Accuracy and error of a defocus model folder on z-stacks, through the edge estimator.

    Every plane whose offset lies within the class range (±half a class step) is estimated as a capture. Returns
    ``accuracy`` (the most probable class is the class nearest the true offset), ``mae_um`` (mean |estimate −
    offset|), ``bias_um`` (mean estimate − offset), ``within_0.2_um`` (fraction within 0.2 µm), ``sign_accuracy``
    (sign of the estimate right, for planes at least one class step from focus), ``mae_um_by_offset`` and ``n``.
    """
    from virtualfocus.edge.defocus import DefocusClassifier
    from virtualfocus.edge.preprocess import to_unit

    est = DefocusClassifier.load(folder, backend=backend, precision=precision, crops=crops)
    c = est.classes_um
    step = float(np.min(np.diff(c)))
    truth, pred, hit = [], [], []
    for st in stacks:
        for plane, off in zip(st.planes, st.offsets_um, strict=True):
            if not c[0] - step / 2 - 1e-9 <= off <= c[-1] + step / 2 + 1e-9:
                continue
            unit, _ = to_unit(np.asarray(plane))
            p = est.probabilities_unit(unit)
            truth.append(float(off))
            pred.append(float(np.dot(p, c)))
            hit.append(int(np.argmax(p)) == int(np.argmin(np.abs(c - off))))
    if not truth:
        raise InputError(f"validation stacks have no plane within the classes {c[0]:+.1f}…{c[-1]:+.1f} µm")
    t, e = np.asarray(truth), np.asarray(pred)
    err = e - t
    far = np.abs(t) >= step - 1e-9
    by_off = {f"{o:+.1f}": round(float(np.abs(err[np.isclose(t, o)]).mean()), 4) for o in np.unique(np.round(t, 1))}
    return {
        "accuracy": round(float(np.mean(hit)), 4),
        "mae_um": round(float(np.abs(err).mean()), 4),
        "bias_um": round(float(err.mean()), 4),
        "within_0.2_um": round(float(np.mean(np.abs(err) <= 0.2 + 1e-9)), 4),
        "sign_accuracy": round(float(np.mean(np.sign(e[far]) == np.sign(t[far]))), 4) if far.any() else None,
        "mae_um_by_offset": by_off,
        "n": len(truth),
    }


def export_defocus_classifier(
    module: Any,
    *,
    out_dir: str | os.PathLike[str],
    name: str,
    architecture: str,
    classes_um: Sequence[float],
    crop: int,
    spec: Any = None,
    trained: bool,
    training: dict[str, Any] | None = None,
    validation: ValidationSet | None = None,
    crops: int = 5,
    latency_runs: int = 30,
    threads: int | None = None,
    max_file_mb: float = MAX_FILE_MB,
    overwrite: bool = False,
    description: str = "",
    log: Any = None,
) -> Manifest:
    """Export a focus-distance classifier to a defocus-estimator model folder (see the module docstring).

    Parameters
    ----------
    module : torch.nn.Module
        ``(1, 3, crop, crop)`` in [-1, 1] → ``(1, len(classes_um))`` logits.
    out_dir : path
        The model folder to create (``models/NAME``); written atomically.
    name, architecture : str
        Variant name users say, and the registry name it was built from.
    classes_um : sequence of float
        The signed class centres (µm), increasing, one per logit.
    crop : int
        Side of the square crop the classifier was trained on (the static input size).
    spec : dataclass or dict, optional
        The registry spec, stored in the manifest.
    trained : bool
        False labels an untrained export as such (its estimates mean nothing).
    training : dict, optional
        Provenance (run dir, step, config).
    validation : ValidationSet, optional
        Held-out simulated stacks for the accuracy figures (default 4 stacks of 360×360, seed 2000); ``size`` is
        also the capture side of the whole-estimate latency.
    crops : {1, 5}
        Crops per estimate used for the validation and latency figures (what the runtime does by default).
    latency_runs : int
        Timed runs per path (after 5 warm-up runs).
    threads : int, optional
        Inference threads for measurements.
    max_file_mb : float
        Largest file allowed in the folder.
    overwrite : bool
        Replace an existing ``out_dir``.
    description : str
        One line for users.
    log : callable, optional
        ``log(str)`` progress messages.

    Returns
    -------
    Manifest
        Loaded back from the finished folder (hashes verified).

    Raises
    ------
    InputError
        Bad classes or crop, a module whose output does not match them, an existing folder, a file over
        ``max_file_mb``, validation stacks smaller than the crop. Nothing is left on disk.
    BackendError
        A conversion failed.
    """
    from virtualfocus.edge.defocus import CROP_COUNTS, DefocusClassifier, crop_boxes
    from virtualfocus.edge.preprocess import Normalizer, to_unit

    say = log or (lambda _m: None)
    classes = [float(c) for c in classes_um]
    if len(classes) < 2 or classes != sorted(classes) or len(set(classes)) != len(classes):
        raise InputError(f"classes_um={classes}: expected ≥ 2 increasing signed class centres (µm)")
    if not isinstance(crop, int) or crop < 8:
        raise InputError(f"crop={crop!r}: expected the classifier's square crop side in pixels (≥ 8)")
    if crops not in CROP_COUNTS:
        raise InputError(f"crops={crops}: expected one of {list(CROP_COUNTS)}")
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"name={name!r}: expected a plain folder name")
    validation = validation or ValidationSet()
    if validation.size < crop:
        raise InputError(f"validation size {validation.size} is smaller than the crop {crop}; use --size ≥ {crop}")
    _check_classifier(module, crop, len(classes))
    module = module.eval().to("cpu")
    torch_run = _parity.torch_runner(module)
    contract = InputContract(channels=3, inputs=1, value_range=(-1.0, 1.0), pad_multiple=1, min_size=crop,
                             static_size=(crop, crop))
    norm = Normalizer((-1.0, 1.0), 3)
    stacks = simulated_stacks(validation.stacks, seed=validation.seed, size=validation.size)
    shape = (1, 3, crop, crop)

    with atomic_folder(out_dir, overwrite=overwrite) as tmp:
        say(f"ONNX export (static 1×3×{crop}×{crop} → {len(classes)} logits) and OpenVINO IR")
        try:
            export_onnx(module, tmp / "model.onnx", in_channels=3, size=(crop, crop), dynamic=False)
        except InputError:
            raise
        except Exception as e:  # the TorchScript exporter raises its own types, with multi-line messages
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"{architecture}: ONNX export at a {crop}×{crop} crop failed ({first[:300]}); for "
                             "adaptive pooling the crop must shrink (÷2 per block) to a multiple of pool_size") from e
        save_ir(convert_onnx_to_ir(tmp / "model.onnx"), tmp / "model.xml", compress_to_fp16=False)

        say("parity against torch")
        rng = np.random.default_rng(0)
        st = stacks[0]
        plane = st.planes[int(np.argmin(np.abs(st.offsets_um + 0.6)))]
        unit, _ = to_unit(np.asarray(plane))
        top, left = crop_boxes(unit.shape[0], unit.shape[1], crop, crops=1)[0]
        par_inputs = {"random": rng.uniform(-1, 1, shape).astype(np.float32),
                      "simulated": norm.before(np.ascontiguousarray(unit[top:top + crop, left:left + crop]))}
        ov_default = openvino_runner(tmp / "model.xml", threads=threads)
        cands = {"onnxruntime/fp32": onnxruntime_runner(tmp / "model.onnx", threads=threads),
                 "openvino/fp32-f32": openvino_runner(tmp / "model.xml", precision="f32", threads=threads),
                 "openvino/fp32": ov_default}
        tols: dict[str, float | None] = {"onnxruntime/fp32": _parity.FP32_RTOL, "openvino/fp32-f32": _parity.FP32_RTOL,
                                         "openvino/fp32": None}
        res = _parity.check_parity(torch_run, cands, par_inputs, tolerances=tols)
        execution = {"openvino/fp32": str(getattr(ov_default, "execution_precision", "unknown")),
                     "openvino/fp32-f32": "f32", "onnxruntime/fp32": "f32"}
        failed = [k for k, r in res.items() if r.passed is False]
        parity: dict[str, Any] = {
            "method": "max|y - y_torch| / max|y_torch| over the logits; worst over inputs",
            "inputs": {k: list(v.shape) for k, v in par_inputs.items()},
            "float": {k: r.to_dict() for k, r in res.items()},
            "note": f"openvino/fp32 runs with OpenVINO's default precision ({execution['openvino/fp32']}); "
                    "reported, not judged",
            "passed": not failed,
        }
        if failed:
            parity["failed"] = failed

        say(f"latency: {len(cands)} paths interleaved, {latency_runs} runs each per {crop}×{crop} crop")
        latency = time_runners(cands, par_inputs["random"], runs=latency_runs)

        for f in sorted(tmp.iterdir()):
            mb = f.stat().st_size / 2**20
            if mb > max_file_mb:
                raise InputError(f"{Path(out_dir) / f.name}: {mb:.1f} MB exceeds max_file_mb={max_file_mb}; "
                                 "choose a smaller classifier or raise the limit")
        files = [Manifest.describe_file(tmp, "model.onnx", backend="onnxruntime", precision="fp32", shape="static"),
                 Manifest.describe_file(tmp, "model.xml", backend="openvino", precision="fp32", shape="static"),
                 Manifest.describe_file(tmp, "model.bin", backend="weights", precision="fp32", shape="static")]
        stats = model_stats(module, in_channels=3, size=crop)
        n_boxes = len(crop_boxes(360, 360, crop, crops=crops)) if crop <= 360 else 1
        manifest = Manifest(
            name=name, architecture=architecture, input=contract, files=files, trained=trained,
            spec=_spec_dict(spec), params=int(stats["params"]),
            gflops_360=round(float(stats["gflops"]) * n_boxes, 4),
            latency_ms=latency, training=dict(training or {}),
            compression={**stats, "static_file": {"path": "model.onnx", "size": [crop, crop]},
                         "execution_precision": execution, "latency_size": [crop, crop], "latency_threads": threads,
                         "crops_per_estimate_360": n_boxes},
            parity=parity, task="defocus", classes_um=tuple(classes),
            created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            description=description or (f"{architecture} defocus estimator "
                                        f"({'trained' if trained else 'UNTRAINED: its estimates mean nothing'})"),
        )
        manifest.save(tmp)  # the edge estimator below loads (and verifies) the folder as it will ship

        say(f"accuracy on {validation.stacks} held-out simulated stacks through the edge estimator")
        quality: dict[str, Any] = {"validation": {**validation.describe(), "crops": crops},
                                   "metrics": "virtualfocus.export.classifier.validate_defocus_classifier"}
        for key, backend, prec in (("onnxruntime/fp32", "onnxruntime", "default"),
                                   ("openvino/fp32", "openvino", "default")):
            quality[key] = validate_defocus_classifier(tmp, stacks, backend=backend, precision=prec, crops=crops)
        edge = DefocusClassifier.load(tmp, threads=threads, crops=crops)
        frame = np.asarray(stacks[0].planes[0])
        est_run = {f"{edge.backend_name}/estimate-{crops}crops": lambda _x: np.asarray(edge.estimate(frame).defocus_um)}
        latency.update(time_runners(est_run, frame, runs=latency_runs))
        manifest.quality = quality
        manifest.latency_ms = latency
        manifest.compression["estimate_size"] = list(frame.shape[:2])
        manifest.save(tmp)
    return Manifest.load(out_dir)
