"""Runtime U-Nets distilled from a full model of another architecture (the NAFNet full model's chain)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from virtualfocus.compression.cli import compress
from virtualfocus.compression.distill import Distiller
from virtualfocus.compression.recipes import get_recipe
from virtualfocus.edge.errors import InputError
from virtualfocus.training.registry import create_model

from .conftest import make_teacher_run

torch = pytest.importorskip("torch")
TINY = {"data": "sim:2:64", "eval_stacks": 1, "eval_size": 64, "stats_size": 64}


@pytest.fixture
def nafnet_run(tmp_path: Path) -> Path:
    torch.set_num_threads(2)
    return make_teacher_run(tmp_path / "full", model="nafnet-w16", width=8)


def test_unet_student_matches_nafnet_features_at_every_shared_resolution():
    student = create_model("unet-f16-l4")
    teacher = create_model("nafnet-w16", width=8)
    d = Distiller(student, teacher)
    # the student's encoder blocks end at 1/4 … 1/32 (space-to-depth 2, then stride 2), NAFNet's stages at
    # 1/1 … 1/4: one resolution in common, matched through one 1×1 adapter to the teacher's 32 channels
    assert d.pairs == [(0, 2)] and d.adapters[0].out_channels == 32
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    loss, parts = d.loss(x, y)
    assert loss.requires_grad and parts["feature"] > 0 and parts["teacher"] > 0
    d.close()


def test_registry_student_from_nafnet_teacher(nafnet_run: Path, tmp_path: Path):
    recipe = get_recipe("distill-unet-f16-l4", steps=3, crop=32, batch_size=2)
    run = compress(nafnet_run, recipe, tmp_path / "fast", device="cpu", **TINY)
    cfg = json.loads((run / "config.json").read_text())
    comp = json.loads((run / "compression.json").read_text())
    assert cfg["spec"]["name"] == "unet-f16-l4" and cfg["spec"]["space_to_depth"] == 2
    assert comp["teacher"]["spec"] == "nafnet-w16" and comp["device"] == "cpu"
    assert comp["report"][-1]["step"] == 3 and comp["student"]["params"] != comp["teacher"]["params"]
    rows = (run / "log.csv").read_text().splitlines()[1:]
    assert len(rows) == 3 and all(float(r.split(",")[4]) > 0 for r in rows)  # feature matching was on


def test_wall_clock_budget_ends_distillation_early(nafnet_run: Path, tmp_path: Path):
    recipe = get_recipe("distill-unet-f16-l4", steps=1000, crop=32, batch_size=2)
    run = compress(nafnet_run, recipe, tmp_path / "fast", device="cpu", max_minutes=0.0, **TINY)
    comp = json.loads((run / "compression.json").read_text())
    assert comp["report"][-1]["step"] == 0 and json.loads((run / "config.json").read_text())["config"]["steps"] == 0


def test_student_taking_other_inputs_than_the_teacher_is_refused(tmp_path: Path):
    two = make_teacher_run(tmp_path / "two", model="pix2pix-dist-2inputs", filters=8, levels=3)
    with pytest.raises(InputError, match="capture"):
        compress(two, get_recipe("distill-unet-f16-l4", steps=1), tmp_path / "x", device="cpu", **TINY)


def test_missing_teacher_checkpoint_is_named(nafnet_run: Path, tmp_path: Path):
    from virtualfocus.edge.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"last\.pt"):
        compress(nafnet_run, get_recipe("distill-unet-f16-l4", steps=1), tmp_path / "x", device="cpu",
                 teacher_checkpoint="last", **TINY)
