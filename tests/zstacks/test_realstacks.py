"""Real-stack loaders and preprocessing, on stacks the simulator makes (tests never read ../shared)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.simulation.simulate import SimConfig, simulate_stack
from virtualfocus.zstacks import realstacks as R
from virtualfocus.zstacks.stack import ZStack


@pytest.fixture(scope="module")
def stack() -> ZStack:
    return simulate_stack(5, config=SimConfig(size=192))


def _write_folder(folder: Path, planes: np.ndarray, names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True)
    for i, p in enumerate(planes):
        img = p[..., ::-1] if p.ndim == 3 else p
        cv2.imwrite(str(folder / (names[i] if names else f"plane_{i:02d}.png")), img)
    return folder


def test_folder_of_images_finds_ground_truth(stack: ZStack, tmp_path: Path) -> None:
    s = R.load_stack(_write_folder(tmp_path / "f", stack.planes))
    assert s.sharp_index == stack.sharp_index
    assert np.allclose(s.offsets_um, stack.offsets_um)
    assert np.array_equal(s.planes, stack.planes)


def test_offsets_parsed_from_file_names(stack: ZStack, tmp_path: Path) -> None:
    names = [f"z{o:+.1f}um.png" for o in stack.offsets_um[::2]]
    s = R.load_stack(_write_folder(tmp_path / "n", stack.planes[::2], names))
    assert np.allclose(s.meta["nominal_offsets_um"], stack.offsets_um[::2])


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("gray", [False, True])
def test_multipage_tiff_8_16_bit_gray_rgb(stack: ZStack, tmp_path: Path, bits: int, gray: bool) -> None:
    import tifffile

    planes = stack.planes[..., 1] if gray else stack.planes
    if bits == 16:
        planes = planes.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "s.tif", planes)
    s = R.load_stack(tmp_path / "s.tif")
    assert s.planes.dtype == planes.dtype and s.planes.shape == planes.shape
    assert s.sharp_index == stack.sharp_index


def test_bad_stacks_name_the_file(stack: ZStack, tmp_path: Path) -> None:
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match=r"broken\.tif"):
        R.load_stack(bad)
    one = _write_folder(tmp_path / "one", stack.planes[:1])
    with pytest.raises(InputError, match="at least 2"):
        R.load_stack(one)
    mixed = _write_folder(tmp_path / "mixed", stack.planes[:2])
    cv2.imwrite(str(mixed / "plane_09.png"), stack.planes[0][:50])
    with pytest.raises(InputError, match="different sizes"):
        R.load_stack(mixed)
    unreadable = _write_folder(tmp_path / "unreadable", stack.planes[:2])
    (unreadable / "plane_05.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"plane_05\.png"):
        R.load_stack(unreadable)
    _good, skipped = R.load_stacks(tmp_path)
    assert {Path(p).name for p, _ in skipped} >= {"broken.tif", "one", "mixed", "unreadable"}


def test_recentre_discards_peaks_outside_the_band(stack: ZStack) -> None:
    nominal = stack.offsets_um + 0.2  # microscope's 0 was one plane off: still in the band
    r = R.recentre(stack, nominal=nominal)
    assert r is not None and r.sharp_index == stack.sharp_index
    assert r.meta["peak_nominal_um"] == pytest.approx(0.2)
    assert R.recentre(stack, nominal=stack.offsets_um + 0.8) is None
    assert R.recentre(stack, nominal=stack.offsets_um - 0.4) is None


def test_alignment_recovers_known_subpixel_shifts(stack: ZStack) -> None:
    rng = np.random.default_rng(0)
    planes = stack.planes.copy()
    truth = {}
    for i in range(len(planes)):
        if i == stack.sharp_index or abs(stack.offsets_um[i]) > 0.8:
            continue
        dy, dx = rng.uniform(-2.5, 2.5, 2)
        truth[i] = (dy, dx)
        planes[i] = cv2.warpAffine(
            planes[i],
            np.float32([[1, 0, dx], [0, 1, dy]]),
            (192, 192),
            flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REFLECT_101,
        )
    aligned = R.align_stack(ZStack(planes, stack.offsets_um, stack.sharp_index, meta=stack.meta))
    for i, (dy, dx) in truth.items():
        sy, sx = aligned.meta["alignment_shifts_px"][i]
        assert np.hypot(sy + dy, sx + dx) < 0.2, (i, sy, sx, dy, dx)


def test_nucleus_centre_and_crops(stack: ZStack) -> None:
    y, x = stack.meta["nucleus_centres"][0]
    c = R.nucleus_centre(stack.sharp)
    assert c is not None and np.hypot(c[0] - y, c[1] - x) < 15
    rng = np.random.default_rng(1)
    a, b, off = R.random_crop_pair(stack, rng, size=128)
    assert a.shape == b.shape == (128, 128, 3) and a.dtype == np.uint8
    assert off in set(np.round(stack.offsets_um, 6))
    a2, _b2, off2 = R.random_crop_pair(stack, np.random.default_rng(1), size=128)
    assert np.array_equal(a, a2) and off == off2
    _, _, o = R.random_crop_pair(stack, rng, size=128, plane=0)
    assert o == pytest.approx(stack.offsets_um[0])
    with pytest.raises(InputError, match="crop"):
        R.random_crop_pair(stack, rng, size=400)


def test_augment_pair_same_geometry_for_input_and_target(stack: ZStack) -> None:
    x = stack.sharp[:96, :96]
    rng = np.random.default_rng(2)
    ax, ay = R.augment_pair(x, x.copy(), rng)
    assert ax.dtype == np.uint8 and ax.shape == x.shape
    assert np.array_equal(ax, ay)  # same input → same output: identical transform
    f = x.astype(np.float32) / 255
    bx, by = R.augment_pair(f, f, np.random.default_rng(3))
    assert bx.dtype == np.float32 and np.allclose(bx, by) and bx.min() >= 0 and bx.max() <= 1
    assert not np.allclose(bx, f)
    same = R.augment_pair(
        x,
        x,
        np.random.default_rng(3),
        rotation=False,
        brightness=0,
        contrast=0,
        white_balance=0,
        saturation=0,
        stain=0,
    )
    assert np.abs(same[0].astype(int) - x).max() <= 1
    with pytest.raises(InputError, match="differ"):
        R.augment_pair(x, x[:-1], rng)
