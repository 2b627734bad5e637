from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge.errors import InputError, ModelTampered
from virtualfocus.edge.manifest import Manifest
from virtualfocus.export import Calibration, ValidationSet, export_model
from virtualfocus.export.data import simulated_stacks, to_model_input
from virtualfocus.export.latency import onnxruntime_runner, openvino_runner
from virtualfocus.export.parity import FP32_RTOL, relative_error, torch_runner

from .conftest import TINY_SIZE, tiny_unet


def test_package_imports_without_torch():
    code = ("import sys, virtualfocus.export, virtualfocus.export.cli, virtualfocus.compression, "
            "virtualfocus.compression.cli, virtualfocus.compression.report; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_folder_layout_and_manifest(exported: Path):
    m = Manifest.load(exported)  # verifies every hash
    names = {f.path for f in m.files}
    assert {"model.onnx", "model-static.onnx", "model.xml", "model.bin", "model-fp16.xml", "model-fp16.bin"} <= names
    assert set(p.name for p in exported.iterdir()) == names | {"manifest.json"}
    assert m.trained is False and m.architecture == "unet-tiny-test"
    assert m.input.pad_multiple == 8 and m.input.channels == 3 and m.input.value_range == (-1.0, 1.0)
    assert m.compression.static_file["size"] == [TINY_SIZE, TINY_SIZE]
    for key in ("onnxruntime/fp32", "openvino/fp32", "openvino/fp32-f32", "openvino/int8", "onnxruntime/int8"):
        assert m.latency_ms[key]["p50"] > 0
    for key in ("input", "onnxruntime/fp32", "openvino/fp32"):
        assert set(m.quality.measured[key]) >= {"psnr", "ssim", "fr", "fpw", "success_mse", "success_fpw"}
    assert m.compression.params > 0 and m.compression.gflops > 0
    # INT8 files are either shipped or their absence is explained.
    for f in ("model-int8.xml", "model-int8.onnx"):
        assert (f in names) != (f in m.compression.dropped)
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]


def test_manifest_parity_recorded(exported: Path):
    p = Manifest.load(exported).parity
    assert p.passed is True and p.failed == ()
    for key in ("onnxruntime/fp32", "onnxruntime/fp32-static", "openvino/fp32-f32"):
        assert p.float_checks[key].rel_error <= FP32_RTOL
    assert p.float_checks["openvino/fp32"].tolerance is None  # bf16 default: reported, not judged
    assert set(p.int8) == {"openvino", "onnxruntime"}
    assert np.isfinite(p.int8["openvino"].psnr_drop_db)


def _inputs():
    rng = np.random.default_rng(1)
    st = simulated_stacks(1, seed=5, size=TINY_SIZE)[0]
    sim, _ = to_model_input(st.planes[3], 8)
    return {"random": rng.uniform(-1, 1, (1, 3, TINY_SIZE, TINY_SIZE)).astype(np.float32), "simulated": sim}


def test_parity_torch_onnxruntime_openvino_f32(exported: Path, tiny_model):
    ref = torch_runner(tiny_model)
    runners = {"ort": onnxruntime_runner(exported / "model.onnx"),
               "ort-static": onnxruntime_runner(exported / "model-static.onnx"),
               "ov-f32": openvino_runner(exported / "model.xml", precision="f32")}
    for name, x in _inputs().items():
        y = ref(x)
        for rname, run in runners.items():
            err = relative_error(y, run(x))
            assert err <= FP32_RTOL, (name, rname, err)


def test_dynamic_files_run_at_two_sizes(exported: Path, tiny_model):
    ref = torch_runner(tiny_model)
    rng = np.random.default_rng(2)
    for h, w in ((32, 48), (96, 72)):
        x = rng.uniform(-1, 1, (1, 3, h, w)).astype(np.float32)
        for run in (onnxruntime_runner(exported / "model.onnx"), openvino_runner(exported / "model.xml", precision="f32")):
            y = run(x)
            assert y.shape == (1, 3, h, w)
            assert relative_error(ref(x), y) <= FP32_RTOL


