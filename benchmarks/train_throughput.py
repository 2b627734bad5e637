"""CPU training throughput of pix2pix-dist-fast variants (iterations per second).

Measures one full optimisation step (forward, losses, backward, Adam) of the real training system
(:mod:`virtualfocus.training.systems`) on synthetic batches, so the number is the model's cost, not the data
loader's. Aim from the issue: ≥ 8 it/s at batch 4, 256×256 on the 2-core development CPU (DESIGN.md measured
~6.5 it/s for a naive L1 loop and 0.7 it/s with the 70×70 PatchGAN).

    python benchmarks/train_throughput.py                 # default table, ~1–2 minutes
    python benchmarks/train_throughput.py --threads 1     # on a shared machine: no OpenMP spin contention
    python benchmarks/train_throughput.py --steps 20 --variants l1 l1-nchw gan70
    python benchmarks/train_throughput.py --with-data     # adds a row for the first variant fed by the DataLoader

Variants (all pix2pix-dist-fast = 16 filters, 4 levels, unless noted):
    l1              generator alone, L1 loss, channels_last
    l1-nchw         the same in NCHW memory format
    l1-resize       resize-conv decoder
    l1-shuffle      pixel-shuffle decoder
    l1-s2d          pixel-shuffle decoder + space_to_depth=2 (every conv at half resolution)
    l1-dist         L1 + distance loss (frozen focus-distance classifier, layer 3)
    l1-s2d-dist     l1-s2d + distance loss
    gan16           + 16×16 PatchGAN (thesis's "smaller D")
    gan70           + 70×70 PatchGAN (thesis default, 64 filters)
    gan70-d16       + 70×70 PatchGAN with 16 filters (a discriminator as narrow as the generator)
    gan70-dist      thesis pix2pix-dist-fast as published (PatchGAN + distance loss)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

VARIANTS: dict[str, tuple[dict[str, object], bool]] = {
    "l1": ({"adversarial": "none", "lambda_distance": 0.0}, True),
    "l1-nchw": ({"adversarial": "none", "lambda_distance": 0.0}, False),
    "l1-resize": ({"adversarial": "none", "lambda_distance": 0.0, "decoder": "resize-conv"}, True),
    "l1-shuffle": ({"adversarial": "none", "lambda_distance": 0.0, "decoder": "pixelshuffle"}, True),
    "l1-s2d": ({"adversarial": "none", "lambda_distance": 0.0, "decoder": "pixelshuffle", "space_to_depth": 2}, True),
    "l1-dist": ({"adversarial": "none", "distance_classifier": "random"}, True),
    "l1-s2d-dist": ({"adversarial": "none", "distance_classifier": "random", "decoder": "pixelshuffle",
                     "space_to_depth": 2}, True),
    "gan16": ({"adversarial": "bce", "lambda_distance": 0.0, "d_layers": 1}, True),
    "gan70": ({"adversarial": "bce", "lambda_distance": 0.0}, True),
    "gan70-d16": ({"adversarial": "bce", "lambda_distance": 0.0, "d_filters": 16}, True),
    "gan70-dist": ({"adversarial": "bce", "distance_classifier": "random"}, True),
}
DEFAULT = ["l1", "l1-nchw", "l1-resize", "l1-shuffle", "l1-s2d", "l1-dist", "l1-s2d-dist", "gan16", "gan70",
           "gan70-d16"]


def measure(overrides: dict[str, object], channels_last: bool, *, batch: int, size: int, steps: int, warmup: int,
            repeats: int) -> tuple[float, float, float]:
    """Median and spread (max − min) of iterations/s over ``repeats`` timed runs of ``steps`` steps, and the median
    process CPU time per iteration (s) — the number that survives other processes sharing the cores."""
    import torch
    from virtualfocus.training.registry import get_spec
    from virtualfocus.training.systems import make_system

    torch.manual_seed(0)
    spec = get_spec("pix2pix-dist-fast", **overrides)
    system = make_system(spec, device=torch.device("cpu"), amp=False, channels_last=channels_last, seed=0)
    g = torch.Generator().manual_seed(0)
    b = {"x": torch.rand(batch, 3, size, size, generator=g) * 2 - 1,
         "y": torch.rand(batch, 3, size, size, generator=g) * 2 - 1}
    for _ in range(warmup):
        system.train_step(b)
    rates, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(steps):
            system.train_step(b)
        rates.append(steps / (time.perf_counter() - t))
        cpu.append((time.process_time() - c) / steps)
    return statistics.median(rates), max(rates) - min(rates), statistics.median(cpu)


def measure_with_data(overrides: dict[str, object], channels_last: bool, *, batch: int, size: int, steps: int,
                      warmup: int, workers: int) -> float:
    """Iterations/s of a variant fed by the real DataLoader (simulated stacks in memory, augmentation on)."""
    import torch
    from torch.utils.data import DataLoader
    from virtualfocus.training.datasets import DataSpec, StackPairDataset, load_sources
    from virtualfocus.training.registry import get_spec
    from virtualfocus.training.systems import make_system

    refs = load_sources([f"sim:4:{max(size + 32, 288)}"])
    ds = StackPairDataset(refs, DataSpec(crop=size), length=batch * (steps + warmup + 2), seed=0)
    loader = DataLoader(ds, batch_size=batch, num_workers=workers, drop_last=True, persistent_workers=workers > 0)
    system = make_system(get_spec("pix2pix-dist-fast", **overrides), device=torch.device("cpu"), amp=False,
                         channels_last=channels_last)
    it = iter(loader)
    for _ in range(warmup):
        system.train_step(next(it))
    t = time.perf_counter()
    for _ in range(steps):
        system.train_step(next(it))
    return steps / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=DEFAULT, choices=sorted(VARIANTS))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's)")
    p.add_argument("--with-data", action="store_true",
                   help="add a row for the first variant fed by the real DataLoader")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)

    import os

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"pix2pix-dist-fast training throughput: batch {args.batch}, {args.size}×{args.size}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; load average "
          f"{os.getloadavg()[0]:.1f} at start")
    threads = torch.get_num_threads()
    # cpu ms/it: process CPU time per step; "idle it/s" = threads / CPU time, the rate on otherwise idle cores
    # if the step parallelised perfectly (an upper bound; use it to compare variants when the machine is shared).
    print(f"{'variant':12s} {'it/s':>7s} {'±':>6s} {'ms/it':>7s} {'cpu ms/it':>10s} {'idle it/s':>10s}")
    for name in args.variants:
        overrides, cl = VARIANTS[name]
        rate, spread, cpu = measure(overrides, cl, batch=args.batch, size=args.size, steps=args.steps,
                                    warmup=args.warmup, repeats=args.repeats)
        print(f"{name:12s} {rate:7.2f} {spread / 2:6.2f} {1000 / rate:7.1f} {1000 * cpu:10.1f} "
              f"{threads / cpu:10.2f}", flush=True)
    if args.with_data:
        first = args.variants[0]
        rate = measure_with_data(*VARIANTS[first], batch=args.batch, size=args.size, steps=args.steps,
                                 warmup=args.warmup, workers=args.workers)
        print(f"{first + '+data':12s} {rate:7.2f} {'':6s} {1000 / rate:7.1f}  (DataLoader, {args.workers} worker(s))")
    print(f"load average {os.getloadavg()[0]:.1f} at end (other processes share these cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
