"""Simulated blood-smear stacks: determinism, labels, focus behaviour, render API and the simulate CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge import metrics
from virtualfocus.edge.errors import InputError
from virtualfocus.simulation.optics import Camera
from virtualfocus.simulation.simulate import (
    SimConfig,
    SmearField,
    main,
    make_field,
    render_field,
    simulate_stack,
)
from virtualfocus.zstacks.stack import read_stack

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


def test_stacks_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    # every stack draws from its own seed's streams, so a pool writes exactly what one process writes
    args = ["--stacks", "3", "--seed", "70", "--size", "48", "--motion", "0.5"]
    assert main(["--out", str(tmp_path / "one"), *args, "--workers", "1"]) == 0
    assert main(["--out", str(tmp_path / "two"), *args, "--workers", "2"]) == 0
    for i in range(3):
        a = read_stack(tmp_path / "one" / f"sim-{i:06d}.tif")
        b = read_stack(tmp_path / "two" / f"sim-{i:06d}.tif")
        assert np.array_equal(a.planes, b.planes)
        assert a.meta == b.meta


def test_exposure_scales_planes() -> None:
    field = make_field(np.random.default_rng(6), SimConfig(size=64))
    offsets = [-0.4, 0.0, 0.4]
    plain = field.intensity(offsets)
    scaled = field.intensity(offsets, exposure=[0.9, 1.0, 1.1])
    assert np.allclose(scaled, plain * np.array([0.9, 1.0, 1.1], np.float32)[:, None, None, None], atol=1e-6)
    with pytest.raises(InputError, match="exposure"):
        field.intensity(offsets, exposure=[1.0])


def test_default_canvas_is_fft_friendly_and_larger_than_the_field() -> None:
    field = make_field(np.random.default_rng(0))
    assert field.canvas_shape == (416, 416) and field.size == (401, 401)


def test_fused_captures_match_intensity_then_noise() -> None:
    from virtualfocus.simulation.camera import quantize
    from virtualfocus.simulation.optics import add_camera_noise, motion_otf

    field = make_field(np.random.default_rng(7), SimConfig(size=96))
    offsets, exposure = [-0.6, 0.0, 0.4], [0.98, 1.0, 1.02]
    quiet = Camera(full_well_e=1e18, read_noise_e=0.0)  # noise far below a grey level
    fused = field.captures(offsets, rng=np.random.default_rng(1), camera=quiet, exposure=exposure)
    exact = quantize(field.intensity(offsets, exposure=exposure), quiet)
    assert fused.shape == (3, 96, 96, 3) and fused.dtype == np.uint8
    assert np.abs(fused.astype(int) - exact).max() <= 1 and np.mean(fused == exact) > 0.99
    # same noise level as add_camera_noise on the intensity stack
    cam = Camera(full_well_e=2e4)
    inten = field.intensity(offsets, exposure=exposure)
    a = field.captures(offsets, rng=np.random.default_rng(2), camera=cam, exposure=exposure).astype(float)
    b = add_camera_noise(inten, cam, np.random.default_rng(3)).astype(float)
    ref = inten * 255
    assert np.std(a - ref) == pytest.approx(np.std(b - ref), rel=0.05)
    assert abs(np.mean(a - ref)) < 0.05 and abs(np.mean(b - ref)) < 0.05
    # motion blur on some planes only
    blur = motion_otf(6.0, 20.0, field.canvas_shape)
    mixed = field.captures(
        offsets, rng=np.random.default_rng(1), camera=quiet, motion=blur, motion_planes=[1, 0, 1]
    )
    moved = quantize(field.intensity(offsets, motion=blur), quiet)
    still = quantize(field.intensity(offsets), quiet)
    for i, m in enumerate([True, False, True]):
        want = moved[i] if m else still[i]
        assert np.abs(mixed[i].astype(int) - want).max() <= 1


def test_sharpest_plane_resolves_ties_like_metrics() -> None:
    from virtualfocus.simulation.simulate import _sharpest_plane

    s = simulate_stack(4, config=SimConfig(size=64))
    planes = np.concatenate([s.planes, s.planes[s.sharp_index : s.sharp_index + 1]])  # an exact tie, last
    assert _sharpest_plane(planes) == metrics.ground_truth_index(planes) == s.sharp_index
    deep = simulate_stack(4, config=SimConfig(size=64, camera=Camera(bit_depth=16)))
    assert _sharpest_plane(deep.planes) == metrics.ground_truth_index(deep.planes)


def test_simulate_cli_falls_back_to_one_process_without_an_importable_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # worker processes re-import __main__; a script read from stdin cannot be, so the CLI runs serially
    import sys
    import types

    fake = types.ModuleType("__main__")
    fake.__file__ = "<stdin>"
    monkeypatch.setitem(sys.modules, "__main__", fake)
    assert main(["--out", str(tmp_path), "--stacks", "1", "--size", "32", "--workers", "2"]) == 0
    assert (tmp_path / "sim-000000.tif").exists()
    assert "in this process" in capsys.readouterr().err
