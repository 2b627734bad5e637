"""Every registered name trains for a step from the CLI and resumes from its checkpoint (issue 4 "done when")."""

from __future__ import annotations

from pathlib import Path

import pytest
from virtualfocus.training.checkpoint import load_checkpoint, load_run
from virtualfocus.training.cli import main
from virtualfocus.training.registry import list_models

from .small_specs import SMALL


def _sets(name: str) -> list[str]:
    out = []
    for k, v in SMALL[name].items():
        text = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
        out += ["--set", f"{k}={text}"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_cli_trains_and_resumes_every_variant(name: str, sim_stacks: Path, tmp_path: Path) -> None:
    run = tmp_path / name
    common = ["--workers", "0", "--no-progress", "--batch-size", "2", "--crop", "32", "--set", "log_every=1"]
    assert main([name, "--data", str(sim_stacks), "--out", str(run), "--steps", "1", "--val-every", "1",
                 *common, *_sets(name)]) == 0
    assert main([name, "--out", str(run), "--resume", "--steps", "2", "--no-progress"]) == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
    loaded = load_run(run)
    assert loaded.spec.name == name and not loaded.generator.training
