"""Shutdown: a runtime (or stream) left open at interpreter exit, or garbage-collected, resolves every frame and
stops its threads before the inference libraries unload; closing twice is harmless."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
from virtualfocus.edge import FocusRuntime
from virtualfocus.edge.integrations.callbacks import FrameStream

_EXIT_WITHOUT_CLOSE = """
import sys
import numpy as np
from virtualfocus.edge import FocusRuntime

out = sys.argv[1]
rt = FocusRuntime.load({model}warmup=5)
rng = np.random.default_rng(0)

def save(fut):
    fr = fut.result()
    with open(out, "a") as f:
        f.write(f"{{fr.index}} {{fr.status.value}}\\n")

for i in range(20):
    rt.submit(rng.integers(0, 255, (360, 360, 3), dtype=np.uint8)).add_done_callback(save)
{tail}
"""


def _run(tmp_path: Path, *, model: str = "", tail: str = "") -> tuple[subprocess.CompletedProcess[str], list[str]]:
    script = tmp_path / "acquire.py"
    script.write_text(textwrap.dedent(_EXIT_WITHOUT_CLOSE.format(model=model, tail=tail)))
    out = tmp_path / "saved.txt"
    proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300)
    lines = out.read_text().splitlines() if out.exists() else []
    return proc, lines


def test_script_ending_without_close_exits_cleanly_and_runs_every_callback(tmp_path):
    # The scenario with the shipped default: it used to abort (exit 134) with 3 of 20 callbacks run.
    proc, saved = _run(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "terminate called" not in proc.stderr
    assert sorted(int(line.split()[0]) for line in saved) == list(range(20))


def test_open_stream_at_exit_delivers_every_frame(tmp_path, identity_model):
    tail = f"""
from virtualfocus.edge.integrations.callbacks import FrameStream
stream = FrameStream(rt, on_frame=lambda f: open({str(tmp_path / 'stream.txt')!r}, "a").write(f"{{f.seq}}\\n"))
for i in range(10):
    stream.push(np.zeros((64, 64, 3), np.uint8))
"""
    proc, saved = _run(tmp_path, model=f"{str(identity_model)!r}, ladder=False, ", tail=tail)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(saved) == 20  # the 20 submitted directly; the stream's 10 are counted by its listener
    assert sorted(int(v) for v in (tmp_path / "stream.txt").read_text().split()) == list(range(10))


def _runtime_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("virtualfocus-worker", "virtualfocus-deadlines")]


def test_collected_runtime_finishes_its_queue_then_stops_its_threads(identity_model):
    before = len(_runtime_threads())
    rt = FocusRuntime.load(identity_model, ladder=False, warmup=5, deadline_ms=10_000)
    futures = [rt.submit(np.full((64, 64, 3), i, np.uint8)) for i in range(8)]
    del rt
    gc.collect()
    frames = [f.result(timeout=30) for f in futures]  # the queued frames kept it alive until they were done
    assert [f.index for f in frames] == list(range(8)) and all(f.status.value == "restored" for f in frames)
    end = time.monotonic() + 10
    while len(_runtime_threads()) > before and time.monotonic() < end:
        gc.collect()
        time.sleep(0.05)
    assert len(_runtime_threads()) == before


def test_close_twice_and_context_manager(identity_model):
    with FocusRuntime.load(identity_model, ladder=False, warmup=5) as rt:
        fut = rt.submit(np.zeros((64, 64, 3), np.uint8))
    assert rt.closed and fut.done()
    rt.close()
    rt.close(drain=False)
    late = rt.submit(np.zeros((64, 64, 3), np.uint8)).result(timeout=1)
    assert late.status.value == "closed"


def test_stream_close_twice(identity_model):
    with FocusRuntime.load(identity_model, ladder=False, warmup=5) as rt:
        stream = FrameStream(rt)
        stream.push(np.zeros((64, 64, 3), np.uint8))
        assert stream.close() and stream.close()
