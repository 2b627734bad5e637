"""Training configuration: one frozen dataclass, strict JSON round-trip, typed ``key=value`` overrides.

There is no global options object: the CLI builds a :class:`TrainConfig` and a registry spec, the trainer receives
both. ``RUN/config.json`` holds ``{"format": 1, "config": {...}, "spec": {...}, "state": {...}}``; unknown keys are
rejected on load (so a typo never silently trains something else).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtualfocus.edge.errors import InputError, ModelLoadError
from virtualfocus.edge.manifest import write_json_atomic

from .registry import ModelSpec, get_spec

__all__ = [
    "CONFIG_FORMAT",
    "RunState",
    "TrainConfig",
    "apply_overrides",
    "coerce_value",
    "read_run_config",
    "write_run_config",
]

CONFIG_FORMAT = 1
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How to train (what to train is the registry spec).

    Attributes
    ----------
    model : str
        Registry name.
    data : tuple of str
        Folders of stacks and/or ``sim:N[:SIZE[:SEED]]``.
    device : {"auto", "cpu", "cuda"}
        ``auto`` = CUDA when available.
    steps : int
        Generator updates to run in total (a resumed run continues up to this number).
    batch_size, crop : int or None
        Per-process batch and crop side; None = the spec's paper defaults.
    val_every : int
        Validate (and save ``best.pt`` on improvement) every this many steps; 0 = never.
    val_fraction : float
        Fraction of stacks held out for validation.
    val_max_items : int
        At most this many validation crops (evenly subsampled, deterministic), to keep validation cheap on CPU.
    patience : int
        Early stopping after this many validations without improvement of the validation loss; 0 = off.
    min_delta : float
        Improvement smaller than this does not count.
    seed : int
        Seeds weights, data draws and the split.
    workers : int or None
        DataLoader worker processes; None = ``min(2, cpu_count - 1)``.
    threads : int or None
        ``torch.set_num_threads``; None = leave PyTorch's default.
    amp : bool
        Mixed precision (bfloat16/float16 autocast) — used on CUDA only.
    channels_last : bool
        NHWC memory format for convolutions.
    compile : bool
        ``torch.compile`` the trainable networks (≈1.5–2× faster steps on this CPU after a ~1 min compile).
    samples_per_epoch : int
        Length of one sampler pass (data are drawn at random; an epoch only reseeds the draw).
    preload_mb : float
        Read stack folders into memory when their decoded planes total at most this many MB (else an LRU cache
        per process).
    offset_range_um : (float, float)
        Offsets of the input planes (thesis −1.4 … +1.2 µm).
    log_every, save_every : int
        CSV/progress interval and ``last.pt`` interval (steps).
    max_minutes : float or None
        Wall-clock budget for this invocation; stops cleanly (with a checkpoint) when exceeded.
    progress : bool
        tqdm progress bar.
    lr_schedule : str
        ``constant`` (the thesis: Adam 2e-4 throughout) or ``cosine``: every optimizer's learning rate follows a
        half cosine from the configured rate down to ``lr_final`` × that rate, over ``steps`` — or over
        ``max_minutes`` of this invocation when that ends first, so a fixed wall-clock budget still ends annealed.
    warmup_steps : int
        Linear warm-up from 0 over this many steps (either schedule).
    lr_final : float
        Final fraction of the learning rate for ``cosine``.
    """

    model: str
    data: tuple[str, ...] = ()
    device: str = "auto"
    steps: int = 10_000
    batch_size: int | None = None
    crop: int | None = None
    val_every: int = 500
    val_fraction: float = 0.15
    val_max_items: int = 64
    patience: int = 10
    min_delta: float = 0.0
    seed: int = 0
    workers: int | None = None
    threads: int | None = None
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    samples_per_epoch: int = 1000
    preload_mb: float = 6144
    offset_range_um: tuple[float, float] = (-1.4, 1.2)
    log_every: int = 50
    save_every: int = 500
    max_minutes: float | None = None
    progress: bool = True
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    lr_final: float = 0.02

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise InputError(f"device={self.device!r} is not valid; expected one of {', '.join(DEVICES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"lr_schedule={self.lr_schedule!r} is not valid; expected one of {', '.join(LR_SCHEDULES)}")
        if not 0 <= self.lr_final <= 1:
            raise InputError(f"lr_final={self.lr_final}; expected a fraction in [0, 1]")
        for k in ("steps", "val_every", "patience", "log_every", "save_every", "val_max_items", "warmup_steps"):
            if getattr(self, k) < 0:
                raise InputError(f"{k}={getattr(self, k)}; expected ≥ 0")
        if self.samples_per_epoch < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise InputError(f"samples_per_epoch={self.samples_per_epoch}, batch_size={self.batch_size}; "
                             "expected ≥ 1")
        if self.crop is not None and self.crop < 16:
            raise InputError(f"crop={self.crop}; expected ≥ 16 pixels")
        if not 0 <= self.val_fraction < 1:
            raise InputError(f"val_fraction={self.val_fraction}; expected a fraction in [0, 1)")
        if self.offset_range_um[0] > self.offset_range_um[1]:
            raise InputError(f"offset_range_um={self.offset_range_um}; expected (low, high) with low ≤ high")


@dataclass(kw_only=True)
class RunState:
    """Progress of a run, stored beside the config."""

    step: int = 0
    best_val: float | None = None
    best_step: int | None = None
    bad_validations: int = 0
    stopped: str | None = None


# ------------------------------------------------------------------------------------------------ coercion
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce_value(text: Any, hint: Any, *, key: str) -> Any:
    """Convert ``text`` (a CLI string or a JSON value) to the type ``hint`` of field ``key``.

    Accepts JSON (``true``, ``[1, 2]``, ``null``), Python-style ``True``/``None``, and comma lists for tuples.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = text is None or (isinstance(text, str) and text.strip().lower() in ("none", "null", ""))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return coerce_value(text, a, key=key)
            except InputError as e:
                errors.append(str(e))
        raise InputError(f"{key}={text!r}: " + "; ".join(errors))
    if origin is tuple:
        if isinstance(text, str):
            s = text.strip()
            if s.startswith(("[", "(")):
                try:
                    items = json.loads("[" + s[1:-1] + "]")
                except ValueError:
                    raise InputError(f"{key}={text!r}: expected a list like 1,2,3 or [1, 2, 3]") from None
            else:
                items = [p for p in s.split(",") if p.strip()]
        elif isinstance(text, (list, tuple)):
            items = list(text)
        else:
            raise InputError(f"{key}={text!r}: expected a list")
        elem = args[0] if args else str
        if (len(args) == 2 and args[1] is Ellipsis) or len(args) == 1:
            return tuple(coerce_value(v, elem, key=key) for v in items)
        if len(items) != len(args):
            raise InputError(f"{key}={text!r}: expected {len(args)} values")
        return tuple(coerce_value(v, a, key=key) for v, a in zip(items, args, strict=True))
    if hint is bool:
        if isinstance(text, bool):
            return text
        s = str(text).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise InputError(f"{key}={text!r}: expected true or false")
    if hint is int:
        if isinstance(text, bool):
            raise InputError(f"{key}={text!r}: expected an integer")
        try:
            f = float(text)
        except (TypeError, ValueError):
            raise InputError(f"{key}={text!r}: expected an integer") from None
        if f != int(f):
            raise InputError(f"{key}={text!r}: expected an integer")
        return int(f)
    if hint is float:
        try:
            return float(text)
        except (TypeError, ValueError):
            raise InputError(f"{key}={text!r}: expected a number") from None
    if hint is str:
        if not isinstance(text, str):
            raise InputError(f"{key}={text!r}: expected a string")
        return text
    raise InputError(f"{key}: unsupported field type {hint!r}")


def apply_overrides(config: TrainConfig, spec: ModelSpec, pairs: dict[str, Any]
                    ) -> tuple[TrainConfig, ModelSpec]:
    """Apply ``key=value`` overrides: TrainConfig fields first (``batch_size``/``crop`` live there), then spec fields.

    Raises
    ------
    InputError
        A key that is neither, or a value of the wrong type; the message lists valid keys.
    """
    cfg_hints, spec_hints = _hints(TrainConfig), _hints(type(spec))
    cfg_keys = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    spec_keys = {f.name for f in dataclasses.fields(spec)} - {"name"}
    cfg_up, spec_up = {}, {}
    for k, v in pairs.items():
        if k in cfg_keys:
            cfg_up[k] = coerce_value(v, cfg_hints[k], key=k)
        elif k in spec_keys:
            spec_up[k] = coerce_value(v, spec_hints[k], key=k)
        else:
            raise InputError(f"unknown setting {k!r} for {spec.name}; training settings: {', '.join(sorted(cfg_keys))}"
                             f"; model settings: {', '.join(sorted(spec_keys))}")
    if cfg_up:
        config = dataclasses.replace(config, **cfg_up)
    if spec_up:
        spec = get_spec(spec.name, **{**_spec_fields(spec), **spec_up})
    return config, spec


def _spec_fields(spec: ModelSpec) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(spec).items() if k != "name"}


# ------------------------------------------------------------------------------------------------ run file
def write_run_config(run_dir: str | os.PathLike[str], config: TrainConfig, spec: ModelSpec, state: RunState) -> Path:
    """Write ``RUN/config.json`` atomically."""
    path = Path(run_dir) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {
        "format": CONFIG_FORMAT,
        "config": dataclasses.asdict(config),
        "spec": dataclasses.asdict(spec),
        "state": dataclasses.asdict(state),
    })
    return path


def _strict(data: Any, cls: type, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ModelLoadError(f"{where}: expected a JSON object")
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ModelLoadError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(valid))}")
    hints = _hints(cls)
    try:
        return {k: coerce_value(v, hints[k], key=k) for k, v in data.items()}
    except InputError as e:
        raise ModelLoadError(f"{where}: {e}") from e


def read_run_config(run_dir: str | os.PathLike[str]) -> tuple[TrainConfig, ModelSpec, RunState]:
    """Read and validate ``RUN/config.json``.

    Raises
    ------
    ModelLoadError
        Missing or unreadable file, unknown keys, unknown model name, or invalid values.
    """
    path = Path(run_dir) / "config.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file; is {run_dir} a training run directory?") from None
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: unreadable or not JSON ({e})") from e
    if not isinstance(raw, dict) or set(raw) != {"format", "config", "spec", "state"}:
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ModelLoadError(f"{path}: expected keys format, config, spec, state; found {keys}")
    if raw["format"] != CONFIG_FORMAT:
        raise ModelLoadError(f"{path}: format {raw['format']!r}; this version reads format {CONFIG_FORMAT}")
    try:
        config = TrainConfig(**_strict(raw["config"], TrainConfig, f"{path} [config]"))
        state = RunState(**_strict(raw["state"], RunState, f"{path} [state]"))
        spec_raw = raw["spec"]
        if not isinstance(spec_raw, dict) or "name" not in spec_raw:
            raise ModelLoadError(f"{path} [spec]: missing the model name")
        try:
            base = get_spec(spec_raw["name"])
        except KeyError as e:
            raise ModelLoadError(f"{path} [spec]: {e.args[0]}") from None
        fields = _strict(spec_raw, type(base), f"{path} [spec]")
        spec = get_spec(fields.pop("name"), **fields)
    except InputError as e:
        raise ModelLoadError(f"{path}: {e}") from e
    return config, spec, state
