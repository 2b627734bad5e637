"""``import-stacks`` on simulated stacks degraded as real ones are: shifted planes, brightness drift, file names
that do not sort as numbers, unreadable files, too few planes, mismatched sizes (tests never read ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from virtualfocus.evaluation.evaluate import evaluate, main
from virtualfocus.simulation.simulate import SimConfig, simulate_stack
from virtualfocus.zstacks import importer as I
from virtualfocus.zstacks.stack import ZStack, iter_stacks, read_stack

SIZE = 160


@pytest.fixture(scope="module")
def stack() -> ZStack:
    return simulate_stack(7, config=SimConfig(size=SIZE))


def _degrade(stack: ZStack, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planes shifted by sub-pixel amounts and with drifting exposure (darker than the ground truth, so that it
    stays the sharpest by F, and offset); returns (planes, shifts [dy, dx], gains)."""
    rng = np.random.default_rng(seed)
    out, shifts, gains = [], [], []
    for i, p in enumerate(stack.planes):
        dy, dx = (0.0, 0.0) if i == stack.sharp_index else rng.uniform(-2.5, 2.5, 2)
        g, b = (1.0, 0.0) if i == stack.sharp_index else (rng.uniform(0.9, 0.99), rng.uniform(-6, 6))
        moved = cv2.warpAffine(p.astype(np.float32), np.float32([[1, 0, dx], [0, 1, dy]]), (SIZE, SIZE),
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        out.append(np.clip(moved * g + b + 0.5, 0, 255).astype(np.uint8))
        shifts.append((dy, dx))
        gains.append(g)
    return np.stack(out), np.array(shifts), np.array(gains)


def _write(folder: Path, planes: np.ndarray, names: list[str], order: list[int] | None = None) -> Path:
    folder.mkdir(parents=True)
    for i in order if order is not None else range(len(planes)):  # creation order must not matter
        p = planes[i]
        cv2.imwrite(str(folder / names[i]), p[..., ::-1] if p.ndim == 3 else p)
    return folder


def test_degraded_fields_import_and_bad_ones_are_named(stack: ZStack, tmp_path: Path) -> None:
    planes, shifts, gains = _degrade(stack)
    n = len(planes)
    src = tmp_path / "src"
    names = [f"plane_{i + 1}.png" for i in range(n)]  # plane_10 sorts before plane_2 as text
    order = list(np.random.default_rng(1).permutation(n))
    _write(src / "field-a", planes, names, order)
    _write(src / "gray-b", planes[..., 1], [f"b{i + 1:02d}.tif" for i in range(n)])
    bad = _write(src / "broken", planes[:4], [f"z{i}.png" for i in range(4)])
    (bad / "z2.png").write_bytes(b"not a png")
    _write(src / "short", planes[:2], ["p1.png", "p2.png"])
    sizes = _write(src / "sizes", planes[:3], ["s1.png", "s2.png", "s3.png"])
    cv2.imwrite(str(sizes / "s2.png"), planes[1][:90])
    out = tmp_path / "out"
    results = {r.name: r for r in I.import_stacks(src, out)}

    assert {k for k, r in results.items() if r.ok} == {"field-a", "gray-b"}
    assert "z2.png" in results["broken"].error and "accepted:" in results["broken"].error
    assert "at least 3" in results["short"].error
    assert "cannot be registered" in results["sizes"].error
    assert sorted(p.name for p in out.iterdir()) == ["field-a.json", "field-a.tif", "gray-b.json", "gray-b.tif"]
    for line in (r.line() for r in results.values()):
        assert "\n" not in line

    s = read_stack(out / "field-a.tif")
    assert s.sharp_index == stack.sharp_index
    assert s.meta["files"] == names  # numeric order, whatever the creation or text order
    assert s.meta["offset_unit"] == "plane"
    assert s.offsets_um.tolist() == list(range(-stack.sharp_index, n - stack.sharp_index))
    reg = s.meta["registration"]
    assert reg["residual_max_px"] <= 0.5
    near = np.abs(stack.offsets_um) <= 0.8
    found = np.array([[m[1][2], m[0][2]] for m in reg["inverse_maps"]])
    err = np.hypot(*(found - shifts).T)
    assert err[near].max() < 0.25 and err.max() < 1.0, err
    # brightness and position: every plane brought back onto the undegraded capture
    means = s.planes.reshape(n, -1).mean(axis=1)
    assert np.abs(means - means[s.sharp_index]).max() < 2.0
    h, w = s.planes.shape[1:3]
    assert SIZE - 10 <= h < SIZE and SIZE - 10 <= w < SIZE  # cropped to the area every plane covers
    c = s.meta["crop"]
    orig = stack.planes[:, c["y0"] : c["y0"] + h, c["x0"] : c["x0"] + w].astype(np.float32)
    for i in np.flatnonzero(near):
        diff = cv2.GaussianBlur(s.planes[i].astype(np.float32) - orig[i], (0, 0), 3)
        assert np.abs(diff).mean() < 3.0, i  # the drift was up to 10 % (≈ 20 levels); the simulator flickers 1 %
    assert not np.allclose(gains, 1.0)
    assert read_stack(out / "gray-b.tif").planes.ndim == 3  # gray stays gray


def test_imported_stacks_feed_evaluate(stack: ZStack, tmp_path: Path) -> None:
    planes, _, _ = _degrade(stack, seed=2)
    src = _write(tmp_path / "one-field", planes, [f"img{i:03d}.bmp" for i in range(len(planes))])
    out = tmp_path / "out"
    (r,) = I.import_stacks(src, out)  # SRC may itself be one field
    assert r.ok, r.error
    stacks = list(iter_stacks(out))
    res = evaluate(lambda x: x, stacks, name="identity", ssim=False, sharp_band=(-1.0, 1.0))
    assert res.stacks == ["one-field"] and 0.0 in res.levels.tolist()
    # `evaluate --data` scores plane-step stacks per plane step, with success tables in plane steps
    assert main(["--model", "identity", "--data", str(out), "--out", str(tmp_path / "rep"), "--no-ssim"]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["info"]["offset_unit"] == "plane" and "-2.0:2.0" in rep["success"]["identity"]["MSE"]["per_interval_pct"]
    assert "| +1.0 planes |" in (tmp_path / "rep" / "report.md").read_text()


def test_z_sidecar_and_multipage_tiff_give_um(stack: ZStack, tmp_path: Path) -> None:
    import tifffile

    n = len(stack)
    src = tmp_path / "src"
    names = [f"capture-{c}.png" for c in "abcdefghijklmnopq"[:n]]
    order = list(np.random.default_rng(3).permutation(n))
    folder = _write(src / "sidecar", stack.planes, names)
    z = {names[i]: round(10.0 + 0.2 * i, 3) for i in range(n)}
    (folder / "z.csv").write_text("file,z_um\n" + "".join(f"{k},{v}\n" for k, v in
                                                          ((names[i], z[names[i]]) for i in order)))
    tifffile.imwrite(src / "paged.tif", stack.planes[..., 1], imagej=True, metadata={"spacing": 0.25,
                                                                                      "unit": "micron"})
    results = {r.name: r for r in I.import_stacks(src, tmp_path / "out")}
    assert all(r.ok for r in results.values()), [r.error for r in results.values()]
    a = read_stack(tmp_path / "out" / "sidecar.tif")
    assert a.meta["offset_unit"] == "um" and a.meta["plane_order"] == "z sidecar"
    assert np.allclose(a.offsets_um, stack.offsets_um)
    b = read_stack(tmp_path / "out" / "paged.tif")
    assert b.meta["offset_unit"] == "um"
    assert np.allclose(np.diff(b.offsets_um), 0.25)


def test_cli_exit_codes_and_lines(stack: ZStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    _write(src / "good", stack.planes[::2], [f"p{i}.png" for i in range(len(stack.planes[::2]))])
    _write(src / "few", stack.planes[:2], ["p1.png", "p2.png"])
    assert I.main([str(src), "--out", str(tmp_path / "out"), "--step-um", "0.4"]) == 3
    cap = capsys.readouterr()
    assert "imported" in cap.out and "1 of 2 fields" in cap.out
    (line,) = cap.err.strip().splitlines()
    assert line.startswith("skipped") and "few" in line and "at least 3" in line
    meta = json.loads((tmp_path / "out" / "good.json").read_text())
    assert meta["offset_unit"] == "um" and sorted(set(np.diff(meta["offsets_um"]).round(6))) == [0.4]
    assert I.main([str(src / "few"), "--out", str(tmp_path / "o2")]) == 1
