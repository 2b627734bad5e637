"""Loading a training or compression run for export (glue to ``virtualfocus.training``, imported lazily).

Compression runs may hold a *pruned* generator: the layer widths differ from what the registry spec builds, so
the network is rebuilt from the spec and then resized to the checkpoint's tensor shapes
(:func:`fit_to_state_dict`) before the weights are loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtualfocus.edge.errors import InputError, ModelLoadError

__all__ = ["RunModel", "fit_to_state_dict", "load_run_model"]


def fit_to_state_dict(module: Any, state: dict[str, Any]) -> Any:
    """Resize the parameters/buffers of ``module`` to the shapes in ``state`` (structured pruning), then load it.

    Only shapes change (convolution and normalisation widths); the module's wiring stays what its constructor
    built, so a state that does not describe the same graph still fails in ``load_state_dict``.
    """
    import torch
    from torch import nn

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
class RunModel:
    """A run's generator with what the manifest needs to say about it."""

    module: Any
    spec: Any
    step: int
    config: dict[str, Any]
    checkpoint: Path
    pruned: bool
    compression: dict[str, Any]


def load_run_model(run_dir: str | os.PathLike[str], *, which: str = "best") -> RunModel:
    """Load the generator of a training run or of a ``virtualfocus compress`` run (pruned or not).

    Falls back to ``last`` when the run has no ``best`` checkpoint.

    Raises
    ------
    InputError
        ``run_dir`` is not a folder.
    ModelLoadError
        Missing/invalid ``config.json``, missing or corrupt checkpoint, weights that do not fit the spec.
    """
    import dataclasses
    import json

    from virtualfocus.training.checkpoint import checkpoint_path, load_checkpoint
    from virtualfocus.training.config import read_run_config

    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"{run}: run directory not found")
    config, spec, _state = read_run_config(run)
    path = checkpoint_path(run, which)
    if which == "best" and not path.is_file():
        path = checkpoint_path(run, "last")
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
    comp: dict[str, Any] = {}
    cj = run / "compression.json"
    if cj.is_file():
        try:
            comp = json.loads(cj.read_text())
        except ValueError as e:
            raise ModelLoadError(f"{cj}: not valid JSON ({e})") from e
    return RunModel(module=net.eval(), spec=spec, step=int(data["step"]), config=dataclasses.asdict(config),
                    checkpoint=path, pruned=pruned, compression=comp)
