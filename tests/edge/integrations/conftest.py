"""Fixtures for the integration tests: small real models and simulated captures (no /work/shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge import FocusRuntime
from virtualfocus.simulation.simulate import make_field

from tests.edge.helpers import make_model_folder, make_two_input_model_folder

SIZE = 96


@pytest.fixture
def identity_model(tmp_path: Path) -> Path:
    return make_model_folder(tmp_path / "identity")


@pytest.fixture
def two_shot_model(tmp_path: Path) -> Path:
    return make_two_input_model_folder(tmp_path / "two-shot", kind="first")


@pytest.fixture
def runtime(identity_model: Path):
    # A generous hard deadline: these tests check ordering, fallbacks and metadata, and a busy shared CI machine must
    # not turn a queued frame "late" (deadlines have their own tests in tests/edge/test_runtime*.py).
    rt = FocusRuntime.load(identity_model, ladder=False, warmup=5, threads=1, deadline_ms=30_000)
    yield rt
    rt.close(drain=False)


@pytest.fixture(scope="module")
def field():
    return make_field(np.random.default_rng(11), size=SIZE)


def capture(field, defocus_um: float, seed: int = 0) -> np.ndarray:
    return field.render(defocus_um, rng=np.random.default_rng(seed))
