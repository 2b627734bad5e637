"""The trainer: seeded, resumable, validated, early-stopped, single-process or DDP (``torchrun``).

:func:`train` is the whole loop. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) it initialises
``torch.distributed`` (NCCL on CUDA, gloo on CPU), wraps the trainable networks in ``DistributedDataParallel`` and
shards the sampler with ``DistributedSampler``; rank 0 alone writes the run directory, the log and the progress
bar, every rank validates on the (small) held-out set so that all agree on early stopping without extra traffic.

Per step: one generator (or classifier) update, see :mod:`.systems`. Every ``log_every`` steps a CSV row with the
running means of the losses (and TensorBoard scalars if ``tensorboard`` is installed); every ``val_every`` steps
validation on held-out stacks, ``best.pt`` on improvement, early stopping after ``patience`` validations without
improvement (the thesis trained "until the validation loss no longer decreased"); every ``save_every`` steps and at
the end ``last.pt`` + ``config.json``.

Example
-------
>>> cfg = TrainConfig(model="pix2pix-dist-fast", data=("sim:8:128",), steps=20, crop=64, progress=False)
>>> state = train(cfg, get_spec("pix2pix-dist-fast", adversarial="none", lambda_distance=0), "runs/t")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler, Subset
from virtualfocus.edge.errors import InputError

from .checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from .config import RunState, TrainConfig, read_run_config, write_run_config
from .datasets import DataSpec, StackPairDataset, ValidationDataset, load_sources, split_stacks
from .registry import AutoencoderSpec, ModelSpec, RestorationSpec
from .systems import ClassifierSystem, RestorationSystem, make_system

__all__ = ["default_workers", "resolve_device", "train"]

log = logging.getLogger("virtualfocus.training")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA if available else CPU; ``"cuda"`` without a GPU raises :class:`InputError`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device='cuda' but PyTorch sees no CUDA device here; use --device cpu")
    return torch.device(name)


def default_workers() -> int:
    """DataLoader workers: one per spare core, at most 2 (crops are cheap; the model needs the cores)."""
    return max(0, min(2, (os.cpu_count() or 1) - 1))


class _Dist:
    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        self.owned = False
        if self.enabled:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
                self.owned = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def agree(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (decisions such as stopping must be identical everywhere)."""
        if not self.enabled:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()


def _data_spec(config: TrainConfig, spec: ModelSpec, crop: int) -> DataSpec:
    inputs = spec.inputs if isinstance(spec, RestorationSpec) else 1
    delta = spec.delta_um if isinstance(spec, RestorationSpec) else 0.6
    whole = isinstance(spec, AutoencoderSpec) and spec.whole_image
    return DataSpec(crop=crop, inputs=inputs, delta_um=delta, offset_range_um=config.offset_range_um,
                    whole_image=whole)


