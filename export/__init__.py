"""torch → ONNX / OpenVINO IR / INT8 export with parity checks and a manifest per model folder.

Importing this package does not import torch (functions import it when called), so tools that only read
manifests or run parity on exported files stay light.
"""

from .data import Calibration, ValidationSet
from .exporter import PRECISIONS, export_model, model_stats
from .parity import FP32_RTOL, INT8_MAX_FR_CHANGE, INT8_MAX_PSNR_DROP, check_parity, relative_error
from .precision import ExecutionHint, FilePrecision
from .runs import fit_to_state_dict, load_run_model

__all__ = [
    "FP32_RTOL",
    "INT8_MAX_FR_CHANGE",
    "INT8_MAX_PSNR_DROP",
    "PRECISIONS",
    "Calibration",
    "ExecutionHint",
    "FilePrecision",
    "ValidationSet",
    "check_parity",
    "export_model",
    "fit_to_state_dict",
    "load_run_model",
    "model_stats",
    "relative_error",
]
