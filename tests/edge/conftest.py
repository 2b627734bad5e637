"""Fixtures for the edge tests: small real models made on the fly (see helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.edge.helpers import make_model_folder


@pytest.fixture
def identity_model(tmp_path: Path) -> Path:
    return make_model_folder(tmp_path / "identity")


@pytest.fixture
def blur_model(tmp_path: Path) -> Path:
    return make_model_folder(tmp_path / "blur", name="blur", kind="blur")
