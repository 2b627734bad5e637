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

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from virtualfocus.edge.errors import InputError, ModelLoadError

from .config import RunState, TrainConfig, read_run_config
from .registry import ModelSpec

__all__ = ["CHECKPOINT_NAMES", "LoadedRun", "checkpoint_path", "compact_checkpoint", "fit_to_state_dict",
           "load_checkpoint", "load_run", "save_checkpoint"]

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


def compact_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Write ``src``'s weights as fp16 without optimiser or loss-scaler state to ``dst`` (atomically).

    A quarter of the size of a checkpoint with Adam's state, small enough to commit; training resumes from it with
    Adam's moments restarted, and export and distillation read it like any checkpoint (weights are cast back).
    """
    d = load_checkpoint(src)
    d.pop("optimizers", None)
    d.pop("scaler", None)
    d["models"] = {k: {n: t.half() if t.is_floating_point() else t for n, t in v.items()}
                   for k, v in d["models"].items()}
    return save_checkpoint(dst, d)


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


def fit_to_state_dict(module: Any, state: dict[str, Any]) -> Any:
    """Resize the parameters/buffers of ``module`` to the shapes in ``state`` (structured pruning), then load it.

    Only shapes change (convolution and normalisation widths); the module's wiring stays what its constructor
    built, so a state that does not describe the same graph still fails in ``load_state_dict``.
    """
    for name, mod in module.named_modules():
        prefix = f"{name}." if name else ""
        for pname, p in list(mod.named_parameters(recurse=False)):
            t = state.get(prefix + pname)
            if t is not None and tuple(t.shape) != tuple(p.shape):
                setattr(mod, pname, nn.Parameter(torch.empty_like(t), requires_grad=p.requires_grad))
        for bname, b in list(mod.named_buffers(recurse=False)):
            t = state.get(prefix + bname)
            if b is not None and t is not None and tuple(t.shape) != tuple(b.shape):
                mod._buffers[bname] = torch.empty_like(t)
        w = getattr(mod, "weight", None)
        if isinstance(mod, nn.ConvTranspose2d) and w is not None:
            mod.in_channels, mod.out_channels = int(w.shape[0]), int(w.shape[1]) * mod.groups
        elif isinstance(mod, nn.Conv2d) and w is not None:
            mod.out_channels, mod.in_channels = int(w.shape[0]), int(w.shape[1]) * mod.groups
        elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
            ref = mod.running_mean if mod.running_mean is not None else w
            if ref is not None:
                mod.num_features = int(ref.shape[0])
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise ModelLoadError(f"pruned weights do not fit the architecture ({e})") from e
    return module


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
    pruned : bool
        The weights are a structurally pruned version of the spec (a ``virtualfocus compress`` prune run).
    compression : dict
        The run's ``compression.json`` (recipe, teacher, measured sizes); empty for a training run.
    """

    spec: ModelSpec
    generator: nn.Module
    config: TrainConfig
    step: int
    state: RunState
    path: Path
    pruned: bool = False
    compression: dict[str, Any] = field(default_factory=dict)


def load_run(run_dir: str | os.PathLike[str], *, which: str = "best") -> LoadedRun:
    """Load the ``best`` (default) or ``last`` checkpoint of a training or ``virtualfocus compress`` run.

    The one run loader (training's distance networks, compression's teachers and ``virtualfocus export`` all use
    it). There is no silent fallback from ``best`` to ``last``: a run that never validated has only ``last.pt``,
    and the error says to ask for it. Pruned weights (``"pruned": true`` in the checkpoint) are fitted to the
    spec's architecture with :func:`fit_to_state_dict`.

    Raises
    ------
    ModelLoadError
        Missing or invalid ``config.json`` or ``compression.json``, missing or corrupt checkpoint, or weights
        that do not fit the spec; the message names the file.
    """
    config, spec, state = read_run_config(run_dir)
    path = checkpoint_path(run_dir, which)
    if which == "best" and not path.is_file() and checkpoint_path(run_dir, "last").is_file():
        raise ModelLoadError(f"{path}: no such checkpoint (the run never validated: val_fraction=0 or stopped "
                             "before the first validation); load which='last' instead (virtualfocus export RUN "
                             "--checkpoint last)")
    data = load_checkpoint(path)
    try:
        weights = data["models"]["model"]
    except (KeyError, TypeError) as e:
        raise ModelLoadError(f"{path}: no generator weights (models.model)") from e
    net = spec.build()
    pruned = bool(data.get("pruned", False))
    if pruned:
        fit_to_state_dict(net, weights)
    else:
        try:
            net.load_state_dict(weights)
        except RuntimeError as e:
            raise ModelLoadError(f"{path}: weights do not match the {spec.name} spec in config.json ({e})") from e
    net.eval()
    return LoadedRun(spec=spec, generator=net, config=config, step=int(data["step"]), state=state, path=path,
                     pruned=pruned, compression=_compression_record(Path(run_dir)))


def _compression_record(run: Path) -> dict[str, Any]:
    cj = run / "compression.json"
    if not cj.is_file():
        return {}
    try:
        record = json.loads(cj.read_text())
    except ValueError as e:
        raise ModelLoadError(f"{cj}: not valid JSON ({e})") from e
    if not isinstance(record, dict):
        raise ModelLoadError(f"{cj}: expected a JSON object, got {type(record).__name__}")
    return record


if __name__ == "__main__":  # python -m virtualfocus.training.checkpoint compact SRC DST (used by scripts/)
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "compact":
        sys.exit("usage: python -m virtualfocus.training.checkpoint compact SRC.pt DST.pt")
    compact_checkpoint(sys.argv[2], sys.argv[3])
