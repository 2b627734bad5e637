"""Training pairs for distillation and fine-tuning: (defocused crop, sharp crop) from z-stacks.

Stacks come from a folder (``iter_stacks``) or from the project's simulator (seeded). A pool of stacks is held in
memory and crops are drawn at random (seeded), the same way for every recipe.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from virtualfocus.edge.errors import InputError
from virtualfocus.zstacks.stack import ZStack

__all__ = ["PairSampler", "load_pool"]


def load_pool(data: str | os.PathLike[str] | None, *, stacks: int = 16, size: int = 256, seed: int = 0) -> list[ZStack]:
    """Stacks for training: ``data`` is a folder of stacks (TIFF + JSON), or None for ``stacks`` simulated ones.

    Raises
    ------
    InputError
        The folder does not exist or holds no readable stack.
    """
    if data is None:
        from virtualfocus.export.data import simulated_stacks

        return simulated_stacks(stacks, seed=seed, size=size)
    from virtualfocus.zstacks.stack import iter_stacks

    folder = Path(data)
    if not folder.is_dir():
        raise InputError(f"--data {folder}: not a folder of stacks")
    pool = list(iter_stacks(folder, on_error="skip"))
    if not pool:
        raise InputError(f"--data {folder}: no readable stacks (multi-page TIFF + JSON sidecar) found")
    return pool


class PairSampler:
    """Random batches ``(x, y)`` as torch tensors ``(B, C·inputs, crop, crop)`` and ``(B, C, crop, crop)`` in [-1, 1].

    Parameters
    ----------
    stacks : list of ZStack
        RGB stacks (uint8 or uint16) at least ``crop`` pixels on each side.
    crop, batch_size : int
    inputs : int
        2 = two-shot: the plane and its neighbour further from focus, concatenated on channels.
    max_defocus_um : float
        Input planes within ±this of focus.
    seed : int
    """

    def __init__(self, stacks: list[ZStack], *, crop: int, batch_size: int, inputs: int = 1,
                 max_defocus_um: float = 1.4, seed: int = 0) -> None:
        if not stacks:
            raise InputError("no training stacks")
        small = [s.name for s in stacks if min(s.planes.shape[1:3]) < crop]
        if small:
            raise InputError(f"stacks {small[:3]} are smaller than crop={crop}; use a smaller crop or larger stacks")
        self.stacks, self.crop, self.batch_size, self.inputs = stacks, crop, batch_size, inputs
        self.rng = np.random.default_rng(seed)
        self.choices = [[i for i, z in enumerate(s.offsets_um) if abs(z) <= max_defocus_um + 1e-9] for s in stacks]

    @staticmethod
    def _unit(a: np.ndarray) -> np.ndarray:
        scale = 255.0 if a.dtype == np.uint8 else 65535.0 if a.dtype == np.uint16 else 1.0
        a = a.astype(np.float32) / np.float32(scale)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=-1)
        return a.transpose(2, 0, 1) * 2.0 - 1.0

    def batch(self) -> tuple[object, object]:
        import torch

        xs, ys = [], []
        for _ in range(self.batch_size):
            k = int(self.rng.integers(len(self.stacks)))
            st = self.stacks[k]
            i = int(self.rng.choice(self.choices[k]))
            h, w = st.planes.shape[1:3]
            top, left = int(self.rng.integers(h - self.crop + 1)), int(self.rng.integers(w - self.crop + 1))
            win = (slice(top, top + self.crop), slice(left, left + self.crop))
            caps = [st.planes[i][win]]
            if self.inputs == 2:
                j = min(i + 1, len(st) - 1) if st.offsets_um[i] >= 0 else max(i - 1, 0)
                caps.append(st.planes[j][win])
            xs.append(np.concatenate([self._unit(c) for c in caps], 0))
            ys.append(self._unit(st.sharp[win]))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def __iter__(self) -> Iterator[tuple[object, object]]:
        while True:
            yield self.batch()
