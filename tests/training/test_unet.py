"""The product generator: shapes for every option, ONNX export parity, eval determinism, residual base."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import torch
from virtualfocus.training.nets.unet import UNetGenerator, brenner_gradient


@pytest.mark.parametrize(("decoder", "s2d", "residual", "inputs"),
                         list(itertools.product(["transpose", "resize-conv", "pixelshuffle"], [1, 2],
                                                [False, True], [1, 2])))
def test_shapes_and_range(decoder: str, s2d: int, residual: bool, inputs: int) -> None:
    torch.manual_seed(0)
    g = UNetGenerator(filters=4, levels=3, decoder=decoder, space_to_depth=s2d, residual=residual,
                      inputs=inputs).eval()
    assert g.pad_multiple == 8 * s2d
    x = torch.rand(2, 3 * inputs, 2 * g.pad_multiple, g.pad_multiple) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == (2, 3, 2 * g.pad_multiple, g.pad_multiple)
    assert float(y.abs().max()) <= 1.0


@pytest.mark.parametrize("kernel", [3, 4, 5])
def test_any_kernel_keeps_resolution(kernel: int) -> None:
    g = UNetGenerator(filters=4, levels=4, kernel=kernel).eval()
    with torch.no_grad():
        assert g(torch.zeros(1, 3, 32, 48)).shape == (1, 3, 32, 48)


def test_eval_is_deterministic_and_train_mode_uses_dropout() -> None:
    torch.manual_seed(0)
    g = UNetGenerator(filters=4, levels=4)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    twin = UNetGenerator(filters=4, levels=4)
    twin.load_state_dict(g.state_dict())
    g.eval()
    twin.eval()
    with torch.no_grad():
        out = g(x)
        torch.manual_seed(1)  # a different random state: eval output must not depend on it
        assert torch.equal(out, twin(x))
        twin.train()
        assert not torch.equal(out, twin(x))  # the same comparison fails when dropout is on
    g.train()
    assert not torch.equal(g(x), g(x))  # dropout 0.5 on the innermost decoder blocks


def test_invalid_options_are_named() -> None:
    with pytest.raises(ValueError, match="decoder='bilinear'"):
        UNetGenerator(decoder="bilinear")
    with pytest.raises(ValueError, match="space_to_depth"):
        UNetGenerator(space_to_depth=4)


def test_residual_base_is_the_sharper_capture() -> None:
    g = UNetGenerator(filters=4, levels=2, inputs=2, residual=True)
    rng = np.random.default_rng(0)
    sharp = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32))
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2)
    assert brenner_gradient(sharp) > brenner_gradient(blurred)
    assert torch.equal(g.residual_base(torch.cat([sharp, blurred], 1)), sharp)
    assert torch.equal(g.residual_base(torch.cat([blurred, sharp], 1)), sharp)


@pytest.mark.parametrize(("decoder", "s2d", "residual", "inputs"),
                         [("transpose", 1, False, 1), ("resize-conv", 2, True, 2), ("pixelshuffle", 1, True, 1)])
def test_onnx_export_matches_torch(decoder: str, s2d: int, residual: bool, inputs: int) -> None:
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    g = UNetGenerator(filters=4, levels=3, decoder=decoder, space_to_depth=s2d, residual=residual,
                      inputs=inputs).eval()
    m = g.pad_multiple
    buf = io.BytesIO()
    torch.onnx.export(g, (torch.zeros(1, 3 * inputs, m, m),), buf, opset_version=17, dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.rand(2, 3 * inputs, 3 * m, 2 * m) * 2 - 1  # another size than the traced one
    ref = g(x).detach().numpy()
    out = sess.run(None, {"x": x.numpy()})[0]
    np.testing.assert_allclose(out, ref, atol=1e-5)
