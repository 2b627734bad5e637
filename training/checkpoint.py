"""Run directories and checkpoints.

Layout of a training run::

    RUN/
      config.json            TrainConfig + spec fields + state (step, best validation loss, why it stopped)
      checkpoints/last.pt    latest state: networks, optimisers, step (for --resume)
      checkpoints/best.pt    state at the best validation loss (what export/compress use)
      log.csv                step, losses, validation metrics

Checkpoints hold only tensors and plain containers and are always read with ``torch.load(...,
weights_only=True)``: loading a checkpoint never executes code from the file. They are written atomically
(temporary file, then ``os.replace``), so a crash mid-save leaves the previous checkpoint intact.

Example
-------
>>> run = load_run("runs/fast")            # doctest: +SKIP
>>> run.generator(torch.zeros(1, 3, 256, 256)).shape
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from virtualfocus.edge.errors import InputError, ModelLoadError

from .config import RunState, TrainConfig, read_run_config
from .registry import ModelSpec

__all__ = ["CHECKPOINT_NAMES", "LoadedRun", "checkpoint_path", "load_checkpoint", "load_run", "save_checkpoint"]

CHECKPOINT_NAMES = ("best", "last")


def checkpoint_path(run_dir: str | os.PathLike[str], which: str) -> Path:
    """``RUN/checkpoints/<which>.pt`` for ``which`` in ``"best"``, ``"last"``."""
    if which not in CHECKPOINT_NAMES:
        raise InputError(f"which={which!r} is not valid; expected one of {', '.join(CHECKPOINT_NAMES)}")
    return Path(run_dir) / "checkpoints" / f"{which}.pt"


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Save ``payload`` (tensors, numbers, strings, lists, dicts) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are shared artefacts
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Raises
    ------
    ModelLoadError
        Missing, truncated or corrupt file, or one that holds anything but tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such checkpoint")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError/UnpicklingError/EOFError/zipfile errors for bad files
        raise ModelLoadError(f"{path}: corrupt or not a virtualfocus checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(data, dict) or "models" not in data or "step" not in data:
        raise ModelLoadError(f"{path}: not a virtualfocus checkpoint (expected keys 'models' and 'step')")
    return data


@dataclass
class LoadedRun:
    """A trained network ready for export or distillation.

    Attributes
    ----------
    spec : ModelSpec
        The registry spec the run trained (``spec.build()`` rebuilds the architecture).
    generator : nn.Module
        The main network (generator, or classifier) in eval mode on CPU with the checkpoint's weights.
    config : TrainConfig
    step : int
        Training steps done when the checkpoint was saved.
    state : RunState
    path : Path
        The checkpoint file loaded.
    """

    spec: ModelSpec
    generator: nn.Module
    config: TrainConfig
    step: int
    state: RunState
    path: Path


def load_run(run_dir: str | os.PathLike[str], *, which: str = "best") -> LoadedRun:
    """Load the ``best`` (default) or ``last`` checkpoint of a training run.

    Raises
    ------
    ModelLoadError
        Missing or invalid ``config.json``, missing or corrupt checkpoint, or weights that do not fit the spec;
        the message names the file.
    """
    config, spec, state = read_run_config(run_dir)
    path = checkpoint_path(run_dir, which)
    if which == "best" and not path.is_file() and checkpoint_path(run_dir, "last").is_file():
        raise ModelLoadError(f"{path}: no such checkpoint (the run never validated: val_fraction=0 or stopped "
                             "before the first validation); load which='last' instead")
    data = load_checkpoint(path)
    net = spec.build()
    try:
        net.load_state_dict(data["models"]["model"])
    except (KeyError, RuntimeError) as e:
        raise ModelLoadError(f"{path}: weights do not match the {spec.name} spec in config.json ({e})") from e
    net.eval()
    return LoadedRun(spec=spec, generator=net, config=config, step=int(data["step"]), state=state, path=path)
