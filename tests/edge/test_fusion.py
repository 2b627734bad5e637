"""Multi-focus fusion: on simulated tilted fields (known all-in-focus truth) the fused image beats every single
plane; bad input is one clear error; the CLI writes the fused file."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from virtualfocus.cli import main
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.fusion import fuse_planes
from virtualfocus.edge.imageio import read_image, write_image_atomic
from virtualfocus.simulation.tilted import tilted_captures


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _tilted_field(seed: int, size: int = 360) -> tuple[list[np.ndarray], np.ndarray]:
    captures, truth, _ = tilted_captures(seed, size=size)
    return captures, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fusion_beats_the_best_single_plane_on_tilted_fields(seed):
    captures, truth = _tilted_field(seed)
    fused = fuse_planes(captures)
    assert fused.shape == truth.shape and fused.dtype == np.uint8
    best_single = max(_psnr(c, truth) for c in captures)
    assert _psnr(fused, truth) > best_single + 0.5


def test_fusion_keeps_layout_and_identical_captures():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65535, (40, 48, 4), dtype=np.uint16)
    out = fuse_planes([img, img.copy()])
    assert out.shape == img.shape and out.dtype == img.dtype
    np.testing.assert_allclose(out.astype(float), img.astype(float), atol=2)  # same plane twice: itself
    gray = rng.integers(0, 255, (32, 32, 1), dtype=np.uint8)
    assert fuse_planes([gray, gray]).shape == (32, 32, 1)


@pytest.mark.parametrize(("captures", "match"), [
    ([np.zeros((32, 32), np.uint8)], "at least 2 captures"),
    ([np.zeros((32, 32), np.uint8), np.zeros((32, 40), np.uint8)], "same size"),
    ([np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint16)], "pixel type"),
    ([np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)], "at least 16×16"),
])
def test_bad_input_is_one_clear_error(captures, match):
    with pytest.raises(InputError, match=match):
        fuse_planes(captures)


def test_cli_fuses_files_and_a_tiff_stack(tmp_path, capsys):
    captures, truth = _tilted_field(3)
    files = []
    for k, c in enumerate(captures):
        files.append(str(write_image_atomic(tmp_path / f"z{k}.png", c)))
    assert main(["fuse", *files, "--out", str(tmp_path / "fused.png")]) == 0
    fused = read_image(tmp_path / "fused.png")
    assert _psnr(fused, truth) > max(_psnr(c, truth) for c in captures)
    tifffile.imwrite(tmp_path / "stack.tif", np.stack(captures), photometric="rgb")
    assert main(["fuse", str(tmp_path / "stack.tif"), "--out", str(tmp_path / "fused2.png")]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "fused2.png"), fused)
    write_image_atomic(tmp_path / "small.png", captures[0][:50, :60])
    assert main(["fuse", files[0], str(tmp_path / "small.png"), "--out", str(tmp_path / "bad.png")]) == 1
    assert "same size" in capsys.readouterr().err
    assert not (tmp_path / "bad.png").exists()
