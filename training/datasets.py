"""Training data from z-stacks: (defocused capture(s), sharp plane, focus offset) crops as torch tensors.

Sources (:func:`load_sources`): folders of stacks in the ``edge.stack`` format (read lazily, a bounded cache per
process), or ``"sim:N[:SIZE[:SEED]]"`` for N stacks simulated into memory with ``virtualfocus.simulation.simulate``
(useful for tests). The validation split is by stack (:func:`split_stacks`), never by plane, so a field seen in
training never scores validation.

:class:`StackPairDataset` draws, for index ``i`` of epoch ``e``, a deterministic random sample (seeded by
``(seed, e, i)``, so any number of DataLoader workers and DDP ranks reproduce the same data):

* a stack, and a plane whose offset lies in ``offset_range_um`` (thesis: −1.4 … +1.2 µm, sharp band included);
  for two-input systems the partner plane ``delta_um`` above it;
* a ``crop``×``crop`` window, centred near a nucleus when ``meta["nucleus_centres"]`` exists (the thesis cropped
  256×256 around the white cell), else uniform; or, with ``whole_image``, the whole plane resized to the crop;
* training-only augmentation, identical for input and target: ``virtualfocus.zstacks.realstacks.augment_pair``
  when the data module provides it, else :func:`basic_augment` (rotation by multiples of 90°, flips, brightness,
  contrast, white balance, saturation).

Samples are dicts ``{"x": (inputs·C, H, W), "y": (C, H, W), "offset": ()}`` float32 in [-1, 1], normalised by the
runtime's :class:`~virtualfocus.edge.preprocess.Normalizer` (:data:`NORMALIZER`); validation
samples add ``"stack"`` (index) and are deterministic (every plane in range of every validation stack, crop at
the first nucleus or the centre).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.manifest import InputContract
from virtualfocus.edge.preprocess import Normalizer, to_unit
from virtualfocus.zstacks.stack import ZStack, read_stack

__all__ = [
    "NORMALIZER",
    "DataSpec",
    "StackPairDataset",
    "StackRef",
    "ValidationDataset",
    "basic_augment",
    "load_sources",
    "split_stacks",
]

log = logging.getLogger("virtualfocus.training")


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """How samples are drawn from stacks.

    Attributes
    ----------
    crop : int
        Side of the square crop (256 in the thesis).
    inputs : int
        Captures per sample (1, or 2 for two-shot systems).
    delta_um : float
        Two-input samples: the second capture lies ``delta_um`` above the first.
    offset_range_um : (float, float)
        Offsets of the input planes drawn for training and validation.
    nucleus_fraction : float
        Fraction of training crops centred near a nucleus (when the stack knows its nuclei).
    whole_image : bool
        Resize the whole plane to ``crop`` instead of cropping (paper 000's whole-image autoencoder).
    augment : bool
        Training augmentation on or off.
    pair_order : str
        Two-input samples: ``sharper-first`` (the sharper capture by Brenner gradient goes first, as the runtime's
        two-shot fuser feeds the model, so the integrator need not care which shot came first) or ``capture``
        (the plane, then its partner ``delta_um`` above).
    """

    crop: int = 256
    inputs: int = 1
    delta_um: float = 0.6
    offset_range_um: tuple[float, float] = (-1.4, 1.2)
    nucleus_fraction: float = 0.8
    whole_image: bool = False
    augment: bool = True
    pair_order: str = "sharper-first"

    def __post_init__(self) -> None:
        if self.pair_order not in PAIR_ORDERS:
            raise InputError(f"pair_order={self.pair_order!r}; expected one of {', '.join(PAIR_ORDERS)}")


PAIR_ORDERS = ("sharper-first", "capture")


def _brenner(unit: np.ndarray) -> float:
    d = unit[:, 2:, 1] - unit[:, :-2, 1]
    return float(np.mean(d * d))


def _order_pair(ims: list[np.ndarray], spec: DataSpec) -> list[np.ndarray]:
    """[first, second, target] → sharper capture first when ``spec.pair_order`` says so."""
    if len(ims) == 3 and spec.pair_order == "sharper-first" and _brenner(ims[1]) > _brenner(ims[0]):
        return [ims[1], ims[0], ims[2]]
    return ims


# ------------------------------------------------------------------------------------------------ sources
class StackRef:
    """A stack in memory or on disk; ``get()`` returns the :class:`ZStack` (disk stacks through an LRU cache)."""

    _cache: ClassVar[OrderedDict[str, ZStack]] = OrderedDict()
    cache_size = 64

    def __init__(self, stack: ZStack | None = None, path: Path | None = None, name: str | None = None) -> None:
        if (stack is None) == (path is None):
            raise ValueError("StackRef needs exactly one of stack or path")
        self.stack, self.path = stack, path
        self.name = name or (stack.name if stack is not None else Path(path).stem)  # type: ignore[arg-type]

    def get(self) -> ZStack:
        if self.stack is not None:
            return self.stack
        key = str(self.path)
        cache = StackRef._cache
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        stack = read_stack(self.path)  # type: ignore[arg-type]
        cache[key] = stack
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        return stack

    def __repr__(self) -> str:
        return f"StackRef({self.name!r})"


def _parse_sim(source: str) -> tuple[int, int, int]:
    parts = source.split(":")
    try:
        n = int(parts[1])
        size = int(parts[2]) if len(parts) > 2 and parts[2] else 401
        seed = int(parts[3]) if len(parts) > 3 else 0
    except (IndexError, ValueError):
        raise InputError(f"--data {source!r}: expected sim:N[:SIZE[:SEED]], e.g. sim:8:128") from None
    if n < 1 or size < 32 or len(parts) > 4:
        raise InputError(f"--data {source!r}: expected sim:N[:SIZE[:SEED]] with N ≥ 1 and SIZE ≥ 32")
    return n, size, seed


def load_sources(sources: Sequence[str | os.PathLike[str]], *, preload_mb: float = 6144) -> list[StackRef]:
    """Stacks from folders (``*.tif`` + JSON sidecars) and/or ``sim:N[:SIZE[:SEED]]`` specs.

    Folder stacks are read into memory now when their decoded planes total at most ``preload_mb`` MB (estimated
    from the first stack; random crops then cost no disk reads, and forked DataLoader workers share the pages);
    otherwise they are read lazily through a per-process LRU cache.

    Raises
    ------
    InputError
        A folder that does not exist or holds no stacks, or a malformed ``sim:`` spec.
    """
    refs: list[StackRef] = []
    for src in sources:
        s = str(src)
        if s.startswith("sim:"):
            from virtualfocus.simulation.simulate import SimConfig, simulate_stack

            n, size, seed = _parse_sim(s)
            cfg = SimConfig(size=size)
            log.info("simulating %d stacks of %d px (seed %d)", n, size, seed)
            refs += [StackRef(simulate_stack(seed + i, config=cfg)) for i in range(n)]
            continue
        root = Path(s)
        if not root.is_dir():
            raise InputError(f"--data {s}: not a folder of stacks (nor sim:N[:SIZE])")
        tifs = sorted(p for p in root.glob("*.tif") if p.with_suffix(".json").is_file())
        if not tifs:
            raise InputError(f"--data {s}: no stacks (*.tif with a .json sidecar) in this folder")
        refs += [StackRef(path=p) for p in tifs]
    on_disk = [r for r in refs if r.path is not None]
    if on_disk and preload_mb > 0:
        # TIFFs may be compressed: scale each folder's file size by its first stack's in-memory/on-disk ratio.
        folders: dict[Path, list[StackRef]] = {}
        for r in on_disk:
            folders.setdefault(r.path.parent, []).append(r)  # type: ignore[union-attr]
        estimate = 0.0
        for group in folders.values():
            group[0].stack = read_stack(group[0].path)  # type: ignore[arg-type]
            ratio = group[0].stack.planes.nbytes / max(group[0].path.stat().st_size, 1)  # type: ignore[union-attr]
            estimate += ratio * sum(r.path.stat().st_size for r in group)  # type: ignore[union-attr]
        if estimate <= preload_mb * 2**20:
            log.info("reading %d stacks (≈%.0f MB) into memory", len(on_disk), estimate / 2**20)
            for r in on_disk:
                if r.stack is None:
                    r.stack = read_stack(r.path)  # type: ignore[arg-type]
        else:
            for group in folders.values():
                group[0].stack = None
            log.info("%d stacks (≈%.0f MB) exceed preload_mb=%g: reading them lazily", len(on_disk),
                     estimate / 2**20, preload_mb)
    if not refs:
        raise InputError("no training data: give --data FOLDER or --data sim:N")
    return refs


def split_stacks(refs: Sequence[StackRef], *, val_fraction: float = 0.15, seed: int = 0
                 ) -> tuple[list[StackRef], list[StackRef]]:
    """Split by stack into (train, validation); at least one of each when there are ≥ 2 stacks."""
    if not 0 <= val_fraction < 1:
        raise InputError(f"val_fraction={val_fraction}; expected a fraction in [0, 1)")
    order = np.random.default_rng(seed).permutation(len(refs))
    n_val = round(len(refs) * val_fraction)
    if val_fraction > 0 and len(refs) >= 2:
        n_val = min(max(n_val, 1), len(refs) - 1)
    val = [refs[i] for i in sorted(order[:n_val])]
    train = [refs[i] for i in sorted(order[n_val:])]
    return train, val


# ------------------------------------------------------------------------------------------------ sampling
def _usable(stack: ZStack, spec: DataSpec) -> list[tuple[int, int]]:
    """(input plane, partner plane or -1) pairs whose offsets lie in the range."""
    lo, hi = spec.offset_range_um
    off = stack.offsets_um
    out = []
    for i, o in enumerate(off):
        if not lo - 1e-6 <= o <= hi + 1e-6:
            continue
        if spec.inputs == 1:
            out.append((i, -1))
            continue
        j = int(np.argmin(np.abs(off - (o + spec.delta_um))))
        if abs(off[j] - (o + spec.delta_um)) < 1e-3 and j != i:
            out.append((i, j))
    return out


def _window(stack: ZStack, crop: int, rng: np.random.Generator | None, nucleus_fraction: float
            ) -> tuple[int, int]:
    h, w = stack.planes.shape[1:3]
    if h < crop or w < crop:
        raise InputError(f"stack {stack.name!r}: planes {h}×{w} are smaller than the crop {crop}; use a smaller "
                         "--crop or larger stacks")
    centres = stack.meta.get("nucleus_centres") or []
    if rng is None:  # validation: first nucleus, else centre
        cy, cx = (centres[0] if centres else (h // 2, w // 2))
    elif centres and rng.random() < nucleus_fraction:
        cy, cx = centres[int(rng.integers(len(centres)))]
        cy += int(rng.integers(-crop // 4, crop // 4 + 1))
        cx += int(rng.integers(-crop // 4, crop // 4 + 1))
    else:
        return int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    top = int(np.clip(int(cy) - crop // 2, 0, h - crop))
    left = int(np.clip(int(cx) - crop // 2, 0, w - crop))
    return top, left


def _unit(plane: np.ndarray, bit_depth: int | None) -> np.ndarray:
    unit, _ = to_unit(plane, bit_depth=bit_depth)
    if unit.shape[2] == 1:
        unit = np.repeat(unit, 3, axis=2)
    return unit


def _extract(stack: ZStack, idx: Sequence[int], spec: DataSpec, rng: np.random.Generator | None
             ) -> list[np.ndarray]:
    """Crops (or whole resized planes) of planes ``idx`` as float32 H×W×3 in 0..1."""
    bit_depth = stack.meta.get("camera_bit_depth") if stack.planes.dtype == np.uint16 else None
    if spec.whole_image:
        return [cv2.resize(_unit(stack.planes[i], bit_depth), (spec.crop, spec.crop), interpolation=cv2.INTER_AREA)
                for i in idx]
    top, left = _window(stack, spec.crop, rng, spec.nucleus_fraction)
    sl = np.s_[top:top + spec.crop, left:left + spec.crop]
    return [_unit(stack.planes[i][sl], bit_depth) for i in idx]


def basic_augment(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The thesis's augmentation (§2.3), applied identically to every image of one sample (H×W×3, 0..1).

    Rotation by a multiple of 90° and flips; brightness ±8 %, contrast ±15 %, per-channel white balance ±6 %,
    saturation ±20 %. (Stain augmentation lives in the data module's ``augment_pair`` when available.)
    """
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    gain = 1.0 + rng.uniform(-0.06, 0.06, size=3).astype(np.float32)
    contrast = np.float32(1.0 + rng.uniform(-0.15, 0.15))
    bright = np.float32(rng.uniform(-0.08, 0.08))
    sat = np.float32(1.0 + rng.uniform(-0.2, 0.2))
    out = []
    for im in images:
        im = np.rot90(im, k)
        if flip:
            im = im[:, ::-1]
        im = im * gain
        mean = im.mean(axis=(0, 1), keepdims=True)
        im = (im - mean) * contrast + mean + bright
        gray = im.mean(axis=2, keepdims=True)
        im = gray + (im - gray) * sat
        out.append(np.ascontiguousarray(np.clip(im, 0.0, 1.0), dtype=np.float32))
    return out


def _data_augment() -> Callable[..., Any] | None:
    """``realstacks.augment_pair`` from the data module, if it has landed."""
    try:
        from virtualfocus.zstacks import realstacks
    except ImportError:
        return None
    return getattr(realstacks, "augment_pair", None)


#: The runtime's normalisation for the contract every exported model declares (RGB, values in [-1, 1]): training
#: feeds the network exactly what :class:`~virtualfocus.edge.preprocess.Normalizer` will feed it at inference.
NORMALIZER = Normalizer(InputContract().value_range, InputContract().channels)


def _to_tensor(unit: np.ndarray) -> torch.Tensor:
    """H×W×3 in 0..1 → C×H×W float32 in the model's value range (:data:`NORMALIZER`)."""
    return torch.from_numpy(NORMALIZER.before(unit)[0])


def _augment(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Same random transform for every image of the sample (inputs…, target)."""
    fn = _data_augment()
    if fn is None:
        return basic_augment(images, rng)
    seed = int(rng.integers(2**63))
    *inputs, target = images
    out = []
    for x in inputs:  # a generator seeded alike draws the same transform for each (input, target) pair
        xa, ya = fn(x, target, np.random.default_rng(seed))
        out.append(np.asarray(xa, np.float32))
    return [*out, np.asarray(ya, np.float32)]


class StackPairDataset(Dataset):
    """Random training samples from stacks (see module notes).

    Parameters
    ----------
    refs : sequence of StackRef
    spec : DataSpec
    length : int
        Samples per epoch (indices ``0 … length-1``; index ``e * length + i`` is sample ``i`` of epoch ``e``).
    seed : int
        Base seed; the draw for a sample is seeded by ``(seed, epoch, i)``.
    """

    def __init__(self, refs: Sequence[StackRef], spec: DataSpec, *, length: int = 1000, seed: int = 0) -> None:
        if not refs:
            raise InputError("no training stacks")
        self.refs, self.spec, self.length, self.seed, self.epoch = list(refs), spec, int(length), int(seed), 0
        self._usable: dict[int, list[tuple[int, int]]] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _pairs(self, k: int) -> list[tuple[int, int]]:
        if k not in self._usable:
            self._usable[k] = _usable(self.refs[k].get(), self.spec)
        return self._usable[k]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # Indices ≥ length carry the epoch (``epoch * length + i``, see trainer's sampler): DataLoader workers hold
        # their own copy of the dataset, so an epoch set in the main process would never reach them.
        epoch, i = divmod(int(index), self.length)
        rng = np.random.default_rng([self.seed, self.epoch + epoch, i])
        for _ in range(100):
            k = int(rng.integers(len(self.refs)))
            pairs = self._pairs(k)
            if pairs:
                break
        else:
            raise InputError(f"no stack has planes in offset range {self.spec.offset_range_um} µm"
                             + (f" with a partner {self.spec.delta_um} µm above" if self.spec.inputs == 2 else ""))
        stack = self.refs[k].get()
        i, j = pairs[int(rng.integers(len(pairs)))]
        idx = [i, stack.sharp_index] if j < 0 else [i, j, stack.sharp_index]
        ims = _order_pair(_extract(stack, idx, self.spec, rng), self.spec)
        if self.spec.augment:
            ims = _augment(ims, rng)
        x = torch.cat([_to_tensor(im) for im in ims[:-1]], dim=0)
        return {"x": x, "y": _to_tensor(ims[-1]), "offset": torch.tensor(float(stack.offsets_um[i]))}


class ValidationDataset(Dataset):
    """Every plane in range of every validation stack, one deterministic crop each (no augmentation)."""

    def __init__(self, refs: Sequence[StackRef], spec: DataSpec) -> None:
        self.refs, self.spec = list(refs), spec
        self.items: list[tuple[int, int, int]] = []
        for k, ref in enumerate(self.refs):
            self.items += [(k, i, j) for i, j in _usable(ref.get(), spec)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        k, i, j = self.items[index]
        stack = self.refs[k].get()
        idx = [i, stack.sharp_index] if j < 0 else [i, j, stack.sharp_index]
        ims = _order_pair(_extract(stack, idx, self.spec, None), self.spec)
        x = torch.cat([_to_tensor(im) for im in ims[:-1]], dim=0)
        return {"x": x, "y": _to_tensor(ims[-1]), "offset": torch.tensor(float(stack.offsets_um[i])),
                "stack": torch.tensor(k)}
