"""File precision and execution hint are two types: one cannot be passed where the other belongs."""

from __future__ import annotations

import json

import pytest
from virtualfocus.edge.errors import InputError
from virtualfocus.export import PRECISIONS, ExecutionHint, FilePrecision
from virtualfocus.export.latency import openvino_runner
from virtualfocus.export.precision import parse_choice


def test_values_are_the_manifest_and_command_line_strings() -> None:
    assert [p.value for p in PRECISIONS] == ["fp32", "fp16", "int8"] and PRECISIONS[0] == "fp32"
    assert ",".join(PRECISIONS) == "fp32,fp16,int8"  # the export CLI's default --precisions
    assert json.dumps({"precision": FilePrecision.INT8}) == '{"precision": "int8"}'
    assert [h.value for h in ExecutionHint] == ["default", "f32", "bf16", "f16"]
    assert not set(FilePrecision) & set(ExecutionHint)


def test_a_file_precision_is_not_an_execution_hint() -> None:
    assert parse_choice(ExecutionHint, "bf16", what="precision") is ExecutionHint.BF16
    with pytest.raises(InputError, match=r"precision='fp32': expected one of \['default', 'f32', 'bf16', 'f16'\]"):
        parse_choice(ExecutionHint, "fp32", what="precision")
    with pytest.raises(InputError, match="precision='fp16'"):
        openvino_runner("never-read.xml", precision="fp16")


def test_an_execution_hint_is_not_a_file_precision(tmp_path) -> None:
    pytest.importorskip("torch")
    from virtualfocus.export import export_model

    from .conftest import tiny_unet

    with pytest.raises(InputError, match=r"precisions=\['fp32', 'f32'\]: expected a subset of"):
        export_model(tiny_unet(), out_dir=tmp_path / "m", name="m", architecture="x", trained=False,
                     precisions=["fp32", "f32"])
    assert not (tmp_path / "m").exists()
