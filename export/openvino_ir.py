"""ONNX → OpenVINO IR (``ov.convert_model`` + ``ov.save_model``).

The IR keeps symbolic height and width (the runtime reshapes it to the padded capture size before compiling).
``model.xml`` carries FP32 weights; OpenVINO on a CPU with AVX-512 BF16 runs it in bf16 unless
``INFERENCE_PRECISION_HINT`` is pinned to ``f32`` (DESIGN.md). ``model-fp16.xml`` stores FP16-compressed weights
(half the file size; computation precision is the device's, as above).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["conv_node_names", "convert_onnx_to_ir", "save_ir"]

_CONV_TYPES = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData")


def convert_onnx_to_ir(onnx_path: str | os.PathLike[str]) -> Any:
    """Read an ONNX file into an ``openvino.Model``."""
    import openvino as ov

    return ov.convert_model(str(onnx_path))


def save_ir(model: Any, xml_path: str | os.PathLike[str], *, compress_to_fp16: bool) -> Path:
    """Write ``model`` as ``xml_path`` + the ``.bin`` beside it."""
    import openvino as ov

    ov.save_model(model, str(xml_path), compress_to_fp16=compress_to_fp16)
    return Path(xml_path)


def conv_node_names(model: Any) -> list[str]:
    """Names of the convolution nodes of an ``openvino.Model`` in topological order (first = input side)."""
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() in _CONV_TYPES]
