"""The standard evaluation suite on tiny sets: the shipped runtime and three baselines, one report per set and a
combined one; an imported real-like stack in plane steps; absent sources skipped and said (never ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.evaluation import baselines as B
from virtualfocus.evaluation import suite as S
from virtualfocus.evaluation.evaluate import main
from virtualfocus.simulation.simulate import SimConfig, simulate_stack
from virtualfocus.zstacks.importer import import_stacks
from virtualfocus.zstacks.stack import ZStack, iter_stacks

TINY = SimConfig(size=96)


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> list[S.EvalSet]:
    sim = [simulate_stack(s, config=TINY) for s in (11, 12)]
    tune = [simulate_stack(s, config=TINY) for s in (21,)]
    # a "real" field: raw planes in a folder, imported (plane steps: no z known)
    raw = tmp_path_factory.mktemp("raw") / "field"
    raw.mkdir()
    for i, p in enumerate(simulate_stack(31, config=TINY).planes):
        moved = cv2.warpAffine(p, np.float32([[1, 0, 0.4 * (i % 3)], [0, 1, -0.3 * (i % 2)]]), (96, 96),
                               flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
        cv2.imwrite(str(raw / f"plane_{i + 1}.png"), moved[..., ::-1])
    out = raw.parent / "imported"
    assert all(r.ok for r in import_stacks(raw, out))
    real = list(iter_stacks(out))
    return [S.EvalSet("simulated", "tiny simulated", sim, tune),
            S.EvalSet("real:field", "imported field", real, [], unit="plane", note="imported")]


def test_suite_report(sets: list[S.EvalSet], tmp_path: Path) -> None:
    res = S.run_suite("vf-quality", sets, skipped={"bccd": "source absent: nowhere"})
    assert list(res.results) == ["simulated", "real:field"]
    md = S.write_suite_report(res, tmp_path / "suite", command="virtualfocus evaluate --suite standard")
    names = {p.name for p in (tmp_path / "suite").iterdir()}
    assert {"report.md", "report.json", "psnr_gain_vs_level.png", "simulated", "real-field"} <= names
    assert (tmp_path / "suite" / "real-field" / "report.md").is_file()
    assert (tmp_path / "suite" / "real-field" / "panel_0.png").is_file()  # panels without the oracle
    data = json.loads((tmp_path / "suite" / "report.json").read_text())
    sim, real = data["sets"]["simulated"], data["sets"]["real:field"]
    assert set(sim["methods"]) == {"vf-quality", "unsharp", "richardson-lucy", "physics-wiener"}
    for m in sim["methods"].values():
        assert m["scored"] and isinstance(m["mean_psnr_gain_db"], float)
        assert len(m["psnr_gain_per_level_db"]) == len(sim["levels"]) == 17
        assert set(m["success_pct"]) == {"MSE", "FPW"} and "-0.8:0.8" in m["success_pct"]["MSE"]
    # the physics oracle helps where it knows the optics and does not apply to real stacks
    assert sim["methods"]["physics-wiener"]["mean_psnr_gain_db"] > 0
    assert not real["methods"]["physics-wiener"]["scored"]
    assert real["unit"] == "plane" and real["levels"] == [float(v) for v in range(-8, 9)]
    assert "-2.0:2.0" in real["methods"]["vf-quality"]["success_pct"]["MSE"]
    # the runtime's untouched captures are counted per level (the ground truth at least is in focus)
    for s in (sim, real):
        assert len(s["untouched_in_focus"]) == len(s["levels"])
        assert 0 <= s["untouched_defocused"] <= s["defocused_captures"]
    text = md.read_text()
    assert "source absent" in text and "| real:field | 1 | -8…+8 planes |" in text
    assert "worse than its input at" in text and "untouched" in text


def test_physics_baseline_declines_without_optics() -> None:
    s = simulate_stack(3, config=TINY)
    w = B.PhysicsWiener(nsr=0.01)
    i = int(np.argmin(np.abs(s.offsets_um + 1.0)))
    out = w(s.planes[i], s, i)
    assert out is not None and out.shape == s.planes[i].shape and out.dtype == np.uint8
    from virtualfocus.edge.metrics import mse

    assert mse(s.sharp, out) < mse(s.sharp, s.planes[i])
    bare = ZStack(s.planes, s.offsets_um, s.sharp_index, name="no-optics")
    assert w(s.planes[i], bare, i) is None


def test_absent_sources_are_skipped_and_said(tmp_path: Path) -> None:
    spec = S.SuiteSpec(name="t", sim_stacks=1, sim_tune=1)
    sets, skipped = S.build_sets(spec, tmp_path / "cache", shared=tmp_path / "no-shared")
    assert [s.key for s in sets] == ["simulated"]
    assert "absent" in skipped["bccd"] and "--real" in skipped["real"]
    again, _ = S.build_sets(spec, tmp_path / "cache", shared=tmp_path / "no-shared")  # read from the cache
    assert np.array_equal(again[0].stacks[0].planes, sets[0].stacks[0].planes)
    assert len(list((tmp_path / "cache").rglob("*.tif"))) == 2


def test_suite_and_data_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--suite and --data"):
        main(["--suite", "standard", "--model", "vf-quality", "--data", str(tmp_path), "--out", str(tmp_path)])
    with pytest.raises(InputError, match="--data DIR"):
        main(["--model", "vf-quality", "--out", str(tmp_path)])
