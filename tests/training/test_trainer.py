"""Trainer, run directory, checkpoints and the `virtualfocus train` CLI on small simulated stacks."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
import torch
from virtualfocus.edge.errors import InputError, ModelLoadError
from virtualfocus.training.checkpoint import compact_checkpoint, load_checkpoint, load_run
from virtualfocus.training.cli import main
from virtualfocus.training.config import TrainConfig, apply_overrides, read_run_config
from virtualfocus.training.datasets import (
    DataSpec,
    StackPairDataset,
    ValidationDataset,
    load_sources,
    split_stacks,
)
from virtualfocus.training.registry import get_spec

FAST = ["--crop", "32", "--workers", "0", "--no-progress", "--set", "log_every=2", "--set", "threads=2",
        "--set", "adversarial=none", "--set", "lambda_distance=0"]


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_cli_trains_saves_and_resumes(sim_stacks: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["pix2pix-dist-fast", "--data", str(sim_stacks), "--out", str(run), "--steps", "4",
                 "--val-every", "2", *FAST]) == 0
    assert "completed at step 4" in capsys.readouterr().out
    cfg, spec, state = read_run_config(run)
    assert state.step == 4 and state.stopped == "completed" and state.best_val is not None
    assert spec.name == "pix2pix-dist-fast" and spec.adversarial == "none" and cfg.crop == 32
    rows = _rows(run)
    assert [r["step"] for r in rows] == ["2", "4"]
    assert float(rows[-1]["val_psnr"]) > 0 and float(rows[-1]["input_mse"]) > 0
    # success rates are counts over the validation planes outside the sharp band: 1 validation stack of 14
    # planes (−1.4 … +1.2 µm) minus the 4 sharp-band planes = 10
    for key in ("val_win_mse", "val_win_fpw"):
        wins = float(rows[-1][key]) * 10
        assert wins == pytest.approx(round(wins), abs=1e-6) and 0 <= round(wins) <= 10, (key, rows[-1][key])
    # after 4 steps the generator cannot beat its inputs on average (the metrics are not computed on the inputs)
    assert float(rows[-1]["val_mse"]) > float(rows[-1]["input_mse"])
    # an existing run is never overwritten by accident
    assert main(["pix2pix-dist-fast", "--data", str(sim_stacks), "--out", str(run), "--steps", "4", *FAST]) == 2
    assert "--resume" in capsys.readouterr().err
    # resume continues the step count and appends to the log
    assert main(["pix2pix-dist-fast", "--out", str(run), "--resume", "--steps", "6", "--no-progress"]) == 0
    assert read_run_config(run)[2].step == 6
    assert _rows(run)[-1]["step"] == "6"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 6
    # a run's config.json starts a new run with the same settings
    again = tmp_path / "again"
    assert main([str(run / "config.json"), "--out", str(again), "--steps", "1", "--no-progress"]) == 0
    cfg2, spec2, _ = read_run_config(again)
    assert spec2 == spec and cfg2.crop == 32 and cfg2.steps == 1 and cfg2.data == (str(sim_stacks),)


def test_load_run_gives_the_saved_weights_in_eval_mode(sim_stacks: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["pix2pix-dist-fast", "--data", str(sim_stacks), "--out", str(run), "--steps", "2",
                 "--val-every", "2", *FAST, "--set", "decoder=pixelshuffle"]) == 0
    loaded = load_run(run)
    assert loaded.spec.decoder == "pixelshuffle" and loaded.step == 2 and not loaded.generator.training
    saved = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["models"]["model"]
    for k, v in loaded.generator.state_dict().items():
        assert torch.equal(v, saved[k]), k
    # an independently built network with the saved weights gives the same output only if both run in eval
    # mode (the U-Net's decoder dropout would make them differ)
    reference = loaded.spec.build()
    reference.load_state_dict(saved)
    reference.eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.generator(x), reference(x))
        assert not torch.equal(reference.train()(x), loaded.generator(x))  # the comparison can fail
    assert load_run(run, which="last").step == 2


def test_bad_run_files_raise_model_load_error(sim_stacks: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["pix2pix-dist-fast", "--data", str(sim_stacks), "--out", str(run), "--steps", "1",
                 "--val-every", "0", *FAST]) == 0
    with pytest.raises(ModelLoadError, match="which='last'"):
        load_run(run)  # never validated: no best.pt
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError, match=r"last\.pt"):
        load_run(run, which="last")
    raw = json.loads((run / "config.json").read_text())
    raw["config"]["learning_rate"] = 1
    (run / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match="learning_rate"):
        read_run_config(run)
    raw["config"].pop("learning_rate")
    raw["spec"]["filterz"] = 3
    (run / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match="filterz"):
        load_run(run, which="last")
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_run(tmp_path / "nowhere")


def test_overrides_are_typed_and_checked() -> None:
    cfg = TrainConfig(model="pix2pix-dist-fast")
    cfg, spec = apply_overrides(cfg, get_spec("pix2pix-dist-fast"),
                                {"batch_size": "8", "residual": "true", "dfeat_g_weights": "1,2",
                                 "distance_classifier": "none", "lr": "1e-3", "adversarial": "bce"})
    assert cfg.batch_size == 8 and spec.residual is True and spec.dfeat_g_weights == (1.0, 2.0)
    assert spec.distance_classifier is None and spec.lr == 1e-3
    with pytest.raises(InputError, match="model settings"):
        apply_overrides(cfg, spec, {"nonsense": "1"})
    with pytest.raises(InputError, match="integer"):
        apply_overrides(cfg, spec, {"filters": "1.5"})


def test_cli_errors_are_reported_not_raised(sim_stacks: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert main(["pix2pix-fastest", "--data", str(sim_stacks), "--out", str(tmp_path / "r")]) == 2
    assert "known models" in capsys.readouterr().err
    assert main(["pix2pix-dist-fast", "--data", str(sim_stacks), "--out", str(tmp_path / "r"), "--steps", "1",
                 "--crop", "32", "--workers", "0", "--no-progress"]) == 2
    assert "distance_classifier" in capsys.readouterr().err  # pix2pix-dist needs a trained classifier
    assert main(["pix2pix-dist-fast", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert main(["--list"]) == 0 and "tsva" in capsys.readouterr().out


def test_two_stage_distance_training(sim_stacks: Path, tmp_path: Path) -> None:
    cls = tmp_path / "cls"
    assert main(["focus-distance-classifier", "--data", str(sim_stacks), "--out", str(cls), "--steps", "2",
                 "--val-every", "2", "--crop", "32", "--workers", "0", "--no-progress", "--batch-size", "4",
                 "--set", "filters=4,8,8,8,8", "--set", "hidden=16,16", "--set", "pool_size=2"]) == 0
    # accuracy over the 14 validation crops (one per class) of the single validation stack: a count / 14
    hits = float(_rows(cls)[-1]["val_acc"]) * 14
    assert hits == pytest.approx(round(hits), abs=1e-6) and 0 <= round(hits) <= 14
    assert (cls / "checkpoints" / "best.pt").is_file()
    run = tmp_path / "dist"
    assert main(["pix2pix-dist-fast", "--data", str(sim_stacks), "--out", str(run), "--steps", "2",
                 "--val-every", "2", "--crop", "32", "--workers", "0", "--no-progress",
                 "--set", f"distance_classifier={cls}"]) == 0
    row = _rows(run)[-1]
    assert float(row["g_distance"]) > 0 and float(row["d_total"]) > 0  # distance loss and PatchGAN both active


def test_datasets_pairs_two_inputs_and_validation(sim_stacks: Path) -> None:
    refs = load_sources([str(sim_stacks)])
    assert all(r.stack is not None for r in refs)  # small folders are read into memory up front
    lazy = load_sources([str(sim_stacks)], preload_mb=0)
    assert lazy[0].stack is None and lazy[0].get().name == refs[0].name
    train, val = split_stacks(refs, val_fraction=0.25, seed=0)
    assert len(train) == 3 and len(val) == 1 and not {r.name for r in train} & {r.name for r in val}
    ds = StackPairDataset(train, DataSpec(crop=32, inputs=2, delta_um=0.6), length=8, seed=1)
    a = ds[3]
    again = StackPairDataset(train, DataSpec(crop=32, inputs=2, delta_um=0.6), length=8, seed=1)
    assert torch.equal(a["x"], again[3]["x"])  # deterministic per (seed, epoch, index), not per instance
    assert not torch.equal(StackPairDataset(train, DataSpec(crop=32, inputs=2, delta_um=0.6), length=8,
                                            seed=2)[3]["x"], a["x"])
    assert a["x"].shape == (6, 32, 32) and a["y"].shape == (3, 32, 32)
    assert -1.4 - 1e-6 <= float(a["offset"]) <= 1.2 + 1e-6
    assert float(a["x"].min()) >= -1 and float(a["x"].max()) <= 1
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["x"], a["x"])
    v = ValidationDataset(val, DataSpec(crop=32, augment=False))
    assert len(v) == 14  # −1.4 … +1.2 µm
    v2 = ValidationDataset(val, DataSpec(crop=32, augment=False))
    assert torch.equal(v[5]["x"], v2[5]["x"]) and torch.equal(v[5]["y"], v2[5]["y"])  # fixed crops, no draws
    assert not torch.equal(v[5]["x"], v[6]["x"])  # neighbouring planes differ
    sharp = [i for i in range(len(v)) if abs(float(v[i]["offset"])) < 1e-6]
    assert len(sharp) == 1 and torch.equal(v[sharp[0]]["x"], v[sharp[0]]["y"])


def test_cli_simulated_source(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["pix2pix-dist-fast", "--data", "sim:3:64:7", "--out", str(run), "--steps", "2", "--val-every",
                 "2", *FAST]) == 0
    cfg, _, state = read_run_config(run)
    assert cfg.data == ("sim:3:64:7",) and state.best_step == 2
    with pytest.raises(InputError, match="sim:N"):
        load_sources(["sim:x"])


def test_unwrap_sees_through_compile_and_ddp_wrappers() -> None:
    from virtualfocus.training.nets.unet import UNetGenerator
    from virtualfocus.training.systems import _unwrap

    g = UNetGenerator(filters=4, levels=2)
    assert _unwrap(torch.compile(g)) is g
    assert _unwrap(g) is g


def test_resume_continues_exactly_like_an_uninterrupted_run(sim_stacks: Path, tmp_path: Path) -> None:
    args = ["pix2pix-dist-fast", "--data", str(sim_stacks), "--val-every", "0", *FAST, "--set", "adversarial=bce",
            "--set", "soft_labels=true", "--set", "samples_per_epoch=12", "--batch-size", "4"]
    # 3 batches per epoch: the break at step 2 falls mid-epoch, step 5 in the next epoch
    assert main([*args, "--out", str(tmp_path / "a"), "--steps", "5"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--steps", "2"]) == 0
    assert main(["pix2pix-dist-fast", "--out", str(tmp_path / "b"), "--resume", "--steps", "5",
                 "--no-progress"]) == 0
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 5
    for net in ("model", "discriminator"):
        for k, v in a["models"][net].items():
            assert torch.equal(v, b["models"][net][k]), f"{net}.{k}"


def test_log_gains_new_columns_on_resume(tmp_path: Path) -> None:
    from virtualfocus.training.trainer import _CsvLog

    path = tmp_path / "log.csv"
    _CsvLog(path, ["step", "loss"]).write({"step": 1, "loss": 0.5})
    log = _CsvLog(path, ["step", "loss", "val_win_mse"])
    log.write({"step": 2, "loss": 0.25, "val_win_mse": 1.0})
    assert path.read_text().splitlines() == ["step,loss,val_win_mse", "1,0.5,", "2,0.25,1"]


def test_cosine_schedule_anneals_over_steps_or_time_budget() -> None:
    from virtualfocus.training.trainer import lr_factor

    const = TrainConfig(model="pix2pix-dist-fast", steps=100)
    assert lr_factor(const, 0, 0.0) == lr_factor(const, 99, 1e6) == 1.0
    cos = TrainConfig(model="pix2pix-dist-fast", steps=100, lr_schedule="cosine", lr_final=0.1)
    assert lr_factor(cos, 0, 0.0) == pytest.approx(1.0)
    assert lr_factor(cos, 50, 0.0) == pytest.approx(0.55)
    assert lr_factor(cos, 100, 0.0) == pytest.approx(0.1)
    factors = [lr_factor(cos, s, 0.0) for s in range(101)]
    assert all(a >= b for a, b in itertools.pairwise(factors))
    # A wall-clock budget that ends first anneals by time: half the budget gone = halfway down.
    timed = TrainConfig(model="pix2pix-dist-fast", steps=10_000, lr_schedule="cosine", lr_final=0.0, max_minutes=2)
    assert lr_factor(timed, 10, 60.0) == pytest.approx(0.5)
    warm = TrainConfig(model="pix2pix-dist-fast", steps=100, warmup_steps=10)
    assert lr_factor(warm, 0, 0.0) == pytest.approx(0.1) and lr_factor(warm, 10, 0.0) == 1.0
    with pytest.raises(InputError, match="lr_schedule"):
        TrainConfig(model="pix2pix-dist-fast", lr_schedule="step")


def test_schedule_sets_the_optimizer_rate_and_logs_it(sim_stacks: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["pix2pix-dist-fast", "--data", str(sim_stacks), "--out", str(run), "--steps", "6", *FAST,
                 "--set", "lr_schedule=cosine", "--set", "lr_final=0.25", "--set", "val_every=0"]) == 0
    factors = [float(r["lr_factor"]) for r in _rows(run)]
    # Logged every 2 steps as the mean over those steps.
    assert factors == pytest.approx([(lr_factor_at(s) + lr_factor_at(s + 1)) / 2 for s in (0, 2, 4)], abs=1e-5)
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt", map_location="cpu")
    lr = ckpt["optimizers"]["model"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(get_spec("pix2pix-dist-fast").lr * lr_factor_at(5))


def lr_factor_at(step: int) -> float:
    from virtualfocus.training.trainer import lr_factor

    return lr_factor(TrainConfig(model="pix2pix-dist-fast", steps=6, lr_schedule="cosine", lr_final=0.25), step, 0.0)


def test_two_input_pairs_put_the_sharper_capture_first_like_the_runtime(sim_stacks: Path) -> None:
    from virtualfocus.edge.metrics import brenner

    refs = load_sources([str(sim_stacks)])
    sharper = ValidationDataset(refs, DataSpec(crop=64, inputs=2, delta_um=0.6, augment=False))
    capture = ValidationDataset(refs, DataSpec(crop=64, inputs=2, delta_um=0.6, augment=False,
                                               pair_order="capture"))
    swapped = 0
    for i in range(len(sharper)):
        x = sharper[i]["x"].numpy()
        a, b = ((x[c:c + 3].transpose(1, 2, 0) + 1) * 127.5 for c in (0, 3))
        assert brenner(a) >= brenner(b) - 1e-6
        c = capture[i]["x"]
        swapped += int(not torch.equal(c, sharper[i]["x"]))
        assert torch.equal(torch.cat([c[3:], c[:3]]), sharper[i]["x"]) or torch.equal(c, sharper[i]["x"])
    assert 0 < swapped < len(sharper)  # below focus the partner above is the sharper one, beyond it is not
    with pytest.raises(InputError, match="pair_order"):
        DataSpec(pair_order="random")


def test_compact_fp16_checkpoint_without_optimiser_state_resumes(sim_stacks: Path, tmp_path: Path) -> None:
    """A GPU run's committed state (fp16 weights, no Adam moments) loads into a CPU run and training continues."""
    out = tmp_path / "run"
    base = ["nafnet-w16", "--data", str(sim_stacks), "--out", str(out), "--no-progress", "--crop", "32",
            "--batch-size", "2", "--set", "width=8", "--set", "enc_blocks=1,1", "--set", "middle_blocks=1",
            "--set", "dec_blocks=1,1", "--set", "val_every=2", "--set", "workers=0", "--set", "threads=1"]
    assert main([*base, "--steps", "2"]) == 0
    path = out / "checkpoints" / "last.pt"
    compact_checkpoint(path, path)
    compact = load_checkpoint(path)
    assert "optimizers" not in compact and compact["models"]["model"]["intro.weight"].dtype == torch.float16
    assert main(["nafnet-w16", "--out", str(out), "--resume", "--no-progress", "--steps", "4"]) == 0
    resumed = load_checkpoint(path)
    assert resumed["step"] == 4 and "optimizers" in resumed
    w0 = compact["models"]["model"]["intro.weight"].float()
    assert not torch.equal(resumed["models"]["model"]["intro.weight"], w0)  # it trained on from the fp16 weights
