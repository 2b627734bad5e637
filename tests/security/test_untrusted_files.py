"""Nothing a model file or checkpoint smuggles in is ever executed or read from outside its folder."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge import FocusRuntime, ModelLoadError
from virtualfocus.edge.manifest import InputContract, Manifest

MARKER = "virtualfocus-pwned"


class _Payload:
    """Unpickling this runs os.system: a checkpoint carrying it must be refused, not executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_checkpoint_with_code_is_refused_and_not_run(tmp_path):
    torch = pytest.importorskip("torch")
    from virtualfocus.training.checkpoint import load_checkpoint

    marker = tmp_path / MARKER
    bad = tmp_path / "last.pt"
    torch.save({"models": {"model": _Payload(str(marker))}, "step": 1}, bad, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(ModelLoadError, match=r"last\.pt"):
        load_checkpoint(bad)
    assert not marker.exists()


def test_onnx_external_data_is_never_loaded(tmp_path):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    secret = tmp_path / "outside.bin"
    secret.write_bytes(np.ones(3, np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    w = numpy_helper.from_array(np.ones(3, np.float32).reshape(1, 3, 1, 1), "w")
    w.data_location = TensorProto.EXTERNAL
    del w.external_data[:]
    for k, v in (("location", "../outside.bin"), ("offset", "0"), ("length", "12")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    w.ClearField("raw_data")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "h", "w"])
    g = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "ext", [x], [y], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    (folder / "model.onnx").write_bytes(m.SerializeToString())
    man = Manifest(name="ext", architecture="test", input=InputContract(pad_multiple=1),
                   files=[Manifest.describe_file(folder, "model.onnx", backend="onnxruntime", precision="fp32",
                                                 shape="dynamic")])
    man.save(folder)
    for backend in ("onnxruntime", "openvino"):
        with pytest.raises(ModelLoadError, match=r"\.\./outside\.bin") as excinfo:
            FocusRuntime.load(folder, backend=backend, warmup=5)
        # refused because the weights path leaves the folder, not for some other load failure
        assert re.search(r"escapes|outside the base directory", str(excinfo.value)), (backend, str(excinfo.value))


def test_manifest_cannot_point_a_backend_outside_its_folder(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (tmp_path / "evil.onnx").write_bytes(b"x")
    Manifest(name="m", architecture="test", input=InputContract(),
             files=[Manifest.describe_file(tmp_path, "evil.onnx", backend="onnxruntime", precision="fp32",
                                           shape="dynamic")]).save(folder)
    raw = (folder / "manifest.json").read_text().replace('"evil.onnx"', '"../evil.onnx"')
    (folder / "manifest.json").write_text(raw)
    with pytest.raises(ModelLoadError, match="outside the model folder"):
        FocusRuntime.load(folder)


def test_edge_package_has_no_pickle_or_torch():
    edge = Path(__file__).resolve().parents[2] / "edge"
    for py in edge.rglob("*.py"):
        text = py.read_text()
        assert "import pickle" not in text and "pickle.load" not in text, py
        assert "import torch" not in text and "from torch" not in text, py
