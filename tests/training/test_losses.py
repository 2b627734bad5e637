"""Losses on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from virtualfocus.edge import metrics as M
from virtualfocus.training import losses as L
from virtualfocus.training.nets.classifiers import ConvClassifier


def _img(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _u8(t: torch.Tensor) -> np.ndarray:
    return ((t + 1) * 127.5).round().to(torch.uint8).numpy().transpose(1, 2, 0)


def test_fpw_loss_is_zero_for_identical_images_and_equals_the_metric() -> None:
    a, b = _img(0, 1), _img(1, 1)
    a = ((a + 1) * 127.5).round() / 127.5 - 1  # exactly representable in uint8
    b = ((b + 1) * 127.5).round() / 127.5 - 1
    assert float(L.fpw_loss(a, a)) == 0.0
    assert float(L.fpw_loss(a, b)) == pytest.approx(M.fpw(_u8(a[0]), _u8(b[0])), rel=1e-4)
    assert float(L.focus_measure(a)[0]) == pytest.approx(M.focus_measure(_u8(a[0])), rel=1e-4)


def test_fpw_loss_has_gradients() -> None:
    a = _img(0).requires_grad_(True)
    L.fpw_loss(a, _img(1)).backward()
    assert a.grad is not None and float(a.grad.abs().sum()) > 0


def test_bce_losses() -> None:
    confident_right = torch.full((4, 1, 3, 3), 20.0)
    assert float(L.bce_g_loss(confident_right)) < 1e-6
    assert float(L.bce_d_loss(confident_right, -confident_right)) < 1e-6
    torch.manual_seed(0)
    soft = L.bce_d_loss(confident_right, -confident_right, soft_labels=True)
    # soft targets in [0.9, 1] / [0, 0.1]: a perfectly confident D now pays a price
    assert 0.1 < float(soft) < 2.0


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic() -> None:
    w = torch.zeros(1, 2, 4, 4)
    w[0, 0, 0, 0] = 1.0  # critic = one pixel: gradient norm exactly 1

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1)

    assert float(L.gradient_penalty(critic, torch.rand(3, 2, 4, 4), torch.rand(3, 2, 4, 4))) == pytest.approx(0.0)
    assert float(L.gradient_penalty(lambda x: 3 * critic(x), torch.rand(3, 2, 4, 4), torch.rand(3, 2, 4, 4))) == \
        pytest.approx(4.0)
    assert float(L.wgan_d_loss(torch.tensor([2.0]), torch.tensor([1.0]))) == -1.0
    assert float(L.wgan_g_loss(torch.tensor([1.0, 3.0]))) == -2.0


def test_rank_probability_loss_orders_mistakes() -> None:
    labels = torch.tensor([2])
    right = torch.tensor([[-20.0, -20.0, 20.0, -20.0, -20.0]])
    near = torch.tensor([[-20.0, -20.0, -20.0, 20.0, -20.0]])
    far = torch.tensor([[-20.0, -20.0, -20.0, -20.0, 20.0]])
    r, n, f = (float(L.rank_probability_loss(z, labels)) for z in (right, near, far))
    assert r < 1e-6 < n < f
    assert n == pytest.approx(1 / 4) and f == pytest.approx(2 / 4)


def test_feature_loss_is_frozen_and_zero_on_identical_inputs() -> None:
    torch.manual_seed(0)
    net = ConvClassifier(filters=(4, 8, 8), hidden=(8,), classes=3, pool_size=2)
    for kind in ("l1", "mse", "style"):
        loss = L.FeatureLoss(net, layer=3, kind=kind)
        a = _img(0).requires_grad_(True)
        assert float(loss(a, a.detach()).detach()) == pytest.approx(0.0, abs=1e-9)
        loss(a, _img(1)).backward()
        assert a.grad is not None and float(a.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    loss.train()
    assert not net.training  # stays in eval mode (batch-norm statistics frozen)


def test_dfeat_distance_weights_layers() -> None:
    r = [torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)]
    f = [torch.ones(1, 2, 2, 2), 2 * torch.ones(1, 2, 2, 2)]
    assert float(L.dfeat_distance(r, f, (3.0, 0.5))) == pytest.approx(3.0 + 1.0)
