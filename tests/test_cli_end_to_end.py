"""The README's commands and the shipped models, end to end through ``virtualfocus.cli.main`` (small sizes)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from virtualfocus.cli import main
from virtualfocus.edge import FocusRuntime
from virtualfocus.edge.manifest import Manifest
from virtualfocus.edge.metrics import mse
from virtualfocus.edge.runtime import FrameStatus
from virtualfocus.simulation.simulate import SimConfig, simulate_stack
from virtualfocus.zstacks.stack import read_stack

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SHIPPED = json.loads((MODELS / "shipped.json").read_text())


@pytest.fixture(scope="module")
def small_stack() -> object:
    return simulate_stack(3, config=SimConfig(size=96))


def test_demo_quick_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # README quick start, line 1: virtualfocus demo --out demo-output
    out = tmp_path / "demo-output"
    assert main(["demo", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == SHIPPED["default"] and report["backend"] in ("openvino", "onnxruntime")
    planes = report["planes"]
    statuses = {FrameStatus.RESTORED.value, FrameStatus.IN_FOCUS.value}
    assert len(planes) >= 10 and {p["status"] for p in planes} <= statuses
    assert any(p["status"] == FrameStatus.RESTORED.value for p in planes)
    # the shipped default is trained: it improves the clearly defocused planes on average
    far_planes = [p for p in planes if abs(p["offset_um"]) >= 0.6]
    assert np.mean([p["restored"]["PSNR"] for p in far_planes]) > np.mean([p["input"]["PSNR"] for p in far_planes])
    for p in planes:
        name = f"z{p['offset_um']:+.2f}um.png"
        inp, res = cv2.imread(str(out / "input" / name)), cv2.imread(str(out / "restored" / name))
        assert inp is not None and res is not None and inp.shape == res.shape
    # a restored plane is a different image from its input; the report's figures are the images' figures
    far = max((p for p in planes if p["status"] == FrameStatus.RESTORED.value), key=lambda p: abs(p["offset_um"]))
    name = f"z{far['offset_um']:+.2f}um.png"
    gt = cv2.cvtColor(cv2.imread(str(out / "ground_truth.png")), cv2.COLOR_BGR2RGB)
    restored = cv2.cvtColor(cv2.imread(str(out / "restored" / name)), cv2.COLOR_BGR2RGB)
    assert not np.array_equal(restored, cv2.cvtColor(cv2.imread(str(out / "input" / name)), cv2.COLOR_BGR2RGB))
    assert mse(gt, restored) == pytest.approx(far["restored"]["MSE"], rel=1e-3, abs=1e-3)
    assert (out / "report.md").read_text().startswith("# virtualfocus demo")
    assert "model:" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(p.parent.name for p in MODELS.glob("*/manifest.json")))
def test_shipped_model_loads_and_restores_a_frame(name: str, small_stack) -> None:
    folder = MODELS / name
    manifest = Manifest.load(folder)  # verifies the sha256 of every listed file
    assert manifest.name == name
    plane = small_stack.planes[int(np.argmin(np.abs(small_stack.offsets_um - 0.8)))]
    if manifest.input.inputs == 2:
        from virtualfocus.edge.integrations.twoshot import TwoShotFuser, load_two_shot_engine

        engine = load_two_shot_engine(folder)
        partner = small_stack.planes[int(np.argmin(np.abs(small_stack.offsets_um - 0.2)))]
        with FocusRuntime.load(budget_ms=1e9) as rt:
            result = TwoShotFuser(rt, engine).fuse(plane, partner)
        image = result.frame.image
    else:
        with FocusRuntime.load(folder, budget_ms=1e9, pass_in_focus=False) as rt:
            frame = rt.restore(plane)
        assert frame.status == FrameStatus.RESTORED, frame
        image = frame.image
    assert image.shape == plane.shape and image.dtype == plane.dtype
    assert not np.array_equal(image, plane)


def test_shipped_json_names_shipped_folders() -> None:
    names = [SHIPPED["default"], *SHIPPED["ladder"]] + ([SHIPPED["two_shot"]] if SHIPPED.get("two_shot") else [])
    for n in names:
        assert (MODELS / n / "manifest.json").is_file(), n
    with FocusRuntime.load(budget_ms=1e9) as rt:  # the shipped default, by name from shipped.json
        assert rt.variant == SHIPPED["default"] and rt.ladder[: len(SHIPPED["ladder"])] == SHIPPED["ladder"]


def test_simulate_then_evaluate(tmp_path: Path) -> None:
    data = tmp_path / "stacks"
    assert main(["simulate", "--out", str(data), "--stacks", "2", "--size", "64", "--workers", "1"]) == 0
    files = sorted(data.glob("*.tif"))
    assert len(files) == 2 and all(f.with_suffix(".json").is_file() for f in files)
    stack = read_stack(files[0])
    assert stack.planes.shape[1:] == (64, 64, 3) and len(stack) >= 10
    report = tmp_path / "report"
    assert main(["evaluate", "--model", "identity", "--data", str(data), "--out", str(report), "--no-ssim"]) == 0
    result = json.loads((report / "report.json").read_text())
    text = (report / "report.md").read_text()
    assert "identity" in json.dumps(result) and "identity" in text
    model_report = tmp_path / "report-fast"
    assert main(["evaluate", "--model", "vf-fast", "--data", str(data), "--out", str(model_report), "--limit", "1",
                 "--no-ssim"]) == 0
    assert "vf-fast" in (model_report / "report.md").read_text()


def test_semisynth_from_sharp_images(tmp_path: Path) -> None:
    images = tmp_path / "sharp"
    images.mkdir()
    sharp = simulate_stack(9, config=SimConfig(size=256, noise=False, flicker=0.0)).sharp
    cv2.imwrite(str(images / "field.png"), cv2.cvtColor(sharp, cv2.COLOR_RGB2BGR))
    out = tmp_path / "semi"
    assert main(["semisynth", "--images", str(images), "--out", str(out), "--size", "96",
                 "--source-pixel-um", "0.1"]) == 0
    files = sorted(out.glob("*.tif"))
    assert len(files) == 1
    stack = read_stack(files[0])
    assert stack.planes.shape[1:] == (96, 96, 3) and stack.meta["source"] == "semisynthetic"


def test_unknown_command_and_errors_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulat"]) == 2
    assert "unknown command 'simulat'" in capsys.readouterr().err
    assert main(["evaluate", "--model", "identity", "--data", str(tmp_path / "none"), "--out",
                 str(tmp_path / "r")]) == 1
    assert "no such folder" in capsys.readouterr().err
