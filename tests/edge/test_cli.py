"""The `virtualfocus` command: restore keeps good results when some inputs are bad; models lists variants."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from virtualfocus.cli import main
from virtualfocus.edge.errors import InputError
from virtualfocus.edge.imageio import read_image, write_image_atomic

from tests.edge.helpers import use_shipped_models


@pytest.fixture
def shipped_root(tmp_path, monkeypatch):
    return use_shipped_models(tmp_path, monkeypatch, "fast")


def _inputs(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    good = {
        "rgb.png": rng.integers(0, 255, (60, 70, 3), dtype=np.uint8),
        "gray16.tif": rng.integers(0, 4095, (50, 40), dtype=np.uint16),
        "rgba.png": rng.integers(0, 255, (40, 40, 4), dtype=np.uint8),
        "photo.jpg": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
    }
    for name, img in good.items():
        write_image_atomic(folder / name, img)
    (folder / "empty.png").write_bytes(b"")
    (folder / "garbage.tif").write_bytes(b"II*\x00not really a tiff")
    data = (folder / "rgb.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "tiny.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())
    (folder / "notes.txt").write_text("not an image")
    return good


def test_restore_keeps_good_results_reports_bad_files_and_exits_nonzero(shipped_root, tmp_path, capsys):
    src = tmp_path / "in"
    good = _inputs(src)
    out = tmp_path / "out"
    files = [str(p) for p in sorted(src.iterdir())]
    code = main(["restore", *files, "--out", str(out), "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    bad_lines = [line for line in err if line.startswith("error:")]
    assert len(bad_lines) == 5  # empty, garbage, truncated, tiny, txt: one line each, no traceback
    assert not any("Traceback" in line for line in err)
    assert any("truncated.png" in line and "truncated" in line for line in bad_lines)
    assert any("notes.txt" in line and "extension" in line for line in bad_lines)
    for name, img in good.items():
        back = read_image(out / name)
        assert back.shape == img.shape and back.dtype == img.dtype
        if not name.endswith(".jpg"):
            np.testing.assert_array_equal(back, img)  # identity model, lossless formats
    assert not list(out.glob(".*"))  # no temp files left behind
    report = json.loads((tmp_path / "r.json").read_text())
    assert sum(r["ok"] for r in report["results"]) == 4


def test_restore_refuses_to_overwrite_its_input(shipped_root, tmp_path, capsys):
    img = np.zeros((32, 32), np.uint8)
    write_image_atomic(tmp_path / "a.png", img)
    assert main(["restore", str(tmp_path / "a.png"), "--out", str(tmp_path)]) == 1
    assert "overwrite" in capsys.readouterr().err


def test_models_lists_the_untrained_default(shipped_root, capsys):
    assert main(["models"]) == 0
    text = capsys.readouterr().out
    assert "fast" in text and "UNTRAINED" in text and "default" in text
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["default"] == "fast" and data["models"][0]["trained"] is False


def test_models_shows_the_fastest_measured_paths(shipped_root, capsys):
    manifest = shipped_root / "fast" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["latency_ms"] = {name: {"p50": p50, "p95": p50 * 1.2, "mean": p50, "runs": 50.0} for name, p50 in
                       [("onnxruntime/fp32", 26.7), ("onnxruntime/int8", 13.3), ("openvino/fp32", 12.3),
                        ("openvino/int8", 8.5)]}
    manifest.write_text(json.dumps(m))
    assert main(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("fast"))
    assert "openvino/int8 8.5, openvino/fp32 12.3, onnxruntime/int8 13.3" in row and "26.7" not in row


def test_unknown_command_and_missing_model_are_one_line_errors(shipped_root, tmp_path, capsys):
    assert main(["frobnicate"]) == 2
    img = np.zeros((32, 32), np.uint8)
    write_image_atomic(tmp_path / "a.png", img)
    assert main(["restore", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--model", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown command" in err and "'nope' is not a shipped variant" in err


def test_write_refuses_16_bit_jpeg(tmp_path):
    with pytest.raises(InputError, match="16-bit"):
        write_image_atomic(tmp_path / "x.jpg", np.zeros((20, 20), np.uint16))


def test_png_with_jpg_suffix_reads_by_content(tmp_path):
    img = np.arange(400, dtype=np.uint8).reshape(20, 20)
    (tmp_path / "x.jpg").write_bytes(cv2.imencode(".png", img)[1].tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "x.jpg"), img)


def test_restore_warns_once_per_untrusted_capture_and_reports_it(shipped_root, defocus_negative, tmp_path, capsys):
    from virtualfocus.edge.manifest import Manifest

    m = Manifest.load(shipped_root / "fast")
    m.trusted_defocus_um = (0.0, 0.4)  # the test classifier answers about −1.4 µm: every capture is outside
    m.save()
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        write_image_atomic(src / f"c{i}.png", np.full((80, 90, 3), 60 + i, np.uint8))
    code = main(["restore", str(src), "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.json"),
                 "--defocus-estimator", str(defocus_negative)])
    out = capsys.readouterr()
    warnings = [line for line in out.err.splitlines() if line.startswith("warning:")]
    assert code == 0 and len(warnings) == 2
    assert all("outside fast's trusted range +0.0…+0.4 µm" in w and "-1.4" in w for w in warnings)
    assert "2 untrusted" in out.out
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["trusted"] for r in results] == [False, False]
    assert all(r["defocus_um"] == pytest.approx(-1.4, abs=0.05) for r in results)
    assert (tmp_path / "out" / "c0.png").is_file()
    # Without an estimator the results say so (None), and nothing is flagged.
    assert main(["restore", str(src), "--out", str(tmp_path / "out2"), "--json", str(tmp_path / "r2.json"),
                 "--defocus-estimator", "none"]) == 0
    assert "warning:" not in capsys.readouterr().err
    assert [r["trusted"] for r in json.loads((tmp_path / "r2.json").read_text())["results"]] == [None, None]


def test_models_lists_the_defocus_estimator(shipped_root, defocus_model, capsys):
    import shutil

    shutil.copytree(defocus_model, shipped_root / "focus")
    (shipped_root / "shipped.json").write_text(json.dumps({"format": "virtualfocus-shipped/1", "default": "fast",
                                                           "ladder": ["fast"], "defocus_estimator": "focus"}))
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["defocus_estimator"] == "focus"
    row = next(r for r in data["models"] if r["name"] == "focus")
    assert row["task"] == "defocus" and row["roles"] == ["defocus estimator"] and len(row["classes_um"]) == 14
    assert main(["models"]) == 0
    assert "defocus estimator, classes -1.4…+1.2 µm" in capsys.readouterr().out
