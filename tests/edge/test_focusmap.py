"""Per-tile focus maps: the tiling, the calibration, the runtime option and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge import FocusMap, FocusRuntime, FrameStatus, InputError, ModelLoadError
from virtualfocus.edge.defocus import FocusGainCalibration
from virtualfocus.edge.focusmap import focus_map, tile_edges
from virtualfocus.edge.manifest import Manifest

CAL = FocusGainCalibration((0.0, 0.5, 1.0, 1.5), (1.0, 1.5, 2.5, 4.0))


def _texture(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, shape).astype(np.float32)


def _with(folder: Path, **fields) -> Path:
    """Write ``fields`` into the model folder's manifest.json as a user's editor would (loading checks them)."""
    path = folder / "manifest.json"
    raw = json.loads(path.read_text())
    raw.update(fields)
    path.write_text(json.dumps(raw))
    return folder


def test_tiles_cover_the_capture_in_nearly_equal_parts():
    assert tile_edges(360, 64).tolist() == [0, 60, 120, 180, 240, 300, 360]
    assert tile_edges(100, 64).tolist() == [0, 50, 100]
    assert tile_edges(64, 64).tolist() == [0, 64]
    fm = focus_map(_texture((100, 300)), _texture((100, 300)), CAL)
    assert fm.shape == (2, 5) and fm.y_edges == (0, 50, 100) and fm.x_edges[-1] == 300


def test_each_tile_reads_its_own_gain_through_the_calibration():
    # Restored = capture × √k in the left half: F grows by k there (gain k), the right half is unchanged (gain 1).
    cap = _texture((128, 256))
    out = cap.copy()
    out[:, :128] *= np.sqrt(2.5)
    fm = focus_map(cap, out, CAL, smooth=False)
    assert fm.shape == (2, 4) and fm.um.dtype == np.float32
    np.testing.assert_allclose(fm.um[:, :2], 1.0, atol=0.02)  # the filters reach 6 px over the seam
    np.testing.assert_allclose(fm.um[:, 2:], 0.0, atol=0.02)
    assert fm.signed is False
    # Against the default trusted range (±0.8 µm): half the tiles are outside it.
    assert fm.untrusted_share == pytest.approx(0.5)


def test_smoothing_removes_a_lone_outlier_tile():
    cap = _texture((256, 256), 1)
    out = cap.copy()
    out[64:128, 64:128] *= 2.0  # one tile of 16 sharpened 4×
    assert focus_map(cap, out, CAL, smooth=False).um[1, 1] > 1.0
    assert float(np.nanmax(focus_map(cap, out, CAL).um)) < 0.1  # its neighbours outvote it


def test_blank_tiles_have_no_estimate():
    cap = _texture((128, 128), 2)
    cap[:72, :72] = 100.0  # no texture in the first tile and the 6 px its filters reach beyond it: F = 0
    fm = focus_map(cap, cap.copy(), CAL)
    assert np.isnan(fm.um[0, 0]) and np.isfinite(fm.um[1, 1])
    d = fm.to_dict()
    assert d["um"][0][0] is None and d["um"][1][1] == 0.0
    assert fm.untrusted_share == 0.0


def test_upscale_fills_each_tile_with_its_value():
    fm = FocusMap(np.array([[0.1, 0.2], [0.3, 0.4]], np.float32), (0, 50, 100), (0, 30, 60))
    up = fm.upscale()
    assert up.shape == (100, 60) and up[49, 29] == np.float32(0.1) and up[50, 30] == np.float32(0.4)
    assert fm.upscale((10, 6))[9, 0] == np.float32(0.3)
    assert np.asarray(fm).shape == (2, 2)


def test_bad_input_is_refused_in_one_line():
    with pytest.raises(InputError, match=r"40×40 capture is smaller than one 64×64 px tile"):
        focus_map(_texture((40, 40)), _texture((40, 40)), CAL)
    with pytest.raises(InputError, match="two H×W planes of one shape"):
        focus_map(_texture((64, 64)), _texture((64, 65)), CAL)
    with pytest.raises(InputError, match="at least 16 px"):
        focus_map(_texture((64, 64)), _texture((64, 64)), CAL, tile_px=8)


def test_runtime_gives_a_map_only_when_asked(identity_model):
    _with(identity_model, focus_gain={"levels_um": [0.0, 1.0], "gain": [0.5, 2.0], "in_focus_below": None})
    img = np.random.default_rng(3).integers(0, 255, (128, 192, 3), dtype=np.uint8)
    with FocusRuntime.load(identity_model, ladder=False, warmup=5) as rt:
        assert rt.restore(img).focus_map is None
        assert "virtualfocus.focus_map_um" not in rt.restore(img).metadata()
    with FocusRuntime.load(identity_model, ladder=False, warmup=5, focus_map=True) as rt:
        frame = rt.restore(img)
    assert frame.status is FrameStatus.RESTORED and frame.message == ""
    fm = frame.focus_map
    assert isinstance(fm, FocusMap) and fm.shape == (2, 3)
    # The identity model: gain 1 everywhere → 1/3 µm on the frame calibration (0.5 → 0 µm, 2.0 → 1 µm).
    np.testing.assert_allclose(fm.um, 1 / 3, atol=1e-3)
    md = frame.metadata()
    assert np.allclose(md["virtualfocus.focus_map_um"], 1 / 3, atol=1e-3)
    assert md["virtualfocus.focus_map_edges"] == [[0, 64, 128], [0, 64, 128, 192]]
    assert md["virtualfocus.focus_map_untrusted_share"] == 0.0


def test_the_per_tile_calibration_wins_over_the_frame_one(identity_model):
    _with(identity_model, focus_gain={"levels_um": [0.0, 1.0], "gain": [0.5, 2.0], "in_focus_below": None},
          focus_map_gain={"levels_um": [0.0, 1.6], "gain": [0.5, 1.0], "in_focus_below": None, "stacks": 1})
    img = np.random.default_rng(4).integers(0, 255, (64, 64), dtype=np.uint8)  # gray: its only channel
    with FocusRuntime.load(identity_model, ladder=False, warmup=5, focus_map=True) as rt:
        frame = rt.restore(img)
    assert frame.focus_map is not None and frame.focus_map.shape == (1, 1)
    assert frame.focus_map.um[0, 0] == pytest.approx(1.6)
    assert frame.focus_map.untrusted_share == 1.0  # 1.6 µm: outside the default ±0.8 µm


def test_runtime_says_why_there_is_no_map(identity_model):
    img = np.random.default_rng(5).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    with FocusRuntime.load(identity_model, ladder=False, warmup=5, focus_map=True) as rt:
        frame = rt.restore(np.random.default_rng(6).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        assert frame.focus_map is None and "has no restoration-gain calibration" in frame.message
    _with(identity_model, focus_gain={"levels_um": [0.0, 1.0], "gain": [0.5, 2.0], "in_focus_below": None})
    with FocusRuntime.load(identity_model, ladder=False, warmup=5, focus_map=True) as rt:
        frame = rt.restore(img)  # restored as usual, without a map
    assert frame.status is FrameStatus.RESTORED and frame.focus_map is None
    assert frame.message == "no focus map: the 40×40 capture is smaller than one 64×64 px tile"
    with pytest.raises(InputError, match="focus map tile size 8"):
        FocusRuntime.load(identity_model, ladder=False, warmup=5, focus_map=True, focus_map_tile=8)


def test_bad_focus_map_calibration_is_refused_at_load(identity_model):
    _with(identity_model, focus_map_gain={"levels_um": [0.0, 0.2], "gain": [1.0]})
    with pytest.raises(ModelLoadError, match=r"focus_map_gain.*same length"):
        Manifest.load(identity_model)


def test_shipped_model_maps_a_tilted_field():
    """vf-quality on a seeded simulated tilted field: the map follows the known per-pixel defocus."""
    from virtualfocus.simulation.tilted import tilted_captures

    caps, _, surface = tilted_captures(11, size=192, tilt_um=1.5, offsets_um=(-1.0, 0.0, 1.0))
    errs = []
    with FocusRuntime.load("vf-quality", ladder=False, warmup=5, budget_ms=1e9, pass_in_focus=False,
                           defocus_estimator=None, focus_map=True) as rt:
        for off, cap in zip((-1.0, 0.0, 1.0), caps, strict=True):
            fm = rt.restore(cap).focus_map
            assert fm is not None and fm.shape == (3, 3)
            truth = np.array([[np.abs(off + surface[fm.y_edges[i]:fm.y_edges[i + 1], fm.x_edges[j]:fm.x_edges[j + 1]]).mean()
                               for j in range(3)] for i in range(3)])
            errs.append(np.abs(fm.um - truth))
    assert float(np.mean(errs)) < 0.4  # benchmarks/focus_map.py measures it on many fields
