"""Export of a focus-distance classifier as a defocus estimator: folder, manifest, parity, the CLI on a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.manifest import Manifest
from virtualfocus.export.classifier import export_defocus_classifier
from virtualfocus.export.cli import main
from virtualfocus.export.latency import onnxruntime_runner, openvino_runner
from virtualfocus.export.parity import FP32_RTOL, relative_error, torch_runner

from tests.edge.helpers import TINY_DEFOCUS_CROP, export_tiny_defocus, tiny_defocus_classifier

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def defocus_exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(2)
    return export_tiny_defocus(tmp_path_factory.mktemp("models") / "focus-distance")


def test_folder_layout_and_manifest(defocus_exported: Path):
    m = Manifest.load(defocus_exported)  # verifies every hash
    assert {f.path for f in m.files} == {"model.onnx", "model.xml", "model.bin"}
    assert {p.name for p in defocus_exported.iterdir()} == {"model.onnx", "model.xml", "model.bin", "manifest.json"}
    assert m.task == "defocus" and m.classes_um == tuple(round(-1.4 + 0.2 * i, 1) for i in range(14))
    assert m.architecture == "focus-distance-classifier" and m.trained is False
    assert m.input.static_size == (TINY_DEFOCUS_CROP, TINY_DEFOCUS_CROP) and m.input.value_range == (-1.0, 1.0)
    assert all(f.shape == "static" and f.precision == "fp32" for f in m.files)
    assert all(f.bytes < 1_000_000 for f in m.files)  # small
    for key in ("onnxruntime/fp32", "openvino/fp32", "openvino/fp32-f32", "openvino/estimate-5crops"):
        assert m.latency_ms[key]["p50"] > 0
    for key in ("onnxruntime/fp32", "openvino/fp32"):
        q = m.quality.measured[key]
        assert 0 <= q["accuracy"] <= 1 and q["mae_um"] >= 0 and q["n"] == 14  # one 96×96 stack, 14 levels
    assert m.quality.validation["source"] == "virtualfocus.simulation.simulate"
    assert m.params > 0 and m.gflops_360 > 0 and m.compression.crops_per_estimate_360 == 5
    assert not [p for p in defocus_exported.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_onnx_is_static_opset_17(defocus_exported: Path):
    import onnx

    model = onnx.load(str(defocus_exported / "model.onnx"))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, TINY_DEFOCUS_CROP, TINY_DEFOCUS_CROP]
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [1, 14]


def test_parity_recorded_and_reproduced(defocus_exported: Path):
    p = Manifest.load(defocus_exported).parity
    assert p.passed is True
    for key in ("onnxruntime/fp32", "openvino/fp32-f32"):
        assert p.float_checks[key].rel_error <= FP32_RTOL
    assert p.float_checks["openvino/fp32"].tolerance is None  # bf16 default: reported, not judged
    _, net = tiny_defocus_classifier(seed=0)
    x = np.random.default_rng(7).uniform(-1, 1, (1, 3, TINY_DEFOCUS_CROP, TINY_DEFOCUS_CROP)).astype(np.float32)
    ref = torch_runner(net)(x)
    for run in (onnxruntime_runner(defocus_exported / "model.onnx"),
                openvino_runner(defocus_exported / "model.xml", precision="f32")):
        assert relative_error(ref, run(x)) <= FP32_RTOL


def test_bad_classes_or_crop_leave_nothing(tmp_path: Path):
    spec, net = tiny_defocus_classifier()
    for kwargs, match in (({"classes_um": [0.0, 0.2]}, r"\(1, 2\) logits"), ({"classes_um": [0.2, 0.0]}, "increasing"),
                          ({"crop": 4}, "crop=4")):
        args = {"classes_um": spec.offsets_um, "crop": TINY_DEFOCUS_CROP, **kwargs}
        with pytest.raises(InputError, match=match):
            export_defocus_classifier(net, out_dir=tmp_path / "x", name="x", architecture=spec.name, trained=False,
                                      **args)
    assert list(tmp_path.iterdir()) == []


def _classifier_run(run: Path, crop: int) -> object:
    """A run directory as the trainer writes it: config.json + best.pt after a few optimiser steps on simulated data."""
    from virtualfocus.training.checkpoint import save_checkpoint
    from virtualfocus.training.config import RunState, TrainConfig, write_run_config
    from virtualfocus.training.datasets import DataSpec, StackPairDataset, load_sources
    from virtualfocus.training.systems import make_system

    spec, _ = tiny_defocus_classifier()  # crop 64 in the spec; the run trains at `crop` (TrainConfig wins)
    torch.manual_seed(0)
    system = make_system(spec, device=torch.device("cpu"), amp=False, channels_last=False, seed=0)
    data = StackPairDataset(load_sources([f"sim:2:{crop}:11"]), DataSpec(crop=crop), length=8, seed=0)
    batch = torch.utils.data.default_collate([data[i] for i in range(4)])
    losses = [system.train_step(batch)["loss"] for _ in range(3)]
    assert all(np.isfinite(losses))
    write_run_config(run, TrainConfig(model=spec.name, data=(f"sim:2:{crop}:11",), steps=3, crop=crop), spec,
                     RunState(step=3))
    save_checkpoint(run / "checkpoints" / "best.pt", {**system.state_dict(), "step": 3})
    return system.networks["model"]


def test_cli_exports_a_classifier_run_at_its_training_crop(tmp_path: Path, capsys):
    net = _classifier_run(tmp_path / "run", crop=128)
    out = tmp_path / "models" / "vf-focus-distance"
    code = main([str(tmp_path / "run"), "--out", str(out), "--val-stacks", "1", "--size", "128", "--latency-runs", "2",
                 "--threads", "1", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "defocus estimator" in printed and "crop 128" in printed
    m = Manifest.load(out)
    assert m.task == "defocus" and m.trained is True and m.input.static_size == (128, 128)
    assert m.training["step"] == 3 and m.training["config"]["crop"] == 128
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    assert relative_error(torch_runner(net)(x), onnxruntime_runner(out / "model.onnx")(x)) <= FP32_RTOL


def test_cli_crop_the_network_cannot_export_is_a_one_line_error(tmp_path: Path, capsys):
    _classifier_run(tmp_path / "run", crop=96)  # 96 / 2**5 = 3: adaptive pooling to 2×2 has no ONNX form
    code = main([str(tmp_path / "run"), "--out", str(tmp_path / "m"), "--val-stacks", "1", "--size", "128",
                 "--latency-runs", "2", "--threads", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "96×96 crop" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(("arch", "overrides", "match"), [
    ("dbmid-blur-classifier", ["filters=[4,4]", "convs_per_block=[1,1]", "hidden=[8]", "pool_size=2"], "blur types"),
    ("mmdf-focus-classifier", ["filters=[4,4]", "hidden=[8]", "pool_size=2"], "signed"),
])
def test_cli_refuses_classifiers_that_cannot_estimate_signed_defocus(tmp_path: Path, capsys, arch, overrides, match):
    sets = [a for o in overrides for a in ("--set", o)]
    code = main(["--arch", arch, *sets, "--untrained", "--out", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_cli_untrained_registry_classifier_is_labelled(tmp_path: Path, capsys):
    sets = ["--set", "filters=[4,8,8,8,8]", "--set", "hidden=[16,16]", "--set", "pool_size=2", "--set", "crop=64"]
    code = main(["--arch", "focus-distance-classifier", *sets, "--untrained", "--out", str(tmp_path / "m"),
                 "--val-stacks", "1", "--size", "96", "--latency-runs", "2", "--threads", "1", "--quiet"])
    capsys.readouterr()
    m = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert code == 0 and m["trained"] is False and "UNTRAINED" in m["description"] and m["task"] == "defocus"
