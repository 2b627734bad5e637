"""``export_defocus_classifier``: a torch focus-distance classifier → a verified defocus-estimator model folder.

Folder layout (written into a temp folder, renamed into place only when complete)::

    model.onnx        fp32, static 1×3×S×S → 1×K logits (S = the crop the classifier was trained on, K classes)
    model.xml/.bin    OpenVINO IR of the same graph, FP32 weights
    manifest.json     task "defocus", classes_um (the K signed class centres, µm), input.static_size [S, S]

The edge runs it through :class:`~virtualfocus.edge.classifier.DefocusClassifier` (a few fixed crops per capture,
probabilities averaged, estimate = probability-weighted mean of ``classes_um``). The manifest records parity of
the logits (torch vs ONNX Runtime vs OpenVINO f32; OpenVINO's default bf16 reported), latency per crop and per
whole estimate, and the estimate's accuracy and mean absolute error on held-out simulated stacks, measured with the
edge class itself on the files being shipped.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.manifest import Compression, InputContract, Manifest, Quality

from . import parity as _parity
from ._fs import atomic_folder
from .data import ValidationSet, simulated_stacks
from .latency import Runner, time_runners
from .onnx_export import export_onnx
from .openvino_ir import convert_onnx_to_ir, save_ir
from .precision import FilePrecision
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
    from virtualfocus.edge.classifier import DefocusClassifier
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
    say = log or (lambda _m: None)
    classes = _check_arguments(classes_um, crop, crops, name)
    validation = validation or ValidationSet()
    if validation.size < crop:
        raise InputError(f"validation size {validation.size} is smaller than the crop {crop}; use --size ≥ {crop}")
    _check_classifier(module, crop, len(classes))
    module = module.eval().to("cpu")
    stacks = simulated_stacks(validation.stacks, seed=validation.seed, size=validation.size)

    with atomic_folder(out_dir, overwrite=overwrite) as tmp:
        say(f"ONNX export (static 1×3×{crop}×{crop} → {len(classes)} logits) and OpenVINO IR")
        files = _write_classifier_files(module, tmp, crop=crop, architecture=architecture)
        say("parity against torch")
        inputs = _parity_inputs(stacks[0], crop)
        fp = float_parity(_parity.torch_runner(module), tmp, inputs, onnx="model.onnx", ir="model.xml",
                          threads=threads)
        parity = parity_record(fp.results, inputs, over="the logits",
                               default_precision=fp.execution["openvino/fp32"])
        say(f"latency: {len(fp.runners)} paths interleaved, {latency_runs} runs each per {crop}×{crop} crop")
        latency = time_runners(fp.runners, inputs["random"], runs=latency_runs)
        check_file_sizes(tmp, out_dir, max_file_mb, smaller="classifier")
        stats = model_stats(module, in_channels=3, size=crop)
        n_boxes = _boxes_per_estimate(crop, crops)
        manifest = Manifest(
            name=name, architecture=architecture, input=_classifier_contract(crop),
            files=describe_files(tmp, files), trained=trained, spec=spec_dict(spec), params=int(stats["params"]),
            gflops_360=round(float(stats["gflops"]) * n_boxes, 4),
            latency_ms=latency, training=dict(training or {}),
            compression=Compression(**stats, static_file={"path": "model.onnx", "size": [crop, crop]},
                                    execution_precision=dict(fp.execution), latency_size=(crop, crop),
                                    latency_threads=threads, crops_per_estimate_360=n_boxes),
            parity=parity, task="defocus", classes_um=tuple(classes),
            created=created_now(),
            description=description or (f"{architecture} defocus estimator "
                                        f"({'trained' if trained else 'UNTRAINED: its estimates mean nothing'})"),
        )
        manifest.save(tmp)  # the edge estimator below loads (and verifies) the folder as it will ship
        say(f"accuracy on {validation.stacks} held-out simulated stacks through the edge estimator")
        _measure_through_edge(manifest, tmp, stacks, validation, crops=crops, threads=threads,
                              latency_runs=latency_runs)
    return Manifest.load(out_dir)


def _check_arguments(classes_um: Sequence[float], crop: int, crops: int, name: str) -> list[float]:
    from virtualfocus.edge.defocus import CROP_COUNTS

    classes = [float(c) for c in classes_um]
    if len(classes) < 2 or classes != sorted(classes) or len(set(classes)) != len(classes):
        raise InputError(f"classes_um={classes}: expected ≥ 2 increasing signed class centres (µm)")
    if not isinstance(crop, int) or crop < 8:
        raise InputError(f"crop={crop!r}: expected the classifier's square crop side in pixels (≥ 8)")
    if crops not in CROP_COUNTS:
        raise InputError(f"crops={crops}: expected one of {list(CROP_COUNTS)}")
    check_name(name)
    return classes


def _classifier_contract(crop: int) -> InputContract:
    return InputContract(channels=3, inputs=1, value_range=(-1.0, 1.0), pad_multiple=1, min_size=crop,
                         static_size=(crop, crop))


def _boxes_per_estimate(crop: int, crops: int) -> int:
    from virtualfocus.edge.defocus import crop_boxes

    return len(crop_boxes(360, 360, crop, crops=crops)) if crop <= 360 else 1


def _write_classifier_files(module: Any, tmp: Path, *, crop: int, architecture: str) -> list[ShippedFile]:
    """The static ONNX file and its OpenVINO IR (fp32)."""
    try:
        export_onnx(module, tmp / "model.onnx", in_channels=3, size=(crop, crop), dynamic=False)
    except InputError:
        raise
    except Exception as e:  # the TorchScript exporter raises its own types, with multi-line messages
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{architecture}: ONNX export at a {crop}×{crop} crop failed ({first[:300]}); for "
                         "adaptive pooling the crop must shrink (÷2 per block) to a multiple of pool_size") from e
    save_ir(convert_onnx_to_ir(tmp / "model.onnx"), tmp / "model.xml", compress_to_fp16=False)
    return [ShippedFile("model.onnx", "onnxruntime", FilePrecision.FP32, "static"),
            ShippedFile("model.xml", "openvino", FilePrecision.FP32, "static")]


def _parity_inputs(stack: Any, crop: int) -> dict[str, np.ndarray]:
    """A random crop, and the runtime's first crop of a plane 0.6 µm below focus, as the classifier sees them."""
    from virtualfocus.edge.defocus import crop_boxes
    from virtualfocus.edge.preprocess import Normalizer, to_unit

    rng = np.random.default_rng(0)
    plane = stack.planes[int(np.argmin(np.abs(stack.offsets_um + 0.6)))]
    unit, _ = to_unit(np.asarray(plane))
    top, left = crop_boxes(unit.shape[0], unit.shape[1], crop, crops=1)[0]
    norm = Normalizer((-1.0, 1.0), 3)
    return {"random": rng.uniform(-1, 1, (1, 3, crop, crop)).astype(np.float32),
            "simulated": norm.before(np.ascontiguousarray(unit[top:top + crop, left:left + crop]))}


