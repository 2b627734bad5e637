"""Fixtures for the training tests: a few small simulated stacks written once per session (never /work/shared)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _few_threads() -> None:
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def sim_stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 96×96 simulated stacks in the edge.stack format (seeded)."""
    from virtualfocus.simulation.simulate import SimConfig, simulate_stack
    from virtualfocus.zstacks.stack import write_stack

    root = tmp_path_factory.mktemp("stacks")
    cfg = SimConfig(size=96)
    for seed in range(4):
        write_stack(root / f"sim-{seed:03d}", simulate_stack(seed, config=cfg))
    return root
