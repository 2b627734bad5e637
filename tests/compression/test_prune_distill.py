from __future__ import annotations

import numpy as np
import pytest
import torch
from virtualfocus.compression.distill import Distiller, distill
from virtualfocus.compression.prune import conv_widths, protected_layers, prune_generator
from virtualfocus.edge.errors import InputError
from virtualfocus.export.runs import fit_to_state_dict


def _net(**kw):
    from virtualfocus.training.registry import create_model

    torch.manual_seed(0)
    return create_model("pix2pix-dist-fast", **{"filters": 32, "levels": 3, "decoder": "resize-conv", **kw})


def test_pruning_reduces_params_and_rounds_channels():
    net = _net()
    before = conv_widths(net)
    ex = torch.zeros(1, 3, 32, 32)
    keep = protected_layers(net, ex)
    names = {id(m): n for n, m in net.named_modules()}
    report = prune_generator(net, ratio=0.5, example=ex, round_to=8, latency_runs=1,
                             evaluate=lambda m: {"mean_out": float(m(torch.zeros(1, 3, 32, 32)).abs().mean())})
    after = conv_widths(net)
    assert report[-1].params < 0.5 * report[0].params and report[-1].gflops < report[0].gflops
    assert [r.step for r in report] == [0, 1] and "mean_out" in report[1].quality
    changed = {n for n in after if after[n] != before[n]}
    assert changed, "nothing was pruned"
    assert all(after[n] % 8 == 0 for n in changed)
    for m in keep:  # first conv and output layer keep their widths
        assert after[names[id(m)]] == before[names[id(m)]]
    assert net(torch.randn(1, 3, 48, 40)).shape == (1, 3, 48, 40)


def test_per_layer_ratio_and_bad_layer():
    net = _net()
    prune_generator(net, ratio=0.25, example=torch.zeros(1, 3, 32, 32), layer_ratios={"encoder.1.1": 0.75},
                    latency_runs=0)
    assert conv_widths(net)["encoder.1.1"] == 16  # 64 → 16 at 75 %
    with pytest.raises(InputError, match="no layer named"):
        prune_generator(_net(), ratio=0.5, example=torch.zeros(1, 3, 32, 32), layer_ratios={"nope": 0.5})


def test_pruned_weights_reload_into_a_fresh_spec_model():
    net = _net()
    prune_generator(net, ratio=0.5, example=torch.zeros(1, 3, 32, 32), latency_runs=0)
    fresh = fit_to_state_dict(_net().eval(), net.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(fresh(x).numpy(), net.eval()(x).numpy(), atol=1e-6)


def test_distillation_reduces_loss_and_matches_features():
    teacher = _net(filters=16).eval()
    student = _net(filters=8, levels=3)
    d = Distiller(student, teacher)
    assert len(d.pairs) == 3  # every encoder level has a teacher feature of the same size
    d.close()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32))
    y = torch.tanh(x * 0.5)
    hist = distill(student, teacher, iter(lambda: (x, y), None), steps=25, lr=2e-3)
    assert hist[-1].total < 0.7 * hist[0].total
    assert hist[0].feature > 0 and not student.training


def test_distiller_rejects_mismatched_teacher():
    with pytest.raises(InputError, match="does not fit"):
        Distiller(_net(filters=8), _net(filters=16, inputs=2))
