"""OpenVINO default (bf16 here) vs f32 vs NNCF INT8 latency of the 16-filter 4-level U-Net's decoder variants.

Decides the shipped default (target p50 ≤ 5 ms at 360×360). Untrained weights: latency does not depend on them.

    python benchmarks/decoder_variants.py [--runs 30] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "transpose": {"decoder": "transpose"},
    "resize-conv": {"decoder": "resize-conv"},
    "pixelshuffle": {"decoder": "pixelshuffle"},
    "resize-conv+s2d": {"decoder": "resize-conv", "space_to_depth": 2},
    "pixelshuffle+s2d": {"decoder": "pixelshuffle", "space_to_depth": 2},
    "transpose+s2d": {"decoder": "transpose", "space_to_depth": 2},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--size", type=int, default=360)
    p.add_argument("--arch", default="pix2pix-dist-fast")
    args = p.parse_args(argv)

    import numpy as np
    import torch
    from virtualfocus.export.data import Calibration, calibration_tensors
    from virtualfocus.export.latency import onnxruntime_runner, openvino_runner, time_runners
    from virtualfocus.export.onnx_export import export_onnx, padded_size
    from virtualfocus.export.openvino_ir import conv_node_names, convert_onnx_to_ir, save_ir
    from virtualfocus.export.quantize import quantize_openvino
    from virtualfocus.training.registry import create_model

    runners: dict[str, object] = {}
    info: dict[str, dict[str, object]] = {}
    tmp = tempfile.TemporaryDirectory()
    for label, over in VARIANTS.items():
        torch.manual_seed(0)
        m = create_model(args.arch, **over).eval()
        s = padded_size(args.size, m.pad_multiple)
        d = Path(tmp.name) / label
        d.mkdir()
        onnx = export_onnx(m, d / "m.onnx", in_channels=3, size=(s, s), dynamic=True)
        ov_model = convert_onnx_to_ir(onnx)
        save_ir(ov_model, d / "m.xml", compress_to_fp16=False)
        calib = calibration_tensors(Calibration(stacks=2, size=args.size), multiple=m.pad_multiple)
        convs = conv_node_names(ov_model)
        q, _ = quantize_openvino(ov_model, calib, ignored_names=[convs[0], convs[-1]])
        save_ir(q, d / "q.xml", compress_to_fp16=False)
        q_all, _ = quantize_openvino(ov_model, calib)
        save_ir(q_all, d / "qa.xml", compress_to_fp16=False)
        shape = (1, 3, s, s)
        info[label] = {"pad": s, "params": sum(t.numel() for t in m.parameters()), "x": np.zeros(shape, np.float32)}
        runners[f"{label}|ov_default"] = openvino_runner(d / "m.xml", shape=shape, threads=args.threads)
        runners[f"{label}|ov_f32"] = openvino_runner(d / "m.xml", precision="f32", shape=shape, threads=args.threads)
        runners[f"{label}|ov_int8"] = openvino_runner(d / "q.xml", shape=shape, threads=args.threads)
        runners[f"{label}|ov_int8_all"] = openvino_runner(d / "qa.xml", shape=shape, threads=args.threads)
        runners[f"{label}|ort_fp32"] = onnxruntime_runner(onnx, threads=args.threads)
    # Every runner gets its own padded input; all are timed round-robin (fair under shared load).
    inputs = {k: info[k.split("|")[0]]["x"] for k in runners}
    res = time_runners({k: (lambda _x, r=r, x=inputs[k]: r(x)) for k, r in runners.items()}, np.zeros(1),
                       runs=args.runs)
    # CPU time per inference (all threads of this process): a load-robust proxy of compute cost on a shared
    # machine, where wall time also counts the time other processes hold the cores.
    cpu = {k: [] for k in runners}
    for _ in range(max(5, args.runs // 3)):
        for k, r in runners.items():
            t0 = time.process_time()
            r(inputs[k])
            cpu[k].append((time.process_time() - t0) * 1e3)
    for k in runners:
        res[k]["cpu_ms"] = float(np.median(cpu[k]))
    tmp.cleanup()
    rows = []
    for label in VARIANTS:
        r = {"variant": label, "pad": info[label]["pad"], "params": info[label]["params"]}
        for kind in ("ov_default", "ov_f32", "ov_int8", "ov_int8_all", "ort_fp32"):
            r[kind] = res[f"{label}|{kind}"]["p50"]
            r[kind + "_p95"] = res[f"{label}|{kind}"]["p95"]
            r[kind + "_cpu"] = round(res[f"{label}|{kind}"]["cpu_ms"], 2)
        rows.append(r)
        print(json.dumps(r), flush=True)
    load = os.getloadavg()[0]
    print(f"\nwall p50 ms (CPU ms per inference, all threads), load average {load:.1f} on {os.cpu_count()} CPUs")
    print("| variant | pad | params | OV default (bf16) | OV f32 | OV INT8 (first/last float) | OV INT8 (all) | ORT fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = " | ".join(f"{r[k]:.2f} ({r[k + '_cpu']:.1f})" for k in ("ov_default", "ov_f32", "ov_int8",
                                                                          "ov_int8_all", "ort_fp32"))
        print(f"| {r['variant']} | {r['pad']} | {r['params']:,} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
