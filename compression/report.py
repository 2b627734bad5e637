"""``benchmarks/compression_report.md``: the table a user picks a variant from, generated from model manifests.

Every figure comes from a ``manifest.json`` written by :func:`virtualfocus.export.export_model` (measured in
one export run on this machine); nothing is typed by hand. Untrained exports are listed and marked as such.

    python benchmarks/compression_report.py [MODEL_FOLDER_OR_PARENT ...] [--out benchmarks/compression_report.md]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
from pathlib import Path
from typing import Any

from virtualfocus.edge.errors import VirtualFocusError
from virtualfocus.edge.manifest import Manifest, Parity

__all__ = ["find_manifests", "main", "render", "write_report"]

LATENCY_COLUMNS = (
    ("openvino/fp32", "OV default"),
    ("openvino/fp32-f32", "OV f32"),
    ("openvino/fp16", "OV fp16 weights"),
    ("openvino/int8", "OV INT8"),
    ("onnxruntime/fp32", "ORT fp32"),
    ("onnxruntime/int8", "ORT INT8"),
)
QUALITY_ROWS = ("openvino/fp32", "openvino/int8", "onnxruntime/fp32", "onnxruntime/int8")


def find_manifests(paths: list[str | os.PathLike[str]]) -> list[Manifest]:
    """Manifests of the given model folders, or of the model folders directly inside given parents (verified)."""
    out: list[Manifest] = []
    for p in map(Path, paths):
        folders = [p] if (p / "manifest.json").is_file() else sorted(d for d in p.iterdir() if (d / "manifest.json").is_file()) if p.is_dir() else []
        for f in folders:
            out.append(Manifest.load(f))
    return out


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _lat(m: Manifest, key: str) -> str:
    v = m.latency_ms.get(key)
    if not v:
        return "–"
    shipped = key.endswith("int8") and not any(f.precision == "int8" and f.backend == key.split("/")[0]
                                               for f in m.files)
    return f"{v['p50']:.2f} / {v['p95']:.2f}" + (" (not shipped)" if shipped else "")


def render(manifests: list[Manifest], *, title: str = "Compression report") -> str:
    """Markdown tables: size and latency per variant, quality per variant and backend, parity."""
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title}", "",
             f"Generated {now} by `python benchmarks/compression_report.py` from {len(manifests)} model manifest(s) "
             f"on `{platform.machine()}` ({os.cpu_count()} logical CPUs). Latency: p50 / p95 in ms over the runs "
             "recorded in each manifest, batch 1, at the padded static size of a 360×360 capture; "
             "\"OV default\" is OpenVINO's default inference precision (bf16 on CPUs with AVX-512 BF16). "
             "Quality: mean over the fixed simulated validation set (planes within the stated defocus interval); "
             "success = restored image no worse (MSE or FPW) than the worst sharp-band input of its stack.", ""]
    untrained = [m.name for m in manifests if not m.trained]
    if untrained:
        lines += [f"**Untrained exports** (random weights; their quality figures only prove the pipeline runs): "
                  f"{', '.join(untrained)}.", ""]
    lines += ["## Size and latency", "",
              "| variant | architecture | trained | params | GFLOPs | size | " + " | ".join(c for _k, c in LATENCY_COLUMNS) + " |",
              "|---" * (6 + len(LATENCY_COLUMNS)) + "|"]
    for m in manifests:
        c = m.compression
        size = "×".join(map(str, c.latency_size or ())) or "–"
        lines.append(f"| {m.name} | {m.architecture} | {'yes' if m.trained else '**no**'} | {_fmt(c.params)} | "
                     f"{_fmt(c.gflops)} | {size} | " + " | ".join(_lat(m, k) for k, _c in LATENCY_COLUMNS) + " |")
    lines += ["", "## Quality on the simulated validation set", "",
              "| variant | path | PSNR dB | SSIM | FR | FPW | success (MSE) | success (FPW) | images |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in manifests:
        q = m.quality
        interval = q.validation.get("interval_um")
        for key in ("input", *QUALITY_ROWS):
            r = q.scores(key)
            if not r:
                continue
            label = "input (no model)" if key == "input" else key
            lines.append(f"| {m.name} | {label} | {_fmt(r['psnr'])} | {_fmt(r['ssim'], 4)} | {_fmt(r['fr'], 3)} | "
                         f"{_fmt(r['fpw'], 1)} | {_fmt(r['success_mse'] * 100, 1)}% | {_fmt(r['success_fpw'] * 100, 1)}% | "
                         f"{r['images']} |")
        if interval:
            lines.append(f"| {m.name} | *interval {interval[0]}…{interval[1]} µm, {q.validation.get('stacks')} stacks, "
                         f"source {q.validation.get('source')}* | | | | | | | |")
    lines += ["", "## Export parity and INT8", "",
              "| variant | ORT fp32 rel. err | OV f32 rel. err | OV default rel. err | parity | INT8 OV (PSNR drop / FR change) | INT8 ORT | not shipped |",
              "|---|---|---|---|---|---|---|---|"]
    for m in manifests:
        p = m.parity

        def rel(k: str, p: Parity = p) -> str:
            return f"{p.float_checks[k].rel_error:.1e}" if k in p.float_checks else "–"

        def i8(k: str, p: Parity = p) -> str:
            v = p.int8.get(k)
            return f"{v.psnr_drop_db:+.3f} dB / {v.fr_change:.4f}" if v else "–"

        dropped = "; ".join(f"{f}: {why}" for f, why in m.compression.dropped.items()) or "–"
        lines.append(f"| {m.name} | {rel('onnxruntime/fp32')} | {rel('openvino/fp32-f32')} | {rel('openvino/fp32')} | "
                     f"{'pass' if p.passed else 'FAIL'} | {i8('openvino')} | {i8('onnxruntime')} | {dropped} |")
    lines += ["", "Relative error = max |y − y_torch| / max |y_torch| (fp32 tolerance 1e-4; the OpenVINO default "
              "path is reported, not judged). INT8 is judged on the validation set against the float file of the "
              "same backend: PSNR drop ≤ 0.3 dB and FR change ≤ 0.02, and it must be faster to be shipped.", ""]
    return "\n".join(lines)


def write_report(paths: list[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Render the report for ``paths`` and write it atomically to ``out``."""
    import tempfile

    text = render(find_manifests(paths))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs are ordinary shared files
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/compression_report.py [PATH ...] [--out FILE]``; returns an exit code."""
    p = argparse.ArgumentParser(prog="compression_report", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", default=["models"], help="model folders or folders of model folders (default models)")
    p.add_argument("--out", default="benchmarks/compression_report.md")
    args = p.parse_args(argv)
    try:
        ms = find_manifests(args.paths)
        if not ms:
            print(f"compression_report: no model folders with a manifest.json under {args.paths}", file=sys.stderr)
            return 2
        out = write_report(args.paths, args.out)
    except VirtualFocusError as e:
        print(f"compression_report: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(ms)} variant(s))")
    return 0
