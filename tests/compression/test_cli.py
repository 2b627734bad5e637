from __future__ import annotations

import json
from pathlib import Path

import pytest
from virtualfocus.compression.cli import compress, main
from virtualfocus.compression.recipes import DistillRecipe
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.manifest import Manifest
from virtualfocus.export.cli import main as export_main

TINY = ["--steps", "3", "--set", "crop=32", "--set", "batch_size=2", "--data", "sim:2:64", "--eval-stacks", "1",
        "--eval-size", "64", "--stats-size", "64", "--quiet"]
EXPORT_TINY = ["--size", "64", "--calib-stacks", "1", "--val-stacks", "1", "--latency-runs", "2",
               "--no-accuracy-control", "--quiet"]


@pytest.mark.parametrize("recipe", ["pix2pix-dist-fast", "pix2pix-dist-pruned-50"])
def test_compress_then_export_end_to_end(teacher_run: Path, tmp_path: Path, recipe: str):
    run = tmp_path / "student"
    assert main(["--teacher", str(teacher_run), "--recipe", recipe, "--out", str(run), *TINY]) == 0
    assert (run / "config.json").is_file() and (run / "checkpoints" / "best.pt").is_file()
    comp = json.loads((run / "compression.json").read_text())
    assert comp["recipe"] == recipe and next(r["step"] for r in comp["report"]) == 0
    spec = json.loads((run / "config.json").read_text())["spec"]
    if recipe.endswith("fast"):
        assert (spec["filters"], spec["levels"], spec["decoder"]) == (16, 4, "resize-conv")
    else:
        assert comp["student"]["params"] < 0.6 * comp["teacher"]["params"] and comp["student"]["pruned"]
    assert len((run / "log.csv").read_text().splitlines()) == 1 + 3
    out = tmp_path / "models" / "student"
    assert export_main([str(run), "--out", str(out), *EXPORT_TINY]) == 0
    m = Manifest.load(out)
    assert m.trained is True and m.training["compression"]["recipe"] == recipe and m.parity.passed


def test_untrained_export_from_registry(tmp_path: Path):
    out = tmp_path / "models" / "vf-untrained"
    argv = ["--arch", "pix2pix-dist-fast", "--set", "filters=8", "--set", "levels=3", "--out", str(out),
            "--untrained", "--precisions", "fp32", *EXPORT_TINY]
    assert export_main(argv) == 0
    m = Manifest.load(out)
    assert m.trained is False and m.spec["filters"] == 8 and m.training["untrained"] is True


def test_bad_inputs_give_clear_errors_and_no_files(teacher_run: Path, tmp_path: Path, capsys):
    out = tmp_path / "student"
    assert main(["--teacher", str(tmp_path / "missing"), "--recipe", "pix2pix-dist-fast", "--out", str(out), *TINY]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["--teacher", str(teacher_run), "--recipe", "pix2pix-dist-nope", "--out", str(out), *TINY]) == 2
    assert "known recipes" in capsys.readouterr().err
    (teacher_run / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    assert main(["--teacher", str(teacher_run), "--recipe", "pix2pix-dist-fast", "--out", str(out), *TINY]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert export_main([str(teacher_run), "--out", str(tmp_path / "m"), *EXPORT_TINY]) == 2
    assert "corrupt" in capsys.readouterr().err and not (tmp_path / "m").exists()


def test_recipe_not_fitting_teacher(teacher_run: Path, tmp_path: Path):
    bad = DistillRecipe(name="bad", student=(("decoder", "bogus"),), steps=1)
    with pytest.raises(InputError, match="does not fit"):
        compress(teacher_run, bad, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_export_takes_best_unless_last_is_asked_for(teacher_run: Path, tmp_path: Path, capsys):
    # the one run loader: no silent fallback from best to last
    best = teacher_run / "checkpoints" / "best.pt"
    best.rename(teacher_run / "checkpoints" / "last.pt")
    out = tmp_path / "models" / "from-last"
    assert export_main([str(teacher_run), "--out", str(out), "--precisions", "fp32", *EXPORT_TINY]) == 2
    assert "which='last'" in capsys.readouterr().err and not out.exists()
    assert export_main([str(teacher_run), "--checkpoint", "last", "--out", str(out), "--precisions", "fp32",
                        *EXPORT_TINY]) == 0
    assert Manifest.load(out).training["checkpoint"].endswith("last.pt")
