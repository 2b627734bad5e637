"""torch → ONNX with the TorchScript exporter (opset 17).

Why not ``dynamo=True``: with torch 2.13 the dynamo exporter needs ``onnxscript``, which is not part of our
environment, and the TorchScript exporter produces a graph that both ONNX Runtime and OpenVINO load with
max-abs relative error ≈ 3e-7 on our U-Nets (measured 2026-11-21). The exporter's deprecation warning is
silenced locally, not globally.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from virtualfocus.edge.errors import InputError

__all__ = ["INPUT_NAME", "OPSET", "OUTPUT_NAME", "export_onnx", "padded_size"]

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def padded_size(size: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is ≥ ``size`` (360 → 368 for 16, 384 for 32)."""
    if size < 1 or multiple < 1:
        raise InputError(f"size={size}, multiple={multiple}: both must be ≥ 1")
    return -(-size // multiple) * multiple


def export_onnx(module: Any, path: str | os.PathLike[str], *, in_channels: int, size: tuple[int, int],
                dynamic: bool, opset: int = OPSET) -> Path:
    """Export ``module`` (eval mode, CPU) to an ONNX file.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(1, in_channels, H, W)`` float32 in [-1, 1] to ``(1, C, H, W)``.
    path : path
        Output ``.onnx`` file.
    in_channels : int
        Channels of the input tensor (captures × colour channels).
    size : (H, W)
        Example spatial size; the exported size when ``dynamic`` is false. Must suit the model's pad multiple.
    dynamic : bool
        Make batch, height and width symbolic (``N``, ``H``, ``W``).
    opset : int
        ONNX opset, ≥ 17.

    Returns
    -------
    Path
        ``path``.
    """
    import torch

    if opset < 17:
        raise InputError(f"opset={opset}: expected ≥ 17")
    module = module.eval().to("cpu")
    x = torch.zeros(1, in_channels, *size, dtype=torch.float32)
    axes = {INPUT_NAME: {0: "N", 2: "H", 3: "W"}, OUTPUT_NAME: {0: "N", 2: "H", 3: "W"}} if dynamic else None
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, do_constant_folding=True)
    return path
