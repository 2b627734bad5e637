"""Semi-synthetic stacks from a 'real' sharp image — here a simulated sharp field (tests never read ../shared)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from virtualfocus.edge import metrics as M
from virtualfocus.edge.errors import InputError
from virtualfocus.simulation import semisynthetic as S
from virtualfocus.simulation.simulate import SimConfig, simulate_stack
from virtualfocus.zstacks.stack import read_stack

CFG = SimConfig(size=128)


@pytest.fixture(scope="module")
def sharp() -> tuple[np.ndarray, list[list[int]]]:
    s = simulate_stack(9, config=SimConfig(size=256, noise=False, flicker=0.0))
    return s.sharp, s.meta["nucleus_centres"]


def test_segmentation_finds_the_white_cell(sharp: tuple[np.ndarray, list[list[int]]]) -> None:
    img, centres = sharp
    seg = S.segment_cells(img, pixel_um=0.1)
    assert "wbc" in seg.kinds.values()
    assert sum(1 for v in seg.kinds.values() if v == "rbc") >= 3
    found = seg.nucleus_centres()
    assert found and np.hypot(found[0][0] - centres[0][0], found[0][1] - centres[0][1]) < 20


def test_semisynthetic_stack_is_a_defocus_series(sharp: tuple[np.ndarray, list[list[int]]]) -> None:
    img, _ = sharp
    s = S.semisynthetic_stack(img, 3, config=CFG, source_pixel_um=0.1, name="semi-test")
    assert s.planes.shape == (17, 128, 128, 3)
    # ground truth = highest F, normally the centre plane (one plane off when the cell depths make a plateau)
    c = s.sharp_index
    assert abs(c - 8) <= 1 and s.offsets_um[c] == 0.0
    assert s.meta["source"] == "semisynthetic" and s.meta["cell_counts"]["wbc"] >= 1
    f = M.focus_curve(s.planes)
    assert f.argmax() == c and f[0] < 0.6 * f[c] and f[-1] < 0.6 * f[c]
    # the in-focus render stays close to the real image it came from (its content is the image's)
    again = S.semisynthetic_stack(img, 3, config=CFG, source_pixel_um=0.1, name="semi-test")
    assert np.array_equal(again.planes, s.planes)
    y0, x0 = s.meta["crop_origin"]
    assert M.mse(img[y0 : y0 + 128, x0 : x0 + 128], s.sharp) < 30


def test_resampling_and_size_checks(sharp: tuple[np.ndarray, list[list[int]]]) -> None:
    img, _ = sharp
    half = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)  # as if imaged at 0.2 µm/px
    s = S.semisynthetic_stack(half, 1, config=CFG, source_pixel_um=0.2)
    assert s.planes.shape[1:3] == (128, 128)
    with pytest.raises(InputError, match="need at least"):
        S.semisynthetic_stack(img[:64, :64], 1, config=CFG, source_pixel_um=0.1)
    with pytest.raises(InputError, match="NaN"):
        S.semisynthetic_stack(np.full((200, 200, 3), np.nan, np.float32), 1, config=CFG)


def test_cli_writes_stacks_and_skips_bad_images(
    sharp: tuple[np.ndarray, list[list[int]]], tmp_path: Path
) -> None:
    img, _ = sharp
    src = tmp_path / "images"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), img[..., ::-1])
    (src / "b.jpg").write_bytes(b"broken")
    out = tmp_path / "out"
    rc = S.main(
        ["--images", str(src), "--out", str(out), "--seed", "4", "--size", "128", "--source-pixel-um", "0.1"]
    )
    assert rc == 0
    st = read_stack(out / "semi-a-0.tif")
    assert st.planes.shape == (17, 128, 128, 3) and st.meta["seed"] == 4
    written, skipped = S.semisynthetic_stacks(src, tmp_path / "out2", seed=4, config=CFG, limit=2)
    assert len(written) == 1 and skipped[0][0].endswith("b.jpg") and "unreadable" in skipped[0][1]