def test_int8_files_run_and_psnr_drop_measured(exported: Path):
    m = Manifest.load(exported)
    x = _inputs()["simulated"]
    for backend in ("openvino", "onnxruntime"):
        info = m.compression.int8[backend]
        assert info["samples"] > 0 and info["attempts"][0]["ignored_scope"] == []  # auto: all-INT8 tried first
        assert len(info["attempts"][-1]["ignored_scope"]) == (0 if info["attempts"][0]["verdict"]["passed"] else 2)
        assert "psnr_drop_db" in info["verdict"] and "fr_change" in info["verdict"]
    listed = {f.path: f for f in m.files}
    for backend, rel, runner in (("openvino", "model-int8.xml", openvino_runner),
                                 ("onnxruntime", "model-int8.onnx", onnxruntime_runner)):
        info = m.compression.int8[backend]
        float_q, int8_q = m.quality.measured[f"{backend}/fp32"], m.quality.measured[f"{backend}/int8"]
        # the verdict is the recorded quality of both files, compared with the recorded limits
        assert info["verdict"]["psnr_drop_db"] == pytest.approx(float_q["psnr"] - int8_q["psnr"], abs=1e-3)
        assert info["verdict"]["fr_change"] == pytest.approx(abs(float_q["fr"] - int8_q["fr"]), abs=1e-4)
        assert info["verdict"]["passed"] == (info["verdict"]["psnr_drop_db"] <= info["verdict"]["max_psnr_drop_db"]
                                             and info["verdict"]["fr_change"] <= info["verdict"]["max_fr_change"])
        faster = m.latency_ms[f"{backend}/int8"]["p50"] < m.latency_ms[info["sibling"]]["p50"]
        assert info["faster_than_sibling"] == faster
        keep = faster and info["verdict"]["passed"]
        # kept ⇔ faster and good enough; a kept file is listed, hashed and runs; a dropped one is gone, explained
        assert (exported / rel).exists() == keep == (rel in listed), (backend, info, m.compression.dropped)
        if keep:
            assert listed[rel].precision == "int8" and listed[rel].sha256
            y8, y32 = runner(exported / rel)(x), onnxruntime_runner(exported / "model.onnx")(x)
            assert y8.shape == x.shape and np.isfinite(y8).all()
            assert 0 < relative_error(y32, y8) < 0.5  # quantised (not the float graph), yet the same model
        else:
            reason = m.compression.dropped[rel]
            assert ("not faster" in reason) == (not faster) and ("over the limits" in reason) == (
                not info["verdict"]["passed"])


def test_tampered_file_is_detected(exported: Path, tmp_path: Path):
    copy = tmp_path / "tiny"
    shutil.copytree(exported, copy)
    Manifest.load(copy)
    data = bytearray((copy / "model.bin").read_bytes())
    data[100] ^= 0xFF
    (copy / "model.bin").write_bytes(bytes(data))
    with pytest.raises(ModelTampered, match="sha256"):
        Manifest.load(copy)
    (copy / "model.bin").write_bytes(bytes(data[:-10]))  # truncated: refused as tampered too, not a backend fallback
    with pytest.raises(ModelTampered, match="truncated or replaced"):
        Manifest.load(copy)


def _no_leftovers(parent: Path) -> bool:
    return not parent.exists() or not any(p.name.startswith(".") for p in parent.iterdir())


@pytest.mark.parametrize("case", ["calib-shape", "calib-nan", "precisions", "no-pad-multiple", "wrong-channels"])
def test_bad_input_leaves_nothing(tmp_path: Path, case: str):
    import torch

    model = tiny_unet()
    kw: dict = {"size": 32, "validation": ValidationSet(stacks=1, size=32), "latency_runs": 1}
    if case == "calib-shape":
        kw["calibration"] = [np.zeros((1, 3, 30, 32), np.float32)]
    elif case == "calib-nan":
        kw["calibration"] = [np.full((1, 3, 32, 32), np.nan, np.float32)]
    elif case == "precisions":
        kw["precisions"] = ("fp32", "int4")
    elif case == "no-pad-multiple":
        model = torch.nn.Conv2d(3, 3, 3, padding=1)
    elif case == "wrong-channels":
        from virtualfocus.edge.manifest import InputContract

        kw["contract"] = InputContract(channels=1, pad_multiple=8)
    out = tmp_path / "models" / "bad"
    with pytest.raises(InputError):
        export_model(model, out_dir=out, name="bad", architecture="x", trained=False, **kw)
    assert not out.exists() and _no_leftovers(out.parent)


def test_existing_folder_needs_overwrite(exported: Path, tiny_model):
    before = (exported / "manifest.json").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        export_model(tiny_model, out_dir=exported, name="tiny", architecture="x", trained=False, size=32,
                     precisions=("fp32",), validation=ValidationSet(stacks=1, size=32), latency_runs=1)
    assert (exported / "manifest.json").read_bytes() == before


def test_fp32_only_and_transpose_decoder(tmp_path: Path):
    model = tiny_unet("transpose")
    m = export_model(model, out_dir=tmp_path / "t", name="t", architecture="x", trained=False, size=40,
                     precisions=("fp32",), calibration=Calibration(stacks=1, size=40),
                     validation=ValidationSet(stacks=1, size=40), latency_runs=2)
    assert {f.path for f in m.files} == {"model.onnx", "model-static.onnx", "model.xml", "model.bin"}
    assert m.compression.static_file["size"] == [40, 40]  # 40 is already a multiple of 8
    assert m.parity.passed


def test_int8_over_quality_limits_is_retried_then_not_shipped(tmp_path: Path):
    m = export_model(tiny_unet(), out_dir=tmp_path / "q", name="q", architecture="x", trained=False, size=32,
                     precisions=("fp32", "int8"), calibration=Calibration(stacks=1, size=32),
                     validation=ValidationSet(stacks=1, size=32), accuracy_control=False, latency_runs=1,
                     max_psnr_drop=-1.0)  # an impossible limit: INT8 must gain PSNR
    for backend, f in (("openvino", "model-int8.xml"), ("onnxruntime", "model-int8.onnx")):
        info = m.compression.int8[backend]
        assert [len(a["ignored_scope"]) for a in info["attempts"]] == [0, 2]
        assert "over the limits" in m.compression.dropped[f] and not (tmp_path / "q" / f).exists()
    assert not (tmp_path / "q" / "model-int8.bin").exists()
