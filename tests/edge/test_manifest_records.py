"""The manifest's measured sections as typed records: the shipped manifests load into them and write back the
same JSON; an unknown key anywhere is one line naming the key and the manifest file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from virtualfocus.edge.defocus import FocusGainCalibration
from virtualfocus.edge.errors import ModelLoadError
from virtualfocus.edge.manifest import (
    Compression,
    Int8Verdict,
    Manifest,
    Parity,
    ParityCheck,
    Quality,
    QualityReport,
)

SHIPPED = sorted(Path(__file__).resolve().parents[2].glob("models/*/manifest.json"))


def _json(x):
    return json.loads(json.dumps(x))


def _without_nulls(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def test_there_are_shipped_manifests() -> None:
    assert len(SHIPPED) >= 3


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_every_shipped_manifest_loads_into_records_and_writes_back_the_same_json(path: Path) -> None:
    raw = json.loads(path.read_text())
    m = Manifest.load(path, verify=False)
    assert isinstance(m.quality, Quality) and isinstance(m.parity, Parity) and isinstance(m.compression, Compression)
    assert isinstance(m.focus_gain, FocusGainCalibration) and m.focus_gain.in_focus_below is not None
    out = _json(m.to_dict())
    assert out["quality"] == raw["quality"] and out["parity"] == raw["parity"]
    assert out["compression"] == _without_nulls(raw["compression"])  # a null field is left out, read back as None
    assert out["focus_gain"] == raw["focus_gain"]
    # what the CLI and the reports read, typed
    rep = m.quality.report
    assert rep is not None and rep.success_mse_08 == raw["quality"]["report"]["success_mse_08"]
    assert rep.shown is rep.deployed and rep.deployed is not None and rep.deployed.success_mse_08 is not None
    assert m.quality.scores("input") == raw["quality"]["input"] and m.quality.scores("openvino/int4") is None
    assert m.parity.float_checks["onnxruntime/fp32"].passed is True
    assert all(isinstance(v, Int8Verdict) for v in m.parity.int8.values())
    assert m.compression.latency_size == tuple(raw["compression"]["latency_size"])
    assert set(m.compression.dropped) == set(raw["compression"]["dropped"])


def test_records_round_trip_through_a_saved_manifest(identity_model: Path) -> None:
    m = Manifest.load(identity_model)
    check = ParityCheck("onnxruntime/fp32", 1e-7, {"random": 1e-7}, 1e-4, True)
    m.quality = Quality(validation={"stacks": 2}, metrics="virtualfocus.edge.metrics",
                        measured={"input": {"psnr": 30.0}, "openvino/fp32": {"psnr": 31.0}},
                        report=QualityReport(success_mse_08=90.0, fr_range=(0.5, 1.0),
                                             deployed=QualityReport(success_mse_08=95.0)))
    m.parity = Parity(method="max", inputs={"random": (1, 3, 32, 32)}, float_checks={"onnxruntime/fp32": check},
                      passed=True, int8={"openvino": Int8Verdict(0.1, 0.01, 0.3, 0.02, True)})
    m.compression = Compression(params=10, gflops=0.5, latency_size=(32, 32), dropped={"model-int8.xml": "slower"})
    m.focus_gain = FocusGainCalibration((0.0, 1.0), (1.0, 2.0), in_focus_below=1.1, stacks=2)
    m.save()
    back = Manifest.load(identity_model)
    assert (back.quality, back.parity, back.compression, back.focus_gain) == (m.quality, m.parity, m.compression,
                                                                                m.focus_gain)
    assert back.quality.report is not None and back.quality.report.shown.success_mse_08 == 95.0
    # an empty section writes as an empty object, as before
    m.quality, m.parity, m.compression = Quality(), Parity(), Compression()
    assert _json(m.to_dict())["quality"] == {} and m.to_dict()["parity"] == {} and m.to_dict()["compression"] == {
        "params": 0, "gflops": 0.0, "gmacs": 0.0}


@pytest.mark.parametrize(("section", "value", "key"), [
    ("quality", {"metrics": "m", "succes_mse_08": 1.0}, "succes_mse_08"),
    ("quality", {"report": {"success_mse_08": 1.0, "sucess_fpw_08": 2.0}}, "sucess_fpw_08"),
    ("quality", {"report": {"deployed": {"fr_rang": [0, 1]}}}, "fr_rang"),
    ("quality", {"tensorrt/fp32": {"psnr": 1.0}}, "tensorrt/fp32"),
    ("parity", {"passed": True, "pased": True}, "pased"),
    ("parity", {"float": {"onnxruntime/fp32": {"candidate": "x", "rel_error": 0.0, "tol": 1.0}}}, "tol"),
    ("parity", {"int8": {"openvino": {"psnr_drop_db": 0.1, "fr_change": 0.0, "max_psnr_drop_db": 0.3,
                                       "max_fr_change": 0.02, "passed": True, "extra": 1}}}, "extra"),
    ("compression", {"params": 1, "gflop": 2.0}, "gflop"),
    ("focus_gain", {"levels_um": [0, 1], "gain": [1, 2], "in_focus_bellow": 1.1}, "in_focus_bellow"),
])
def test_an_unknown_key_is_one_line_naming_it_and_the_file(identity_model: Path, section: str, value: dict,
                                                            key: str) -> None:
    path = identity_model / "manifest.json"
    raw = json.loads(path.read_text())
    raw[section] = value
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError) as e:
        Manifest.load(identity_model)
    msg = str(e.value)
    assert "\n" not in msg and repr(key) in msg and str(path) in msg and section in msg


def test_a_measured_path_must_be_input_or_backend_slash_precision() -> None:
    q = Quality().with_scores("openvino/int8", {"psnr": 1.0})
    assert q.scores("openvino/int8") == {"psnr": 1.0} and q.to_dict() == {"openvino/int8": {"psnr": 1.0}}
    with pytest.raises(Exception, match="not a measured path"):
        q.with_scores("report", {})