def _measure_through_edge(manifest: Manifest, tmp: Path, stacks: Sequence[Any], validation: ValidationSet, *,
                          crops: int, threads: int | None, latency_runs: int) -> None:
    """Accuracy on the validation stacks and whole-estimate latency, measured with the edge estimator on the
    files being shipped; written into ``manifest`` and saved."""
    from virtualfocus.edge.classifier import DefocusClassifier

    quality = Quality(validation={**validation.describe(), "crops": crops},
                      metrics="virtualfocus.export.classifier.validate_defocus_classifier")
    for key, backend in (("onnxruntime/fp32", "onnxruntime"), ("openvino/fp32", "openvino")):
        quality = quality.with_scores(key, validate_defocus_classifier(tmp, stacks, backend=backend,
                                                                       precision="default", crops=crops))
    edge = DefocusClassifier.load(tmp, threads=threads, crops=crops)
    frame = np.asarray(stacks[0].planes[0])
    estimate: dict[str, Runner] = {
        f"{edge.backend_name}/estimate-{crops}crops": lambda _x: np.asarray(edge.estimate(frame).defocus_um)}
    manifest.latency_ms.update(time_runners(estimate, frame, runs=latency_runs))
    manifest.quality = quality
    manifest.compression = dataclasses.replace(manifest.compression, estimate_size=(frame.shape[0], frame.shape[1]))
    manifest.save(tmp)
