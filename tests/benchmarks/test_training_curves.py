"""benchmarks/training_curves.py on the log of a real (tiny) training run that was resumed once."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import pytest
from virtualfocus.simulation.simulate import SimConfig, simulate_stack
from virtualfocus.training.cli import main as train
from virtualfocus.zstacks.stack import write_stack

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--crop", "32", "--workers", "0", "--no-progress", "--set", "log_every=1", "--set", "threads=2",
        "--set", "adversarial=none", "--set", "lambda_distance=0"]


@pytest.fixture(scope="module")
def curves():
    spec = importlib.util.spec_from_file_location("training_curves", ROOT / "benchmarks" / "training_curves.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def test_curves_of_a_resumed_run(curves, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "stacks"
    for seed in range(3):
        write_stack(data / f"sim-{seed:03d}", simulate_stack(seed, config=SimConfig(size=96)))
    run = tmp_path / "run"
    assert train(["pix2pix-dist-fast", "--data", str(data), "--out", str(run), "--steps", "4", "--val-every", "2",
                  *FAST]) == 0
    assert train(["pix2pix-dist-fast", "--out", str(run), "--resume", "--steps", "6", "--val-every", "2",
                  "--no-progress"]) == 0
    c = curves.read_log("tiny", run)
    assert c.steps == [2, 4, 6] and c.last_step == 6
    # the resumed session restarts time_s at 0; the curve's wall clock keeps increasing
    assert all(b >= a for a, b in itertools.pairwise(c.minutes)) and c.total_minutes >= c.minutes[-1] > 0
    assert all(p > 0 for p in c.val_psnr + c.input_psnr)

    out = tmp_path / "report"
    assert curves.main([f"tiny={run}", "--out", str(out)]) == 0
    md = (out / "curves.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| tiny |"))
    assert row.startswith("| tiny | pix2pix-dist-fast (16 filters, 4 levels) |") and "| 6 |" in row
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()


def test_bad_arguments_name_what_is_expected(curves, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert curves.main([f"x={tmp_path / 'missing'}", "--out", str(tmp_path)]) == 2
    assert "no log.csv" in capsys.readouterr().err
    bad = tmp_path / "bad.log.csv"
    bad.write_text("a,b\n1,2\n")
    assert curves.main([f"x={bad}", "--out", str(tmp_path)]) == 2
    assert "not a virtualfocus training log" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        curves.main(["no-equals-sign"])
    assert "expected NAME=PATH" in capsys.readouterr().err
