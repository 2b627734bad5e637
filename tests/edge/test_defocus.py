"""DefocusClassifier: signed estimates, the training's normalisation, every capture kind, bad input, manifests,
shipped.json, and DriftMonitor using the runtime's classifier."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from virtualfocus.edge import DefocusClassifier, DefocusEstimate, FocusRuntime, InputError, ModelLoadError
from virtualfocus.edge.defocus import crop_boxes, in_trusted_range
from virtualfocus.edge.integrations import DriftMonitor, FrameStream
from virtualfocus.edge.manifest import Manifest
from virtualfocus.edge.models import resolve_model, shipped

from tests.edge.helpers import TINY_DEFOCUS_CROP, make_model_folder, tiny_defocus_classifier

THESIS_CLASSES = tuple(round(-1.4 + 0.2 * i, 1) for i in range(14))


def _capture(shape=(120, 100, 3), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, 4096 if dtype == np.uint16 else 256, shape).astype(dtype)
    return rng.random(shape).astype(dtype)


def test_estimates_are_signed_probability_weighted_means(defocus_negative, defocus_positive):
    neg = DefocusClassifier.load(defocus_negative, threads=1)
    pos = DefocusClassifier.load(defocus_positive, threads=1)
    img = _capture()
    a, b = neg.estimate(img), pos.estimate(img)
    assert a.signed and b.signed
    assert a.defocus_um == pytest.approx(-1.4, abs=0.05) and b.defocus_um == pytest.approx(1.2, abs=0.05)
    assert 0.9 < a.confidence <= 1.0 and 0.9 < b.confidence <= 1.0
    p = neg.probabilities(img)
    assert p.shape == (14,) and p.sum() == pytest.approx(1.0)
    assert a.defocus_um == pytest.approx(float(np.dot(p, neg.classes_um)))
    assert tuple(neg.classes_um) == THESIS_CLASSES and neg.crop == TINY_DEFOCUS_CROP
    # The mid-point of a pair is the mean of the two captures' defocus.
    pair = neg.estimate_pair([img, img], [0.0, 0.6])
    assert pair.signed and pair.defocus_um == pytest.approx(a.defocus_um)
    with pytest.raises(InputError, match="two different focus positions"):
        neg.estimate_pair([img, img], [0.3, 0.3])


@pytest.mark.parametrize(("backend", "precision"), [("onnxruntime", "default"), ("openvino", "f32")])
def test_matches_torch_on_crops_normalised_like_training(defocus_model, backend, precision):
    torch = pytest.importorskip("torch")
    from virtualfocus.edge.preprocess import to_unit
    from virtualfocus.training.datasets import _to_tensor

    _, net = tiny_defocus_classifier(seed=0)  # the weights the fixture exported
    est = DefocusClassifier.load(defocus_model, backend=backend, precision=precision, threads=1)
    img = _capture((150, 130, 3))
    s = TINY_DEFOCUS_CROP
    boxes = crop_boxes(150, 130, s)
    assert len(boxes) == 5 and boxes[0] == (round(75 - s / 2), round(65 - s / 2))  # centre first
    probs = []
    with torch.no_grad():
        for top, left in boxes:
            unit, _ = to_unit(img[top:top + s, left:left + s])  # the training data path: to_unit, then ×2−1
            probs.append(torch.softmax(net(_to_tensor(unit)[None]), dim=1)[0].numpy())
    np.testing.assert_allclose(est.probabilities(img), np.mean(probs, axis=0), atol=1e-5)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((64, 64), np.uint8), ((100, 80, 1), np.uint16), ((70, 90, 3), np.float32), ((80, 80, 4), np.uint8),
     ((64, 200, 3), np.float64)],
)
def test_accepts_gray_rgb_rgba_uint8_uint16_float(defocus_model, shape, dtype):
    est = DefocusClassifier.load(defocus_model, threads=1)
    img = _capture(shape, dtype)
    e = est.estimate(img)
    p = est.probabilities(img)
    # the estimate is the expected class centre under the classifier's averaged probabilities, its confidence the
    # largest of them: both computed from this capture, whatever its layout and dtype
    assert p.shape == (len(est.classes_um),) and p.sum() == pytest.approx(1.0, abs=1e-5)
    assert e.signed and e.defocus_um == pytest.approx(float(np.dot(p, est.classes_um)), abs=1e-6)
    assert e.confidence == pytest.approx(float(p.max()), abs=1e-6)


def test_gray_is_estimated_as_its_rgb_repeat_and_alpha_is_ignored(defocus_model):
    est = DefocusClassifier.load(defocus_model, backend="onnxruntime", threads=1)
    gray = _capture((96, 96))
    rgb = np.repeat(gray[..., None], 3, axis=2)
    rgba = np.concatenate([rgb, np.zeros((96, 96, 1), np.uint8)], axis=2)
    assert est.estimate(gray).defocus_um == pytest.approx(est.estimate(rgb).defocus_um, abs=1e-6)
    assert est.estimate(rgba).defocus_um == pytest.approx(est.estimate(rgb).defocus_um, abs=1e-6)
    # a 12-bit capture in uint16 (values 0..4095) is the 8-bit capture scaled: the same estimate
    eight = _capture((100, 100))
    twelve = (eight.astype(np.uint16) * 4095 + 127) // 255
    assert est.estimate(twelve, bit_depth=12).defocus_um == pytest.approx(est.estimate(eight).defocus_um, abs=0.02)


def test_bad_input_is_a_clear_one_line_error(defocus_model):
    est = DefocusClassifier.load(defocus_model, threads=1)
    with pytest.raises(InputError) as e:
        est.estimate(np.zeros((40, 300, 3), np.uint8))
    msg = str(e.value)
    assert "40×300" in msg and f"at least {TINY_DEFOCUS_CROP}" in msg and "\n" not in msg
    with pytest.raises(InputError, match="expected a 2-D gray"):
        est.estimate([[1, 2], [3, 4]])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="shape"):
        est.estimate(np.zeros((64, 64, 2), np.uint8))
    with pytest.raises(InputError, match="crops=3"):
        DefocusClassifier.load(defocus_model, crops=3)


def test_one_crop_looks_at_the_centre_only(defocus_model):
    one = DefocusClassifier.load(defocus_model, crops=1, threads=1)
    img = _capture((200, 200, 3))
    s = TINY_DEFOCUS_CROP
    c = (200 - s) // 2
    centre = img[c:c + s, c:c + s]
    assert one.boxes(200, 200) == [(c, c)]
    assert one.estimate(img).defocus_um == pytest.approx(one.estimate(centre).defocus_um, abs=1e-6)
    assert crop_boxes(s, s, s) == [(0, 0)]  # a capture the size of the crop: the five windows coincide


def test_load_refuses_a_restoring_model_and_tampered_files(defocus_model, identity_model, tmp_path):
    with pytest.raises(ModelLoadError, match="defocus"):
        DefocusClassifier.load(identity_model)
    with pytest.raises(ModelLoadError, match="not a restoring one"):
        FocusRuntime.load(defocus_model, ladder=False, warmup=5)
    bad = tmp_path / "tampered"
    shutil.copytree(defocus_model, bad)
    data = bytearray((bad / "model.bin").read_bytes())
    data[100] ^= 0xFF
    (bad / "model.bin").write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        DefocusClassifier.load(bad)


def test_manifest_task_fields_are_optional_and_checked(defocus_model, identity_model, tmp_path):
    m = Manifest.load(defocus_model)
    assert m.task == "defocus" and m.classes_um == THESIS_CLASSES and m.input.static_size == (64, 64)
    raw = json.loads((identity_model / "manifest.json").read_text())
    raw.pop("task")
    raw.pop("classes_um")  # a manifest written before the fields existed
    (identity_model / "manifest.json").write_text(json.dumps(raw))
    assert Manifest.load(identity_model).task == "restore"
    for change, match in (({"task": "deblur"}, "task='deblur'"), ({"task": "defocus"}, "classes_um"),
                          ({"classes_um": [0.0, 0.2]}, "only meaningful"), ({"classes": [1]}, "unknown key")):
        (identity_model / "manifest.json").write_text(json.dumps({**raw, **change}))
        with pytest.raises(ModelLoadError, match=match):
            Manifest.load(identity_model)


def test_trusted_range_rule():
    assert in_trusted_range(DefocusEstimate(0.5, True), (-0.8, 0.8)) is True
    assert in_trusted_range(DefocusEstimate(-0.9, True), (-0.8, 1.0)) is False
    assert in_trusted_range(DefocusEstimate(0.9, False), (-0.8, 1.0)) is False  # a magnitude: nearer bound
    assert in_trusted_range(DefocusEstimate(None, True), (-0.8, 0.8)) is None


def _write_shipped(root, **extra):
    (root / "shipped.json").write_text(json.dumps({"format": "virtualfocus-shipped/1", "default": "fast",
                                                   "ladder": ["fast"], **extra}))


def test_shipped_json_names_the_estimator_or_null(tmp_path, monkeypatch, defocus_model, caplog):
    root = tmp_path / "models"
    make_model_folder(root / "fast", name="fast")
    monkeypatch.setenv("VIRTUALFOCUS_MODELS", str(root))
    _write_shipped(root, two_shot=None, defocus_estimator=None)
    assert shipped().defocus_estimator is None
    with FocusRuntime.load(warmup=5) as rt:  # "auto" with nothing shipped: no estimator, frames say trusted=None
        assert rt.defocus_estimator is None
        assert rt.restore(_capture()).trusted is None
    shutil.copytree(defocus_model, root / "vf-focus-distance")
    _write_shipped(root, defocus_estimator="vf-focus-distance")
    assert shipped().defocus_estimator == "vf-focus-distance"
    with FocusRuntime.load(warmup=5) as rt:
        assert isinstance(rt.defocus_estimator, DefocusClassifier)
        assert "defocus estimator vf-focus-distance" in str(rt.load_report)
        assert rt.restore(_capture()).trusted is not None
    with FocusRuntime.load(warmup=5, defocus_estimator=None) as rt:
        assert rt.defocus_estimator is None
    _write_shipped(root, defocus_estimator="vf-focus-distance", in_focus_band_um=[-0.2, 0.4])
    assert shipped().in_focus_band_um == (-0.2, 0.4)
    with FocusRuntime.load(warmup=5) as rt:  # the shipped band comes with the shipped estimator
        assert rt.in_focus_band_um == (-0.2, 0.4)
    with FocusRuntime.load(warmup=5, in_focus_band_um=None) as rt:
        assert rt.in_focus_band_um is None
    _write_shipped(root, defocus_estimator="missing")  # named but absent: logged, runtime still loads
    with FocusRuntime.load(warmup=5) as rt:
        assert rt.defocus_estimator is None
    assert "could not load the shipped defocus estimator missing" in caplog.text
    for bad, match in (({"defocus_estimator": 3}, "defocus_estimator=3"), ({"defocus_estimator": "../x"}, "folder name"),
                       ({"estimator": None}, "unknown key"), ({"in_focus_band_um": [0.4, -0.2]}, "low ≤ high"),
                       ({"in_focus_band_um": "sharp"}, "in_focus_band_um")):
        _write_shipped(root, **bad)
        with pytest.raises(ModelLoadError, match=match):
            shipped()


def test_repository_shipped_json_is_valid():
    import virtualfocus.models as pkg

    root = Path(pkg.__file__).parent
    ship = shipped(root)
    assert ship.defocus_estimator is None or (root / ship.defocus_estimator / "manifest.json").is_file()
    if ship.defocus_estimator is not None:
        assert resolve_model(ship.defocus_estimator).manifest.task == "defocus"


def test_drift_monitor_uses_the_runtime_classifier_without_estimating_twice(identity_model, defocus_negative):
    with FocusRuntime.load(identity_model, ladder=False, warmup=5, threads=1, budget_ms=1e4,
                           defocus_estimator=defocus_negative) as rt:
        mon = DriftMonitor.for_runtime(rt, confirm=1)
        assert mon.estimator is rt.defocus_estimator
        calls = []
        inner = rt.defocus_estimator.estimate_unit
        rt.defocus_estimator.estimate_unit = lambda unit, **kw: calls.append(1) or inner(unit, **kw)
        got = []
        stream = FrameStream(rt, on_frame=got.append, telemetry=mon)
        for i in range(4):
            stream.push(_capture(seed=i), {"i": i})
        stream.close()
    assert len(got) == 4 and len(calls) == 4  # one estimate per frame: the monitor reused the runtime's
    for f in got:
        assert f.drift.signed and f.drift.defocus_um == pytest.approx(f.frame.defocus_um)
        assert f.metadata["virtualfocus.defocus_um"] == pytest.approx(-1.4, abs=0.05)
        assert f.metadata["virtualfocus.trusted"] is False  # −1.4 µm is outside the default −0.8…+0.8 µm
    assert mon.summary()["out_of_range"] == 4
