"""Overload: with every core busy, the runtime keeps delivering every frame — stepped down, late ones raw and
flagged — within a bounded time."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
from virtualfocus.edge import FocusRuntime, FrameStatus
from virtualfocus.edge.events import FallbackEngaged


def _burn(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_cpu_hog_on_every_core_loses_no_frame(blur_model):
    rt = FocusRuntime.load(blur_model, warmup=5, budget_ms=0.05, deadline_ms=8, queue_size=8)
    engaged = []
    rt.events.connect(FallbackEngaged, engaged.append)
    ctx = mp.get_context("spawn")
    hogs = [ctx.Process(target=_burn, args=(4.0,), daemon=True) for _ in range(os.cpu_count() or 2)]
    for h in hogs:
        h.start()
    try:
        time.sleep(0.3)
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 255, (360, 360, 3), dtype=np.uint8) for _ in range(4)]
        t0 = time.perf_counter()
        futs = [rt.submit(frames[i % 4], meta={"i": i}) for i in range(120)]
        results = [f.result(timeout=30) for f in futs]
        elapsed = time.perf_counter() - t0
    finally:
        for h in hogs:
            h.terminate()
            h.join(5)
        rt.close()
    assert [r.meta["i"] for r in results] == list(range(120))  # every frame back, matched to its capture
    statuses = {r.status for r in results}
    assert statuses <= {FrameStatus.RESTORED, FrameStatus.PASSTHROUGH, FrameStatus.LATE, FrameStatus.OVERFLOW}
    assert statuses & {FrameStatus.PASSTHROUGH, FrameStatus.LATE, FrameStatus.OVERFLOW}
    assert engaged and engaged[0].to_variant == "passthrough"
    raw = [r for r in results if r.status is not FrameStatus.RESTORED]
    assert all(np.array_equal(r.image, frames[r.meta["i"] % 4]) and r.message for r in raw)
    assert elapsed < 20
