"""The whole registry: every variant builds, runs forward and one optimiser step on CPU; specs are strict."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from virtualfocus.edge.errors import InputError
from virtualfocus.training.registry import (
    ClassifierSpec,
    Pix2PixSpec,
    RestorationSpec,
    create_model,
    get_spec,
    list_models,
    register,
)
from virtualfocus.training.systems import make_system

from .small_specs import SMALL

EXPECTED = [
    "pix2pix", "pix2pix-cnn", "pan", "deblurgan", "pix2pix-dist", "pix2pix-dist-2inputs", "pix2pix-dist-fast",
    "focus-distance-classifier", "autoencoder-whole", "autoencoder-split", "tsva", "dbmid-blur-classifier",
    "dbmid-defocus", "dbmid-motion", "mmdf-focus-classifier", "fusegan",
    # the project's own restorers (not a paper's system; named by architecture and width)
    "nafnet-w16", "nafnet-w32",
    # the runtime's U-Nets, made by distillation from a full model (compression stage)
    "unet-f40-l5", "unet-f16-l4",
]



def test_registry_names_are_exactly_the_papers_systems() -> None:
    assert list_models() == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_variant_builds_steps_and_stays_finite(name: str) -> None:
    torch.manual_seed(0)
    spec = get_spec(name, **SMALL[name])
    system = make_system(spec, device=torch.device("cpu"), amp=False, channels_last=True, seed=0)
    size = max(32, spec.pad_multiple)
    inputs = spec.inputs if isinstance(spec, RestorationSpec) else 1
    x = torch.rand(2, 3 * inputs, size, size) * 2 - 1
    y = torch.rand(2, 3, size, size) * 2 - 1
    batch = {"x": x, "y": y, "offset": torch.tensor([-1.0, 0.6])}
    model = system.networks["model"]
    before = [p.detach().clone() for p in model.parameters()]
    losses = system.train_step(batch)
    assert losses and all(v == v for k, v in losses.items() if k != "d_total"), losses  # no NaN
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert changed, f"{name}: the optimiser step did not change the weights"
    model.eval()
    with torch.no_grad():
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.isfinite(out).all()
    if isinstance(spec, ClassifierSpec):
        assert out.shape == (2, len(spec.class_names))
    else:
        assert out.shape == (2, 3, size, size)
        assert out.min() >= -1 and out.max() <= 1


def test_paper_sizes_match_the_design_table() -> None:
    # DESIGN.md: 64 filters / 8 levels = 54.5 M parameters, 16 filters / 4 levels = 0.39 M.
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(n(create_model("pix2pix")) / 1e6 - 54.41) < 0.01
    assert abs(n(create_model("pix2pix-dist-fast")) / 1e6 - 0.388) < 0.001
    assert get_spec("pix2pix").pad_multiple == 256 and get_spec("pix2pix-dist-fast").pad_multiple == 16
    assert get_spec("pix2pix-dist-fast", space_to_depth=2).pad_multiple == 32


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(KeyError, match="pix2pix-dist-fast"):
        create_model("pix2pix-fastest")


def test_unknown_or_invalid_override_is_rejected() -> None:
    with pytest.raises(InputError, match="valid fields"):
        get_spec("pix2pix", filterz=3)
    with pytest.raises(InputError, match="pixelshuffle"):
        get_spec("pix2pix", decoder="bilinear")
    with pytest.raises(InputError, match="adversarial"):
        get_spec("pix2pix", adversarial="hinge")


def test_register_twice_is_an_error() -> None:
    with pytest.raises(KeyError, match="already registered"):
        register(Pix2PixSpec(name="pix2pix"))


@pytest.mark.parametrize("name", EXPECTED)
def test_spec_round_trips_through_asdict(name: str) -> None:
    spec = get_spec(name)
    fields = dataclasses.asdict(spec)
    assert fields["name"] == name
    fields.pop("name")
    assert get_spec(name, **fields) == spec


def test_package_registry_and_config_import_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, virtualfocus.training, virtualfocus.training.registry as r, virtualfocus.training.config\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert r.get_spec('pix2pix-dist-fast', space_to_depth=2).pad_multiple == 32\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", [n for n in EXPECTED if isinstance(get_spec(n), RestorationSpec)])
def test_generators_declare_their_input_contract(name: str) -> None:
    # export/ builds the model's InputContract from these attributes
    spec = get_spec(name, **SMALL[name])
    g = spec.build()
    assert g.pad_multiple == spec.pad_multiple
    assert g.inputs == spec.inputs and g.out_channels == 3
