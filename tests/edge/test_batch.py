"""Batch restoration: z-stack / time-series TIFFs keep every plane, channel and their metadata; folders, globs,
--skip-existing and SIGTERM behave as a lab running a batch overnight needs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tifffile
from virtualfocus.cli import main
from virtualfocus.edge.batch import discover, read_tiff
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.imageio import write_image_atomic

from tests.edge.helpers import use_shipped_models


@pytest.fixture
def shipped_root(tmp_path, monkeypatch):
    return use_shipped_models(tmp_path, monkeypatch, "ident")


def _planes_differ(a: np.ndarray) -> None:
    # every plane distinct, so a reordered or duplicated plane cannot pass as the original
    flat = a.reshape(a.shape[0], -1)
    assert len({hash(p.tobytes()) for p in flat}) == a.shape[0]


def test_17_plane_rgb_stack_round_trips_with_order_and_metadata(shipped_root, tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 255, (17, 48, 56, 3), dtype=np.uint8)
    _planes_differ(stack)
    src = tmp_path / "stack17.tif"
    tifffile.imwrite(src, stack, photometric="rgb", description="field 12, z step 0.2 um",
                     resolution=(10.0, 10.0), metadata=None)
    out = tmp_path / "out"
    assert main(["restore", str(src), "--out", str(out), "--json", str(tmp_path / "r.json")]) == 0
    with tifffile.TiffFile(out / "stack17.tif") as tf:
        back = tf.series[0].asarray()
        assert len(tf.pages) == 17
        assert tf.pages.first.description == "field 12, z step 0.2 um"
        assert tf.pages.first.tags["XResolution"].value == (10, 1)
    assert back.shape == stack.shape and back.dtype == stack.dtype
    np.testing.assert_array_equal(back, stack)  # identity model: same planes in the same order
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["images"] == 17 and len(report["results"][0]["planes"]) == 17


@pytest.mark.parametrize(("shape", "dtype", "axes", "kwargs"), [
    ((3, 5, 40, 44), np.uint16, "TZYX", {"imagej": True, "metadata": {"axes": "TZYX", "spacing": 0.2}}),
    ((4, 40, 44, 3), np.uint8, "ZYXS", {"ome": True, "metadata": {"axes": "ZYXS"}, "photometric": "rgb"}),
    ((6, 40, 44, 4), np.uint8, "QYXS", {"photometric": "rgb", "extrasamples": ["unassalpha"]}),
    ((40, 44), np.uint16, "YX", {}),
])
def test_layouts_keep_shape_dtype_and_metadata(shipped_root, tmp_path, shape, dtype, axes, kwargs):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 4000 if dtype == np.uint16 else 255, shape).astype(dtype)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, arr, **kwargs)
    before = read_tiff(src)
    assert main(["restore", str(src), "--out", str(tmp_path / "out")]) == 0
    after = read_tiff(tmp_path / "out" / "in.tif")
    assert after.array.shape == arr.shape and after.array.dtype == arr.dtype
    np.testing.assert_array_equal(after.array, arr)
    assert after.axes == before.axes
    with tifffile.TiffFile(src) as a, tifffile.TiffFile(tmp_path / "out" / "in.tif") as b:
        assert a.is_ome == b.is_ome and a.is_imagej == b.is_imagej
        if a.is_ome:
            assert a.ome_metadata == b.ome_metadata
        if a.is_imagej:
            assert a.imagej_metadata["spacing"] == b.imagej_metadata["spacing"]


def test_unsupported_layouts_are_refused_and_nothing_is_written(shipped_root, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    two = src / "two-series.tif"
    with tifffile.TiffWriter(two) as tw:  # two differently shaped images in one file
        tw.write(np.zeros((40, 40), np.uint8))
        tw.write(np.zeros((30, 50, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(src / "five-samples.tif", np.zeros((40, 40, 5), np.uint8), planarconfig="contig",
                     photometric="minisblack")
    write_image_atomic(src / "good.png", np.full((40, 40, 3), 90, np.uint8))
    assert main(["restore", str(src), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "two-series.tif" in err and "image series" in err
    assert "five-samples.tif" in err and "samples per pixel" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]  # no partial or temp files


def test_recursive_folders_globs_and_skip_existing(shipped_root, tmp_path, capsys):
    src = tmp_path / "scans"
    (src / "day2").mkdir(parents=True)
    write_image_atomic(src / "a.png", np.full((40, 40), 10, np.uint8))
    write_image_atomic(src / "day2" / "b.png", np.full((40, 40), 20, np.uint8))
    items = discover([str(src)], tmp_path / "o", recursive=False)
    assert [i.src.name for i in items] == ["a.png"]
    items = discover([str(src)], tmp_path / "o", recursive=True)
    assert [i.dst.relative_to(tmp_path / "o").as_posix() for i in items] == ["a.png", "day2/b.png"]
    items = discover([str(src / "**" / "*.png")], tmp_path / "o")
    assert sorted(i.src.name for i in items) == ["a.png", "b.png"]
    with pytest.raises(InputError, match="matches no file"):
        discover([str(src / "*.tif")], tmp_path / "o")
    with pytest.raises(InputError, match="no such file or folder"):
        discover([str(tmp_path / "missing")], tmp_path / "o")
    out = tmp_path / "out"
    assert main(["restore", str(src), "--recursive", "--out", str(out)]) == 0
    assert (out / "day2" / "b.png").is_file()
    stamp = (out / "a.png").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["restore", str(src), "--recursive", "--out", str(out), "--skip-existing"]) == 0
    assert "2 skipped" in capsys.readouterr().out
    assert (out / "a.png").stat().st_mtime_ns == stamp


def test_sigterm_stops_between_files_without_partial_outputs(shipped_root, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(60):
        write_image_atomic(src / f"c{i:03d}.png", np.full((360, 360, 3), i, np.uint8))
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys
        from virtualfocus.cli import main
        sys.exit(main(["restore", {str(src)!r}, "--out", {str(out)!r}, "--no-progress"]))
    """)
    env = dict(os.environ, VIRTUALFOCUS_MODELS=str(shipped_root))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and any(out.glob("*.png"))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, err
    done = sorted(out.glob("*.png"))
    assert 0 < len(done) < 60
    assert not list(out.glob(".*")), "a temporary file was left behind"
    assert f"after {len(done)} of 60 file(s)" in err