class _CsvLog:
    """``log.csv``: one row per log interval. A resumed run that logs more columns than the existing file (a newer
    version) rewrites the file once with the union of the columns."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, list(columns)
        if not path.is_file():
            with path.open("w", newline="") as fh:
                csv.writer(fh).writerow(self.columns)
            return
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
        header = rows[0] if rows else []
        if header == self.columns:
            return
        self.columns = header + [c for c in self.columns if c not in header]
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(self.columns)
            w.writerows(r + [""] * (len(self.columns) - len(r)) for r in rows[1:])
        os.replace(tmp, path)

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as fh:
            csv.writer(fh).writerow(["" if row.get(c) is None else _fmt(row.get(c)) for c in self.columns])


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: the CSV log is the record
        return None
    return SummaryWriter(str(run_dir / "tb"))


class _EpochSampler(Sampler[int]):
    """``DistributedSampler`` (also for one process) that tags indices with the epoch and can resume mid-epoch.

    Yields ``epoch * length + i`` (see :class:`StackPairDataset`), shuffled by ``(seed, epoch)`` and sharded by rank;
    after :meth:`skip` the next epoch starts that many samples in, so a resumed run sees exactly the batches an
    uninterrupted run would have seen.
    """

    def __init__(self, length: int, *, world: int, rank: int, seed: int) -> None:
        from torch.utils.data.distributed import DistributedSampler

        self.length = length
        self.base = DistributedSampler(range(length), num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                       drop_last=True)
        self.epoch, self._skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.base.set_epoch(epoch)

    def skip(self, samples: int) -> None:
        self._skip = samples

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        return itertools.islice((self.epoch * self.length + i for i in self.base), skip, None)

    def __len__(self) -> int:
        return len(self.base) - self._skip


def _loader_iter(loader: DataLoader, sampler: _EpochSampler, step: int, batch: int
                 ) -> Iterator[dict[str, torch.Tensor]]:
    per_epoch = len(sampler.base) // batch
    epoch, done = divmod(step, per_epoch)
    sampler.set_epoch(epoch)
    sampler.skip(done * batch)
    while True:
        yield from loader
        epoch += 1
        sampler.set_epoch(epoch)


def train(config: TrainConfig, spec: ModelSpec, run_dir: str | os.PathLike[str], *, resume: bool = False
          ) -> RunState:
    """Train ``spec`` as ``config`` says, writing the run directory ``run_dir``.

    Parameters
    ----------
    config : TrainConfig
    spec : ModelSpec
        From :func:`virtualfocus.training.registry.get_spec`.
    run_dir : path
        Created if missing. An existing run is only continued with ``resume=True``.
    resume : bool
        Continue from ``checkpoints/last.pt`` and the state in ``config.json``. ``config`` and ``spec`` are used
        as given (normally read back with :func:`~virtualfocus.training.config.read_run_config` and changed only
        in ``steps``, ``max_minutes`` …); the data draw restarts at the current epoch's beginning.

    Returns
    -------
    RunState
        Steps done, best validation loss and step, and why training stopped.

    Raises
    ------
    InputError
        Bad data sources, an existing run without ``resume``, or ``resume`` without a run.
    """
    run = Path(run_dir)
    state = RunState()
    if resume:
        if not checkpoint_path(run, "last").is_file():
            raise InputError(f"--resume: {checkpoint_path(run, 'last')} does not exist; nothing to resume")
        _, old_spec, state = read_run_config(run)
        if old_spec.name != spec.name:
            raise InputError(f"--resume: {run} trained {old_spec.name!r}, not {spec.name!r}")
        state.stopped = None
    elif (run / "config.json").exists():
        raise InputError(f"{run}: already holds a training run; pass --resume to continue it or choose a new --out")
    if config.model != spec.name:
        raise InputError(f"config.model={config.model!r} but the spec is {spec.name!r}")

    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    dist = _Dist(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    try:
        return _fit(config, spec, run, state, resume, device, dist)
    finally:
        dist.close()


def lr_factor(config: TrainConfig, step: int, elapsed_s: float) -> float:
    """Multiplier of the configured learning rate before optimizer step ``step + 1`` (see ``TrainConfig``)."""
    factor = 1.0
    if config.warmup_steps and step < config.warmup_steps:
        factor = (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        progress = step / max(config.steps, 1)
        if config.max_minutes:
            progress = max(progress, elapsed_s / (60 * config.max_minutes))
        progress = min(progress, 1.0)
        factor *= config.lr_final + (1 - config.lr_final) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


@dataclasses.dataclass
class _Loaders:
    loader: DataLoader
    sampler: _EpochSampler
    val_loader: DataLoader | None
    train_stacks: int
    val_stacks: int
    workers: int


def _make_loaders(config: TrainConfig, spec: ModelSpec, *, crop: int, batch: int, device: torch.device,
                  dist: _Dist) -> _Loaders:
    """Training and validation loaders over the run's stacks (split by ``val_fraction``)."""
    refs = load_sources(config.data, preload_mb=config.preload_mb)
    train_refs, val_refs = split_stacks(refs, val_fraction=config.val_fraction, seed=config.seed)
    dspec = _data_spec(config, spec, crop)
    train_set = StackPairDataset(train_refs, dspec, length=config.samples_per_epoch, seed=config.seed)
    val_set: Any = None
    if val_refs and config.val_every:
        val_set = ValidationDataset(val_refs, dataclasses.replace(dspec, augment=False))
        if len(val_set) > config.val_max_items > 0:
            step = len(val_set) / config.val_max_items
            val_set = Subset(val_set, [int(i * step) for i in range(config.val_max_items)])
    workers = default_workers() if config.workers is None else config.workers
    sampler = _EpochSampler(config.samples_per_epoch, world=dist.world, rank=dist.rank, seed=config.seed)
    # Its own generator: otherwise every epoch's iterator draws a worker seed from the global RNG, and a resumed
    # run's dropout masks would drift from an uninterrupted run's.
    loader = DataLoader(train_set, batch_size=batch, sampler=sampler, drop_last=True, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(config.seed))
    if len(loader) == 0:
        raise InputError(f"samples_per_epoch={config.samples_per_epoch} is smaller than one batch of {batch}"
                         + (f" × {dist.world} processes" if dist.enabled else ""))
    val_loader = (DataLoader(val_set, batch_size=batch, shuffle=False, num_workers=0) if val_set is not None
                  else None)
    return _Loaders(loader, sampler, val_loader, len(train_refs), len(val_refs), workers)


