"""Restore a live pymmcore-plus acquisition on a simulated microscope.

    .venv/bin/python examples/pymmcore_plus_demo.py                    # shipped default model
    .venv/bin/python examples/pymmcore_plus_demo.py --model PATH       # any model folder / .xml / .onnx
    .venv/bin/python examples/pymmcore_plus_demo.py --two-shot PATH    # two shots per field, fused

A real ``CMMCorePlus`` (pymmcore-plus's ``UniMMCore`` with Python devices: camera, focus stage, XY stage, lamp)
runs a real ``useq.MDASequence`` — 3 stage positions × 10 time points — with its own ``MDARunner``. The camera is
the project's optics simulator: the slide is tilted (each position has its own focus) and the focus drifts by
``--drift`` µm per frame. The processor attached to ``core.mda.events.frameReady`` restores every frame without
blocking the acquisition and emits it, in capture order, with its status, latency, the variant that ran and a
defocus estimate; the drift monitor warns when a position leaves the model's trusted defocus range.
Needs the ``mm`` extra: ``pip install 'virtualfocus[mm]'``.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pymmcore_plus_demo.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="single-shot model: shipped variant name, model folder or file "
                                    "(default: the shipped default)")
    ap.add_argument("--two-shot", metavar="MODEL", help="two-input model: capture ±--delta µm per field and fuse")
    ap.add_argument("--positions", type=int, default=3)
    ap.add_argument("--timepoints", type=int, default=10)
    ap.add_argument("--size", type=int, default=360, help="camera size in pixels (default 360)")
    ap.add_argument("--drift", type=float, default=0.03, help="focus drift per frame, µm (default 0.03)")
    ap.add_argument("--delta", type=float, default=0.4, help="two-shot offset ±ΔD, µm (default 0.4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-noise", action="store_true", help="render without camera noise (faster)")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("pymmcore-plus").setLevel(logging.WARNING)  # it logs every event at INFO
    logging.getLogger("virtualfocus").setLevel(logging.WARNING)  # late/overflow/drift warnings only

    try:
        import useq
        from virtualfocus.edge import FocusRuntime
        from virtualfocus.edge.errors import ModelLoadError
        from virtualfocus.edge.integrations.pymmcore import attach
        from virtualfocus.simulation.simscope import ScopeConfig, SimulatedMicroscope
    except ImportError as e:
        print(f"error: {e}. Install the extra: pip install 'virtualfocus[mm]'", file=sys.stderr)
        return 2

    try:
        rt = FocusRuntime.load(args.model)
    except ModelLoadError as e:
        print(f"error: {e}\n(pass --model PATH to use a model folder)", file=sys.stderr)
        return 2
    print(f"runtime: {rt.load_report}")

    scope = SimulatedMicroscope(ScopeConfig(size=args.size, seed=args.seed, noise=not args.no_noise,
                                            tilt_um_per_mm=(0.5, 0.0), field_jitter_um=0.1,
                                            drift_um_per_frame=args.drift, z_quantum_um=0.1))
    proc = attach(scope.core, rt, two_shot=args.two_shot)

    def show(img, event, meta, frame) -> None:
        idx = event.index
        est = meta.get("virtualfocus.defocus_um")
        true = meta.get("virtualfocus.sim.defocus_um")  # of this capture (two-shot: the first shot, at z − ΔD)
        if true is not None and args.two_shot:
            true += args.delta  # the two-shot estimate is the defocus of the pair's centre
        extra = f"  {meta['virtualfocus.two_shot']}" if "virtualfocus.two_shot" in meta else ""
        print(f"frame {frame.seq:3d}  t={idx.get('t', 0):2d} p={idx.get('p', 0)}  {meta['virtualfocus.status']:<9} "
              f"{meta['virtualfocus.latency_ms']:7.2f} ms  {meta['virtualfocus.variant']:<12} "
              f"defocus est {'   -  ' if est is None else f'{est:+.2f}'} µm"
              f"{'' if true is None else f' (true {true:+.2f})'}{extra}", flush=True)

    proc.frameRestored.connect(show)
    proc.focusDrift.connect(lambda ev: print(f"  >> {type(ev).__name__} at position {ev.key}: "
                                             f"{ev.defocus_um:+.2f} µm", flush=True))

    positions = [(i * 500.0, 0.0, 0.0) for i in range(args.positions)]
    plan: dict = {"stage_positions": positions, "time_plan": {"interval": 0, "loops": args.timepoints},
                  "axis_order": "tpz"}
    if args.two_shot:
        plan["z_plan"] = {"relative": [-args.delta, args.delta]}
    scope.run(useq.MDASequence(**plan))
    all_delivered = proc.detach(timeout=60)

    hs = proc.hook_stats()
    print(f"\nframes captured {hs['n']}, delivered {proc.stream.delivered} (all: {all_delivered}), "
          f"by status {proc.stream.counts}")
    print(f"acquisition-thread time per frame: p50 {hs['p50_ms']:.3f} ms, p99 {hs['p99_ms']:.3f} ms")
    if proc.telemetry is not None:
        for p in range(args.positions):
            print(f"telemetry p={p}: {proc.telemetry.summary(key=p)}")
    rt.close()
    return 0 if all_delivered else 1


if __name__ == "__main__":
    sys.exit(main())
