"""Shared fixtures: one tiny U-Net exported once per session (seconds, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from virtualfocus.export import Calibration, ValidationSet, export_model  # noqa: E402

TINY_SIZE = 64


def tiny_unet(decoder: str = "resize-conv", **kw):
    from virtualfocus.training.nets.unet import UNetGenerator

    torch.manual_seed(0)
    return UNetGenerator(filters=8, levels=3, decoder=decoder, **kw).eval()


@pytest.fixture(scope="session")
def tiny_model() -> object:
    return tiny_unet()


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, tiny_model) -> Path:
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("models") / "tiny"
    export_model(tiny_model, out_dir=out, name="tiny", architecture="unet-tiny-test", trained=False,
                 size=TINY_SIZE, calibration=Calibration(stacks=1, size=TINY_SIZE),
                 validation=ValidationSet(stacks=1, size=TINY_SIZE), accuracy_control=True, latency_runs=3,
                 threads=2)
    return out
