"""Fixtures for the edge tests: small real models made on the fly (see helpers.py), the defocus classifiers once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.edge.helpers import export_tiny_defocus, make_model_folder


@pytest.fixture
def identity_model(tmp_path: Path) -> Path:
    return make_model_folder(tmp_path / "identity")


@pytest.fixture
def blur_model(tmp_path: Path) -> Path:
    return make_model_folder(tmp_path / "blur", name="blur", kind="blur")


@pytest.fixture(scope="session")
def defocus_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported focus-distance classifier (untrained, seeded): input-dependent estimates."""
    pytest.importorskip("torch")
    return export_tiny_defocus(tmp_path_factory.mktemp("defocus") / "focus-distance")


@pytest.fixture(scope="session")
def defocus_negative(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported classifier that always answers about −1.4 µm (its first class)."""
    pytest.importorskip("torch")
    return export_tiny_defocus(tmp_path_factory.mktemp("defocus") / "negative", favour=0)


@pytest.fixture(scope="session")
def defocus_positive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported classifier that always answers about +1.2 µm (its last class)."""
    pytest.importorskip("torch")
    return export_tiny_defocus(tmp_path_factory.mktemp("defocus") / "positive", favour=-1)
