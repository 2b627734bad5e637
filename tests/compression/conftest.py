"""A tiny trained-run stand-in (random weights in the training run layout), made in milliseconds."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


def make_teacher_run(run: Path, model: str = "pix2pix-dist-fast", **overrides) -> Path:
    from virtualfocus.training.checkpoint import save_checkpoint
    from virtualfocus.training.config import RunState, TrainConfig, write_run_config
    from virtualfocus.training.registry import get_spec

    torch.manual_seed(0)
    base = {"filters": 16, "levels": 3, "decoder": "resize-conv"} if model == "pix2pix-dist-fast" else {}
    spec = get_spec(model, **{**base, **overrides})
    net = spec.build()
    write_run_config(run, TrainConfig(model=spec.name, steps=1), spec, RunState(step=1))
    save_checkpoint(run / "checkpoints" / "best.pt", {"models": {"model": net.state_dict()}, "step": 1})
    return run


@pytest.fixture
def teacher_run(tmp_path: Path) -> Path:
    torch.set_num_threads(2)
    return make_teacher_run(tmp_path / "teacher")
