"""Simulated blood-smear stacks: determinism, labels, focus behaviour, render API and the simulate CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge import metrics
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.optics import Camera
from virtualfocus.edge.simulate import SimConfig, SmearField, main, make_field, render_field, simulate_stack
from virtualfocus.edge.stack import read_stack

SMALL = SimConfig(size=128)


def test_same_seed_same_stack_other_seed_other_stack() -> None:
    a = simulate_stack(7, config=SMALL)
    b = simulate_stack(7, config=SMALL)
    c = simulate_stack(8, config=SMALL)
    assert np.array_equal(a.planes, b.planes)
    assert a.meta == b.meta
    assert not np.array_equal(a.planes, c.planes)


def test_stack_layout_and_labels() -> None:
    s = simulate_stack(3, config=SMALL)
    assert s.planes.shape == (17, 128, 128, 3) and s.planes.dtype == np.uint8
    assert s.name == "sim-000003"
    assert np.allclose(np.diff(s.offsets_um), 0.2)
    assert s.offsets_um[s.sharp_index] == 0.0
    # ground truth is the plane with the highest focus measure
    assert s.sharp_index == metrics.ground_truth_index(s.planes)
    for key in ("seed", "optics", "camera", "nucleus_centres", "wbc_type"):
        assert key in s.meta
    assert s.meta["seed"] == 3
    for y, x in s.meta["nucleus_centres"]:
        assert 0 <= y < 128 and 0 <= x < 128


def test_default_stack_is_thesis_shaped() -> None:
    s = simulate_stack(0)
    assert s.planes.shape == (17, 401, 401, 3)
    assert s.sharp_index == 8
    assert s.offsets_um[0] == pytest.approx(-1.6) and s.offsets_um[-1] == pytest.approx(1.6)


def test_defocus_degrades_monotonically_and_asymmetrically() -> None:
    cfg = SimConfig(size=192, flicker=0.0)
    mse = {o: [] for o in (-1.2, -0.6, 0.6, 1.2)}
    for seed in range(3):
        s = simulate_stack(seed, config=cfg)
        for o in mse:
            i = int(np.argmin(np.abs(s.offsets_um - o)))
            mse[o].append(metrics.mse(s.sharp, s.planes[i]))
        f = metrics.focus_curve(s.planes)
        c = s.sharp_index
        assert f[c] > f[c - 3] > f[c - 6] and f[c] > f[c + 3] > f[c + 6]
    m = {o: float(np.mean(v)) for o, v in mse.items()}
    assert m[-1.2] > m[-0.6] and m[1.2] > m[0.6]
    assert m[-1.2] > m[1.2]  # the negative side hurts more (thesis table 6.1)


def test_field_render_api() -> None:
    field = make_field(np.random.default_rng(5), SMALL)
    assert isinstance(field, SmearField)
    a = field.render(0.3, noise=False)
    b = render_field(field, 0.3, noise=False)
    assert a.shape == (128, 128, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    noisy = field.render(0.3, rng=np.random.default_rng(1))
    assert 0 < np.abs(noisy.astype(int) - a).mean() < 3
    far = field.render(1.5, noise=False)
    assert metrics.focus_measure(far) < metrics.focus_measure(field.render(0.0, noise=False))
    with pytest.raises(InputError, match="rng"):
        field.render(0.0)
    with pytest.raises(InputError, match="finite"):
        field.render(float("nan"), noise=False)
    sixteen = field.render(0.0, noise=False, camera=Camera(bit_depth=16))
    assert sixteen.dtype == np.uint16


def test_motion_blur_and_focus_map_options() -> None:
    cfg = SimConfig(size=96, motion_probability=1.0, focus_map_um=0.6, focus_map_tiles=4)
    s = simulate_stack(11, config=cfg)
    assert s.meta["motion"]["length_px"] >= 3.0
    tiles = np.array(s.meta["focus_map_tiles_um"])
    assert tiles.shape == (4, 4) and np.ptp(tiles) > 0.05
    assert s.planes.shape == (17, 96, 96, 3)


def test_twelve_bit_camera_is_msb_aligned() -> None:
    s = simulate_stack(2, config=SimConfig(size=64, camera=Camera(bit_depth=12)))
    assert s.planes.dtype == np.uint16
    assert np.all(s.planes % 16 == 0)
    assert s.planes.max() > 4095  # uses the 16-bit range


def test_config_validation() -> None:
    with pytest.raises(InputError, match="wbc_types"):
        SimConfig(wbc_types=("macrophage",))
    with pytest.raises(InputError, match="size"):
        SimConfig(size=4)


def test_simulate_cli_writes_readable_stacks(tmp_path: Path) -> None:
    out = tmp_path / "stacks"
    assert main(["--out", str(out), "--stacks", "2", "--seed", "40", "--size", "64", "--workers", "1"]) == 0
    names = sorted(p.name for p in out.glob("*.tif"))
    assert names == ["sim-000000.tif", "sim-000001.tif"]
    s = read_stack(out / "sim-000001.tif")
    assert s.meta["seed"] == 41
    assert np.array_equal(s.planes, simulate_stack(41, config=SimConfig(size=64)).planes)
