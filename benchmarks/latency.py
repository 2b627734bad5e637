"""CPU latency of every shipped variant × backend × precision, and the CI latency gate.

    python benchmarks/latency.py --size 360 [--json PATH] [--budget-ms 70] [--runs 100]
    python benchmarks/latency.py --size 1920x1200          # a scan image (tiled)

Each row times the full deployed path, ``FocusRuntime.restore`` on a uint8 RGB capture of the given size
(conversion, padding/tiling, inference, post-processing), after a warm-up, and reports p50/p95/p99 over
``--runs`` frames. OpenVINO rows come at its default precision (bf16 on CPUs that have it, which is what ships)
and pinned to f32. When torch and the training package are installed, the same architecture run by PyTorch fp32
eager (the thesis's path) is added for reference, and so is the paper-sized pix2pix-dist generator.

The gate is the shipped default variant loaded exactly as ``FocusRuntime.load()`` loads it: the script exits 1
when its p95 exceeds ``--budget-ms``. In the same run the gate also reports ``bare_p50_ms`` — the same compiled
model's inference alone on a tensor that is already in place (no Python, no checks, no copies) — timed
interleaved with ``restore`` so both see the same machine load, and ``first_frame_ms``: the first frame after
``FocusRuntime.load(warmup_shape=...)`` against the p50 of the 100 after it. All rows are measured in one run on the same machine, so compare them as
ratios; absolute figures move with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Row:
    variant: str
    backend: str
    precision: str
    file: str
    size: str
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    runs: int
    trained: bool | None = None
    note: str = ""


def parse_size(text: str) -> tuple[int, int]:
    """``360`` → (360, 360); ``1920x1200`` (width × height) → (1200, 1920) as (height, width)."""
    try:
        if "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x"))
        else:
            w = h = int(text)
    except ValueError:
        raise SystemExit(f"--size {text!r}: expected N or WIDTHxHEIGHT, e.g. 360 or 1920x1200") from None
    if h < 16 or w < 16:
        raise SystemExit(f"--size {text!r}: height and width must be at least 16")
    return h, w


def percentiles(ms: list[float]) -> tuple[float, float, float, float]:
    a = np.asarray(ms)
    return (float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99)), float(a.mean()))


def time_runtime(rt, frame: np.ndarray, runs: int, warmup: int) -> list[float]:
    """Milliseconds per ``restore`` of ``frame``; raises when the path does not restore it (a frame delivered raw —
    e.g. a static-shape file given a capture of another size — must not be timed as if it had been restored)."""
    for i in range(max(warmup, 1)):
        fr = rt.restore(frame)
        if i == 0 and not fr.status.restored:
            first = (fr.message or "").splitlines()[0] if fr.message else ""
            raise RuntimeError(f"not restored at {frame.shape[1]}x{frame.shape[0]} ({fr.status.value}: {first})")
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        rt.restore(frame)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def time_against_bare(rt, frame: np.ndarray, runs: int) -> tuple[list[float], list[float], list[float]]:
    """``restore``, the bare inference of the same compiled graph, and the plain model on a ready float tensor,
    interleaved frame by frame (ms each).

    Empty ``bare`` when the engine has no in-graph path for this capture (ONNX Runtime, a tiled size)."""
    eng = rt.engines[0]
    spec = eng.capture_spec(frame, focus=rt.policy.wants_gain(eng.manifest))
    bare = eng.backend.capture_request(spec, frame) if spec is not None else None
    plain = None
    if spec is not None:  # the model alone, without the pre/post-processing compiled around it
        ph, pw = spec.padded
        plain = eng.backend.model_request(np.zeros((1, spec.model_channels, ph, pw), np.float32))
    full, alone, model = [], [], []
    for _ in range(runs):
        t = time.perf_counter()
        rt.restore(frame)
        full.append((time.perf_counter() - t) * 1e3)
        if bare is not None and plain is not None:
            t = time.perf_counter()
            bare()
            alone.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            plain()
            model.append((time.perf_counter() - t) * 1e3)
    return full, alone, model


def first_frame(frame: np.ndarray, threads: int | None, runs: int = 100) -> tuple[float, float]:
    """(first frame after ``load(warmup_shape=frame's size)``, p50 of the next ``runs``), ms."""
    from virtualfocus.edge import FocusRuntime

    with FocusRuntime.load(budget_ms=1e9, threads=threads, ladder=False, warmup_shape=frame.shape) as rt:
        t = time.perf_counter()
        rt.restore(frame)
        first = (time.perf_counter() - t) * 1e3
        rest = []
        for _ in range(runs):
            t = time.perf_counter()
            rt.restore(frame)
            rest.append((time.perf_counter() - t) * 1e3)
    return first, float(np.percentile(rest, 50))


def capture(h: int, w: int) -> np.ndarray:
    """A simulated defocused smear capture when the simulator is available, else smooth noise."""
    try:
        from virtualfocus.simulation.simulate import simulate_stack

        st = simulate_stack(7)
        plane = st.planes[min(len(st) - 1, st.sharp_index + 4)]
        if plane.dtype != np.uint8:
            plane = (np.clip(plane, 0, 1) * 255).astype(np.uint8) if plane.dtype.kind == "f" else (plane >> 8).astype(np.uint8)
        import cv2

        reps = (-(-h // plane.shape[0]), -(-w // plane.shape[1]), 1)
        return np.ascontiguousarray(np.tile(plane, reps)[:h, :w]) if plane.ndim == 3 else cv2.cvtColor(
            np.tile(plane, reps[:2])[:h, :w], cv2.COLOR_GRAY2RGB)
    except Exception:
        rng = np.random.default_rng(0)
        import cv2

        return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 3)


def torch_rows(manifests, h: int, w: int, runs: int, warmup: int) -> list[Row]:
    """PyTorch fp32 eager reference: each shipped architecture, and the paper-sized pix2pix-dist."""
    try:
        import torch
        from virtualfocus.training.registry import create_model
    except Exception as e:  # torch or the training package missing: the core install
        print(f"(PyTorch reference rows skipped: {e})", file=sys.stderr)
        return []
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    jobs = [(m.name, m.architecture, m.spec, m.trained) for m in manifests]
    jobs.append(("pix2pix-dist (paper size, thesis path)", "pix2pix-dist", {}, None))
    for label, arch, spec, trained in jobs:
        try:
            overrides = {k: v for k, v in spec.items() if k not in ("name",)}
            net = create_model(arch, **overrides)
        except Exception as e:
            print(f"(PyTorch row for {label} skipped: {e})", file=sys.stderr)
            continue
        gen = getattr(net, "generator", net)
        gen.eval()
        mult = int(getattr(gen, "pad_multiple", 16))
        ph, pw = -(-h // mult) * mult, -(-w // mult) * mult
        cin = int(getattr(gen, "in_channels", 3)) * int(getattr(gen, "inputs", 1))
        x = torch.rand(1, cin, ph, pw) * 2 - 1
        n = runs if "paper" not in label else max(50, min(runs, 50))
        ms = []
        with torch.inference_mode():
            for i in range(warmup + n):
                t = time.perf_counter()
                gen(x)
                if i >= warmup:
                    ms.append((time.perf_counter() - t) * 1e3)
        p50, p95, p99, mean = percentiles(ms)
        rows.append(Row(label, "pytorch", "fp32", "-", f"{pw}x{ph} padded", p50, p95, p99, mean, n, trained,
                        "eager, inference only"))
    return rows


def time_scan(rt: Any, frame: np.ndarray, scan: str, runs: int) -> dict[str, Any]:
    """The gate runtime at a scan-image size against ``frame``'s size, interleaved (same machine load)."""
    h, w = frame.shape[:2]
    sh, sw = parse_size(scan)
    big = capture(sh, sw)
    rt.warm(big.shape)
    scan_ms, ref_ms = [], []
    for _ in range(max(10, runs // 5)):
        t = time.perf_counter()
        rt.restore(big)
        scan_ms.append((time.perf_counter() - t) * 1e3)
        for _ in range(3):
            t = time.perf_counter()
            rt.restore(frame)
            ref_ms.append((time.perf_counter() - t) * 1e3)
    s50, r50 = float(np.percentile(scan_ms, 50)), float(np.percentile(ref_ms, 50))
    px = (sh * sw) / (h * w)
    return {"size": f"{sw}x{sh}", "p50_ms": round(s50, 3), "reference_p50_ms": round(r50, 3),
            "pixels_ratio": round(px, 3), "over_pixels_ratio": round(s50 / (px * r50), 3)}


def file_rows(manifests: list[Any], frame: np.ndarray, size: str, runs: int, warmup: int,
              threads: int | None) -> list[Row]:
    """One row per shipped file and OpenVINO execution mode of the single-capture restoring models."""
    from virtualfocus.edge import FocusRuntime

    rows: list[Row] = []
    for m in manifests:
        for f in m.files:
            if f.backend not in ("openvino", "onnxruntime"):
                continue
            modes = ["default", "f32"] if (f.backend == "openvino" and f.precision != "int8") else ["default"]
            for mode in modes:
                try:
                    rt = FocusRuntime.load(m.folder / f.path, backend=f.backend, budget_ms=1e9,
                                           threads=threads, precision=mode, ladder=False)
                except Exception as e:
                    print(f"(row {m.name}/{f.path}/{mode} skipped: {e})", file=sys.stderr)
                    continue
                try:
                    ms = time_runtime(rt, frame, runs, warmup)
                except RuntimeError as e:
                    print(f"(row {m.name}/{f.path}/{mode} skipped: {e})", file=sys.stderr)
                    rt.close()
                    continue
                p50, p95, p99, mean = percentiles(ms)
                prec = f.precision if f.backend == "onnxruntime" else (
                    f"{f.precision}→{rt.engines[0].backend.execution_precision()}" if mode == "default"
                    else f"{f.precision} (f32 pinned)")
                rows.append(Row(m.name, f.backend, prec, f.path, size, p50, p95, p99, mean, runs, m.trained))
                rt.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="360", help="N or WIDTHxHEIGHT (default 360)")
    ap.add_argument("--json", dest="json_path", default=None, help="write rows and the gate as JSON")
    ap.add_argument("--budget-ms", type=float, default=70.0, help="gate: default variant p95 must not exceed this")
    ap.add_argument("--runs", type=int, default=100, help="timed frames per row (at least 50)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference rows")
    ap.add_argument("--gate-only", action="store_true", help="time only the default variant (fast CI check)")
    ap.add_argument("--scan", default=None, metavar="WxH",
                    help="also time the gate at this scan-image size against --size, interleaved (e.g. 1920x1200)")
    args = ap.parse_args(argv)
    if args.runs < 50:
        ap.error("--runs must be at least 50 for meaningful p95/p99")
    h, w = parse_size(args.size)

    from virtualfocus.edge import FocusRuntime
    from virtualfocus.edge.manifest import Manifest
    from virtualfocus.edge.models import models_root, shipped
    from virtualfocus.evaluation.machine import cpu_name

    root = models_root()
    ship = shipped(root)
    frame = capture(h, w)
    size = f"{w}x{h}"
    rows: list[Row] = []

    # The gate: exactly what FocusRuntime.load() gives an integrator.
    rt = FocusRuntime.load(budget_ms=1e9, threads=args.threads, ladder=False)
    time_runtime(rt, frame, 1, args.warmup)
    ms, bare_ms, model_ms = time_against_bare(rt, frame, args.runs)
    p50, p95, p99, mean = percentiles(ms)
    bare_p50 = float(np.percentile(bare_ms, 50)) if bare_ms else None
    model_p50 = float(np.percentile(model_ms, 50)) if model_ms else None
    scan = time_scan(rt, frame, args.scan, args.runs) if args.scan else None
    assert rt.load_report is not None
    gate_row = Row(rt.variant, rt.engines[0].backend_name, "default", "(as shipped)", size, p50, p95, p99, mean,
                   args.runs, rt.load_report.trained, "GATE: FocusRuntime.load()")
    rows.append(gate_row)
    rt.close()
    first_ms, after_p50 = first_frame(frame, args.threads)

    # Single-capture restoring models; the two-shot model's end-to-end latency is in benchmarks/acquisition.py.
    manifests = [m for m in (Manifest.load(root / n) for n in ship.variants) if m.input.inputs == 1 and m.task == "restore"]
    if not args.gate_only:
        rows += file_rows(manifests, frame, size, args.runs, args.warmup, args.threads)
        if not args.no_torch:
            rows += torch_rows(manifests, h, w, args.runs, args.warmup)

    passed = gate_row.p95_ms <= args.budget_ms
    gate = {"variant": gate_row.variant, "budget_ms": args.budget_ms, "p50_ms": round(gate_row.p50_ms, 3),
            "p95_ms": round(gate_row.p95_ms, 3), "passed": passed, "size": size,
            "bare_p50_ms": None if bare_p50 is None else round(bare_p50, 3),
            "model_only_p50_ms": None if model_p50 is None else round(model_p50, 3), "scan": scan,
            "restore_over_bare": None if bare_p50 is None else round(gate_row.p50_ms / bare_p50, 3),
            "first_frame_ms": round(first_ms, 3), "first_frame_over_p50": round(first_ms / after_p50, 3)}

    hdr = f"{'variant':<40} {'backend':<12} {'precision':<22} {'file':<20} {'p50':>8} {'p95':>8} {'p99':>8}  note"
    print(f"latency at {size} on {cpu_name()}, {os.cpu_count()} cores, "
          f"{args.runs} runs per row (ms)")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        untrained = " [untrained]" if r.trained is False else ""
        print(f"{r.variant + untrained:<40} {r.backend:<12} {r.precision:<22} {r.file:<20} {r.p50_ms:>8.2f} "
              f"{r.p95_ms:>8.2f} {r.p99_ms:>8.2f}  {r.note}")
    if bare_p50 is not None:
        print(f"\ngate restore p50 {gate_row.p50_ms:.2f} ms vs bare inference p50 {bare_p50:.2f} ms of the same compiled "
              f"model: {gate_row.p50_ms / bare_p50:.3f}x")
    if model_p50 is not None:
        print(f"the model alone on a ready float tensor (no pre/post in the graph): p50 {model_p50:.2f} ms")
    if scan is not None:
        print(f"{scan['size']}: p50 {scan['p50_ms']:.1f} ms = {scan['over_pixels_ratio']:.3f} x (pixels ratio "
              f"{scan['pixels_ratio']:.2f} x {size} p50 {scan['reference_p50_ms']:.2f} ms)")
    print(f"first frame after load(warmup_shape={frame.shape[:2]}): {first_ms:.1f} ms = "
          f"{first_ms / after_p50:.2f}x the p50 of the next 100")
    verdict = "PASSED" if passed else "FAILED"
    print(f"\ngate: {gate_row.variant} p95 {gate_row.p95_ms:.2f} ms vs budget {args.budget_ms:g} ms at {size}: {verdict}")
    if args.json_path:
        from virtualfocus.edge.manifest import write_json_atomic

        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json_path, {"rows": [asdict(r) for r in rows], "gate": gate,
                                           "machine": {"cpu": cpu_name(), "cores": os.cpu_count()}})
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
