from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from virtualfocus.compression.report import main
from virtualfocus.export import Calibration, ValidationSet, export_model

ROOT = Path(__file__).resolve().parents[2]


def test_report_from_an_untrained_export(tmp_path: Path):
    from virtualfocus.training.registry import create_model

    torch.manual_seed(0)
    net = create_model("pix2pix-dist-fast", filters=8, levels=3, decoder="resize-conv")
    export_model(net, out_dir=tmp_path / "models" / "vf-tiny", name="vf-tiny", architecture="pix2pix-dist-fast",
                 trained=False, size=48, calibration=Calibration(stacks=1, size=48),
                 validation=ValidationSet(stacks=1, size=48), accuracy_control=False, latency_runs=2)
    out = tmp_path / "report.md"
    assert main([str(tmp_path / "models"), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| vf-tiny | pix2pix-dist-fast | **no** |" in text and "Untrained exports" in text
    assert "openvino/int8" in text and "PSNR dB" in text and "pass" in text
    # the benchmarks/ entry point is a thin wrapper around the same main: load the file and run it
    wrapper = ROOT / "benchmarks" / "compression_report.py"
    spec = importlib.util.spec_from_file_location("compression_report", wrapper)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # raises FileNotFoundError if the wrapper is gone
    assert module.main is main
    out2 = tmp_path / "report2.md"
    assert module.main([str(tmp_path / "models"), "--out", str(out2)]) == 0
    assert "| vf-tiny | pix2pix-dist-fast | **no** |" in out2.read_text()


def test_report_without_models_fails_clearly(tmp_path: Path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert "no model folders" in capsys.readouterr().err and not (tmp_path / "r.md").exists()
