"""Training samples are normalised by the runtime's Normalizer: what the network learns from is what it gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from virtualfocus.edge.manifest import InputContract
from virtualfocus.edge.preprocess import Normalizer, to_unit
from virtualfocus.training.datasets import (
    NORMALIZER,
    DataSpec,
    ValidationDataset,
    load_sources,
)
from virtualfocus.zstacks.stack import ZStack


def _edge_input(plane: np.ndarray, top: int, left: int, crop: int) -> np.ndarray:
    """What the runtime hands a model for this crop of a capture: to_unit, then the contract's Normalizer."""
    unit, _ = to_unit(plane[top:top + crop, left:left + crop])
    return Normalizer(InputContract().value_range, InputContract().channels).before(unit)[0]


def test_the_dataset_normaliser_is_the_runtime_one_for_the_exported_contract() -> None:
    assert isinstance(NORMALIZER, Normalizer)
    assert (NORMALIZER.value_range, NORMALIZER.channels) == (InputContract().value_range, InputContract().channels)


def test_a_validation_sample_equals_the_normalizer_applied_to_the_same_crop(sim_stacks: Path) -> None:
    crop = 32
    refs = load_sources([str(sim_stacks)])
    ds = ValidationDataset(refs[:1], DataSpec(crop=crop, augment=False))
    stack: ZStack = refs[0].get()
    # validation crops sit on the first nucleus (else the centre), clipped to the plane
    h, w = stack.planes.shape[1:3]
    cy, cx = (stack.meta.get("nucleus_centres") or [(h // 2, w // 2)])[0]
    top, left = int(np.clip(cy - crop // 2, 0, h - crop)), int(np.clip(cx - crop // 2, 0, w - crop))
    for n in (0, len(ds) - 1):
        _, i, _ = ds.items[n]
        sample = ds[n]
        x, y = sample["x"].numpy(), sample["y"].numpy()
        assert x.dtype == np.float32 and x.shape == (3, crop, crop)
        np.testing.assert_array_equal(x, _edge_input(stack.planes[i], top, left, crop))
        np.testing.assert_array_equal(y, _edge_input(stack.planes[stack.sharp_index], top, left, crop))
        assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() < 0 < x.max()  # the model's range, both halves used


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_normalizer_and_hand_written_scaling_agree_exactly(value: float) -> None:
    unit = np.full((4, 4, 3), value, np.float32)
    assert torch.equal(torch.from_numpy(NORMALIZER.before(unit)[0]),
                       torch.from_numpy(unit.transpose(2, 0, 1).copy()) * 2.0 - 1.0)