def _make_system(config: TrainConfig, spec: ModelSpec, run: Path, state: RunState, *, resume: bool,
                 device: torch.device, dist: _Dist) -> RestorationSystem | ClassifierSystem:
    """The training system (networks, optimisers, losses), resumed from ``last`` when asked, wrapped for DDP."""
    system = make_system(spec, device=device, amp=config.amp, channels_last=config.channels_last,
                         seed=config.seed + 1000 * dist.rank)
    if resume:
        ckpt = load_checkpoint(checkpoint_path(run, "last"), map_location=device)
        system.load_state_dict(ckpt)
        system.step_count = state.step = int(ckpt["step"])
        if "rng" in ckpt and not dist.enabled:  # exact continuation (dropout masks, soft labels, motion draws)
            torch.set_rng_state(ckpt["rng"]["torch"].cpu())
            system.rng.bit_generator.state = ckpt["rng"]["numpy"]
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        system.wrap_ddp(lambda m: DDP(m, device_ids=ids))
    if config.compile:
        system.compile()
    system.train()
    return system


def _fit(config: TrainConfig, spec: ModelSpec, run: Path, state: RunState, resume: bool, device: torch.device,
         dist: _Dist) -> RunState:
    torch.manual_seed(config.seed)
    batch = config.batch_size or spec.batch_size
    crop = config.crop or spec.crop
    pad = spec.pad_multiple
    if crop % pad:
        raise InputError(f"{spec.name}: crop {crop} is not a multiple of the network's pad multiple {pad}; "
                         f"use --crop {max(pad, crop // pad * pad)}")

    data = _make_loaders(config, spec, crop=crop, batch=batch, device=device, dist=dist)
    loader, sampler, val_loader = data.loader, data.sampler, data.val_loader
    system = _make_system(config, spec, run, state, resume=resume, device=device, dist=dist)

    writer = None
    csv_log = None
    if dist.main:
        run.mkdir(parents=True, exist_ok=True)
        write_run_config(run, config, spec, state)
        csv_log = _CsvLog(run / "log.csv", ["step", "time_s", *system.loss_names, "lr_factor", *system.val_names])
        writer = _tensorboard(run)
        log.info("%s: %d train / %d validation stacks, batch %d, crop %d, device %s, %d worker(s)%s", spec.name,
                 data.train_stacks, data.val_stacks, batch, crop, device, data.workers,
                 f", DDP world {dist.world}" if dist.enabled else "")

    def save(which: str) -> None:
        if dist.main:
            payload = {"step": state.step, "best_val": state.best_val, **system.state_dict(),
                       "rng": {"torch": torch.get_rng_state(), "numpy": system.rng.bit_generator.state}}
            save_checkpoint(checkpoint_path(run, which), payload)

    def validate() -> dict[str, float]:
        if val_loader is None:
            return {}
        # BatchNorm buffers may differ slightly between DDP ranks: rank 0's numbers decide for everyone.
        metrics = dist.agree(system.validate(val_loader))
        v = metrics.get("val_loss")
        if v is None or not math.isfinite(v):
            return metrics
        if state.best_val is None or v < state.best_val - config.min_delta:
            state.best_val, state.best_step, state.bad_validations = v, state.step, 0
            save("best")
        else:
            state.bad_validations += 1
        return metrics

    bar = None
    if dist.main and config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=state.step, desc=spec.name, dynamic_ncols=True)
    t0 = time.monotonic()
    running: dict[str, list[float]] = defaultdict(list)
    last_val: dict[str, float] = {}
    validated_at = -1
    batches = _loader_iter(loader, sampler, state.step, batch)
    base_lr = {k: [g["lr"] for g in o.param_groups] for k, o in system.optimizers.items()}
    stop = None
    while state.step < config.steps:
        factor = lr_factor(config, state.step, time.monotonic() - t0)
        for k, o in system.optimizers.items():
            for g, lr in zip(o.param_groups, base_lr[k], strict=True):
                g["lr"] = lr * factor
        losses = system.train_step(next(batches))
        losses["lr_factor"] = factor
        state.step += 1
        for k, v in losses.items():
            running[k].append(v)
        if config.val_every and state.step % config.val_every == 0:
            last_val = validate()
            validated_at = state.step
            if config.patience and state.bad_validations >= config.patience:
                stop = "early-stopped"
        if state.step % max(config.log_every, 1) == 0 or stop or state.step == config.steps:
            means = {k: sum(v) / len(v) for k, v in running.items() if v}
            if csv_log is not None:
                csv_log.write({"step": state.step, "time_s": round(time.monotonic() - t0, 2), **means,
                               **(last_val if validated_at == state.step else {})})
            if writer is not None:
                for k, v in {**means, **(last_val if validated_at == state.step else {})}.items():
                    writer.add_scalar(k, v, state.step)
            if bar is not None:
                post = {k: f"{means[k]:.4g}" for k in list(means)[:2]}
                if "val_psnr" in last_val:
                    post["val_psnr"] = f"{last_val['val_psnr']:.2f}"
                elif "val_acc" in last_val:
                    post["val_acc"] = f"{last_val['val_acc']:.3f}"
                bar.set_postfix(post)
            running.clear()
        if bar is not None:
            bar.update(1)
        if config.save_every and state.step % config.save_every == 0:
            save("last")
            if dist.main:
                write_run_config(run, config, spec, state)
        if config.max_minutes is not None and time.monotonic() - t0 > 60 * config.max_minutes and not stop:
            stop = "time-budget"
        if config.max_minutes is not None:
            stop = dist.agree(stop)  # clocks differ between ranks
        if stop:
            break
    if validated_at != state.step and val_loader is not None and stop != "early-stopped":
        last_val = validate()
        if csv_log is not None and last_val:
            csv_log.write({"step": state.step, "time_s": round(time.monotonic() - t0, 2), **last_val})
    state.stopped = stop or "completed"
    save("last")
    if dist.main:
        write_run_config(run, config, spec, state)
        log.info("%s: stopped (%s) at step %d; best validation loss %s at step %s", spec.name, state.stopped,
                 state.step, state.best_val, state.best_step)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    dist.barrier()
    return state
