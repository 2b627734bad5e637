"""Two kinds of "precision", kept apart as types.

- :class:`FilePrecision` — how a model file stores its weights and computes (``fp32``, ``fp16``, ``int8``): what
  ``export_model(precisions=...)`` writes and what a manifest's ``files[].precision`` says.
- :class:`ExecutionHint` — how OpenVINO is asked to *run* a float file (``INFERENCE_PRECISION_HINT``: ``f32``,
  ``bf16``, ``f16``, or ``default`` = OpenVINO's choice, bf16 on CPUs with AVX-512 BF16).

An fp32 file run with the ``bf16`` hint is still an fp32 file; parity is judged with the ``f32`` hint.
Both are ``StrEnum``: members equal their string values, so manifests and command lines keep their strings.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from virtualfocus.edge.errors import InputError

__all__ = ["ExecutionHint", "FilePrecision", "parse_choice"]


class FilePrecision(StrEnum):
    """Precision of an exported model file."""

    FP32 = "fp32"
    FP16 = "fp16"  # OpenVINO IR with FP16-compressed weights
    INT8 = "int8"  # post-training quantized (NNCF IR, ONNX Runtime QDQ)


class ExecutionHint(StrEnum):
    """OpenVINO ``INFERENCE_PRECISION_HINT`` for running a float file on the CPU."""

    DEFAULT = "default"  # leave OpenVINO's choice
    F32 = "f32"
    BF16 = "bf16"
    F16 = "f16"


E = TypeVar("E", bound=StrEnum)


def parse_choice(kind: type[E], value: str | E, *, what: str) -> E:
    """``kind(value)``, or an :class:`InputError` naming ``what`` and the valid values."""
    try:
        return kind(value)
    except ValueError:
        raise InputError(f"{what}={value!r}: expected one of {[m.value for m in kind]}") from None
