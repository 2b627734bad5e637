"""INT8 post-training quantization: NNCF for OpenVINO (optionally with accuracy control) and ONNX Runtime QDQ.

Both record what they did (calibration samples, ignored layers) in a :class:`QuantizationRecord` that goes into
the manifest. Neither NNCF nor ONNX Runtime quantizes ``ConvTranspose`` on x86 (DESIGN.md), which is why INT8
files are only shipped when they are measured faster than their float sibling.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from virtualfocus.edge.errors import BackendError, InputError

__all__ = ["QuantizationRecord", "onnx_conv_names", "quantize_onnx_qdq", "quantize_openvino"]

_ONNX_CONVS = ("Conv", "ConvTranspose")


@dataclass
class QuantizationRecord:
    """What one INT8 quantization did, for the manifest."""

    tool: str
    samples: int
    ignored_scope: list[str] = field(default_factory=list)
    accuracy_control: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantize_openvino(model: Any, calib: Sequence[np.ndarray], *, ignored_names: Sequence[str] = (),
                      subset_size: int = 300,
                      validation: Sequence[Any] | None = None,
                      validation_fn: Callable[[Any, Any], float] | None = None,
                      max_drop: float | None = None,
                      max_iterations: int = 3) -> tuple[Any, QuantizationRecord]:
    """Quantize an ``openvino.Model`` with NNCF.

    Parameters
    ----------
    model : openvino.Model
    calib : sequence of arrays
        Calibration inputs ``(1, C, H, W)`` float32.
    ignored_names : sequence of str
        Node names left in float (``nncf.IgnoredScope(names=...)``).
    validation, validation_fn, max_drop : optional
        When all three are given, ``nncf.quantize_with_accuracy_control`` reverts the layers that cost most until
        the metric returned by ``validation_fn(compiled_model, validation)`` (higher is better, e.g. PSNR in dB)
        drops by at most ``max_drop`` (absolute).
    max_iterations : int
        Accuracy-control budget (layers reverted at most).

    Returns
    -------
    (openvino.Model, QuantizationRecord)
    """
    import logging

    import nncf

    if len(calib) == 0:
        raise InputError("calibration: no samples; INT8 quantization needs at least one")
    nncf.set_log_level(logging.WARNING)
    dataset = nncf.Dataset(list(calib))
    scope = nncf.IgnoredScope(names=list(ignored_names), validate=False) if ignored_names else None
    rec = QuantizationRecord(tool=f"nncf {nncf.__version__}", samples=len(calib), ignored_scope=list(ignored_names),
                             settings={"subset_size": min(subset_size, len(calib)), "preset": "performance"})
    try:
        if validation is not None and validation_fn is not None and max_drop is not None:
            from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

            qmodel = nncf.quantize_with_accuracy_control(
                model, dataset, nncf.Dataset(list(validation), lambda item: item[0]), validation_fn,
                max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=min(subset_size, len(calib)),
                ignored_scope=scope,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    max_num_iterations=max_iterations),
            )
            rec.accuracy_control = {"metric": "psnr_db", "max_drop": max_drop, "drop_type": "absolute",
                                    "max_iterations": max_iterations, "validation_samples": len(validation)}
        else:
            qmodel = nncf.quantize(model, dataset, subset_size=min(subset_size, len(calib)), ignored_scope=scope)
    except (InputError, BackendError):
        raise
    except Exception as e:
        raise BackendError(f"NNCF quantization failed: {e}") from e
    return qmodel, rec


def onnx_conv_names(path: str | os.PathLike[str]) -> list[str]:
    """Names of the ``Conv``/``ConvTranspose`` nodes of an ONNX file in graph order."""
    import onnx

    return [n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type in _ONNX_CONVS]


class _Reader:
    """``CalibrationDataReader`` over in-memory tensors."""

    def __init__(self, name: str, calib: Sequence[np.ndarray]):
        self._name, self._it = name, iter(list(calib))

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self._name: x}


def quantize_onnx_qdq(src: str | os.PathLike[str], dst: str | os.PathLike[str], calib: Sequence[np.ndarray], *,
                      exclude_nodes: Sequence[str] = (), per_channel: bool = True) -> QuantizationRecord:
    """Static QDQ INT8 with ONNX Runtime (U8 activations, S8 weights: the x86 VNNI recipe).

    Parameters
    ----------
    src, dst : path
        Float ONNX model in; quantized model out.
    calib : sequence of arrays
        Calibration inputs ``(1, C, H, W)`` float32.
    exclude_nodes : sequence of str
        ONNX node names kept in float.
    per_channel : bool
        Per-output-channel weight scales.
    """
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if len(calib) == 0:
        raise InputError("calibration: no samples; INT8 quantization needs at least one")
    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    try:
        quantize_static(str(src), str(dst), _Reader(name, calib), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(exclude_nodes), calibrate_method=CalibrationMethod.MinMax)
    except Exception as e:
        if Path(dst).exists():
            Path(dst).unlink()
        raise BackendError(f"{src}: ONNX Runtime static quantization failed ({e})") from e
    return QuantizationRecord(tool=f"onnxruntime {ort.__version__} quantize_static", samples=len(calib),
                              ignored_scope=list(exclude_nodes),
                              settings={"format": "QDQ", "activations": "QUInt8", "weights": "QInt8",
                                        "per_channel": per_channel, "calibrate_method": "MinMax"})
