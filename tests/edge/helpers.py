"""Models and backend doubles made by the tests themselves (OpenVINO opset / ONNX helper): identity and a conv blur, with
manifests; and a tiny focus-distance classifier exported with the product's exporter (needs torch)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge.backends import BackendKind
from virtualfocus.edge.manifest import InputContract, Manifest


def _identity_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "h", "w"])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    g = helper.make_graph([helper.make_node("Mul", ["x", "one"], ["y"])], "identity", [x], [y], [one])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))


def make_model_folder(folder: Path, *, name: str = "identity", pad_multiple: int = 16, kind: str = "identity",
                      trained: bool = True) -> Path:
    """A model folder with an OpenVINO IR, an ONNX file and a manifest; ``kind`` identity or blur (3×3 box)."""
    import openvino as ov
    import openvino.opset13 as ops

    folder.mkdir(parents=True, exist_ok=True)
    p = ops.parameter([1, 3, -1, -1], np.float32, name="x")
    if kind == "identity":
        out = ops.multiply(p, ops.constant(np.float32(1.0)))
    elif kind == "blur":
        w = np.zeros((3, 3, 3, 3), np.float32)
        for c in range(3):
            w[c, c] = 1 / 9
        out = ops.convolution(p, ops.constant(w), [1, 1], [1, 1], [1, 1], [1, 1])
    else:
        raise ValueError(kind)
    ov.save_model(ov.Model([out], [p], name), str(folder / "model.xml"))
    files = [
        Manifest.describe_file(folder, "model.xml", backend="openvino", precision="fp32", shape="dynamic"),
        Manifest.describe_file(folder, "model.bin", backend="weights", precision="fp32", shape="dynamic"),
    ]
    if kind == "identity":
        _identity_onnx(folder / "model.onnx")
        files.append(Manifest.describe_file(folder, "model.onnx", backend="onnxruntime", precision="fp32",
                                            shape="dynamic"))
    m = Manifest(name=name, architecture=f"test-{kind}", input=InputContract(pad_multiple=pad_multiple),
                 files=files, trained=trained)
    m.save(folder)
    return folder


class _WrappedBackend:
    """A real backend with test behaviour added around ``run`` (subclasses override ``before_run``)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.kind: BackendKind = inner.kind
        self.precision = inner.precision
        self.calls = 0

    def input_shape(self):
        return self.inner.input_shape()

    def before_run(self) -> None:
        """Called before each inference."""

    def run(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.before_run()
        return self.inner.run(x)


class SlowBackend(_WrappedBackend):
    """Adds a fixed delay per call, to exercise the latency guard."""

    def __init__(self, inner, delay_s: float) -> None:
        super().__init__(inner)
        self.delay_s = delay_s

    def before_run(self) -> None:
        time.sleep(self.delay_s)


class FailingBackend(_WrappedBackend):
    """Starts raising BackendError after ``ok_calls`` calls (a driver dying mid-stream)."""

    def __init__(self, inner, ok_calls: int) -> None:
        super().__init__(inner)
        self.ok_calls = ok_calls

    def before_run(self) -> None:
        from virtualfocus.edge.errors import BackendError

        if self.calls > self.ok_calls:
            raise BackendError("injected failure: device lost")


def make_two_input_model_folder(folder: Path, *, name: str = "two-shot-identity", pad_multiple: int = 16,
                                kind: str = "first") -> Path:
    """A two-input model folder (manifest ``input.inputs == 2``, 6-channel NCHW input) as an OpenVINO IR.

    ``kind="first"`` returns the first capture (channels 0-2: the sharper one, the residual base); ``"mean"``
    returns the mean of the two captures.
    """
    import openvino as ov
    import openvino.opset13 as ops

    folder.mkdir(parents=True, exist_ok=True)
    p = ops.parameter([1, 6, -1, -1], np.float32, name="x")
    halves = ops.split(p, ops.constant(np.int64(1)), 2)
    if kind == "first":
        out = ops.multiply(halves.output(0), ops.constant(np.float32(1.0)))
    elif kind == "mean":
        out = ops.multiply(ops.add(halves.output(0), halves.output(1)), ops.constant(np.float32(0.5)))
    else:
        raise ValueError(kind)
    ov.save_model(ov.Model([out], [p], name), str(folder / "model.xml"))
    files = [
        Manifest.describe_file(folder, "model.xml", backend="openvino", precision="fp32", shape="dynamic"),
        Manifest.describe_file(folder, "model.bin", backend="weights", precision="fp32", shape="dynamic"),
    ]
    m = Manifest(name=name, architecture=f"test-two-shot-{kind}",
                 input=InputContract(inputs=2, pad_multiple=pad_multiple), files=files, trained=True)
    m.save(folder)
    return folder


#: Crop of the tiny focus-distance classifier the tests export (the registry's network with small overrides).
TINY_DEFOCUS_CROP = 64


def tiny_defocus_classifier(*, seed: int = 0, favour: int | None = None):
    """(spec, module): ``focus-distance-classifier`` from the registry, a few filters wide, seeded weights.

    ``favour`` adds a large bias to that class's logit, so every estimate lands near its class centre (a
    classifier whose answer the test knows).
    """
    import torch
    from virtualfocus.training.registry import get_spec

    spec = get_spec("focus-distance-classifier", filters=(4, 8, 8, 8, 8), hidden=(16, 16), pool_size=2,
                    crop=TINY_DEFOCUS_CROP, dropout=0.0)
    torch.manual_seed(seed)
    net = spec.build().eval()
    if favour is not None:
        with torch.no_grad():
            net.head[-1].bias[favour] += 12.0
    return spec, net


def export_tiny_defocus(folder: Path, *, seed: int = 0, favour: int | None = None) -> Path:
    """Export :func:`tiny_defocus_classifier` with the product's exporter into ``folder`` (a few seconds, CPU)."""
    from virtualfocus.export import ValidationSet
    from virtualfocus.export.classifier import export_defocus_classifier

    spec, net = tiny_defocus_classifier(seed=seed, favour=favour)
    export_defocus_classifier(net, out_dir=folder, name=folder.name, architecture=spec.name,
                              classes_um=spec.offsets_um, crop=TINY_DEFOCUS_CROP, spec=spec, trained=False,
                              validation=ValidationSet(stacks=1, size=96), latency_runs=2, threads=1)
    return folder


def use_shipped_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """A models folder holding one untrained identity model ``name`` as the shipped default and only rung, made
    the runtime's ``VIRTUALFOCUS_MODELS``; returns the folder."""
    import json

    root = tmp_path / "models"
    make_model_folder(root / name, name=name, trained=False)
    (root / "shipped.json").write_text(json.dumps({"format": "virtualfocus-shipped/1", "default": name,
                                                   "ladder": [name]}))
    monkeypatch.setenv("VIRTUALFOCUS_MODELS", str(root))
    return root
