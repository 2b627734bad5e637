"""DDP through the real engine: `torchrun` launches 2 gloo processes on CPU that train a couple of steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from virtualfocus.training.checkpoint import load_checkpoint
from virtualfocus.training.config import read_run_config

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from virtualfocus.training.config import TrainConfig
    from virtualfocus.training.registry import get_spec
    from virtualfocus.training.systems import make_system
    from virtualfocus.training.trainer import train

    torch.set_num_threads(1)
    stacks, run, out = sys.argv[1:4]
    dist.init_process_group("gloo")
    rank = dist.get_rank()

    # 1. gradients are averaged: different data per rank, identical weights after the steps
    torch.manual_seed(0)
    spec = get_spec("pix2pix-dist-fast", adversarial="bce", lambda_distance=0, filters=4, levels=2, d_filters=4)
    system = make_system(spec, device=torch.device("cpu"), amp=False, seed=rank)
    system.wrap_ddp(lambda m: DDP(m))
    g = torch.Generator().manual_seed(100 + rank)
    for _ in range(2):
        batch = {"x": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, "y": torch.rand(2, 3, 32, 32, generator=g) * 2 - 1}
        system.train_step(batch)
    sums = [float(sum(p.double().sum() for p in m.parameters())) for m in system.networks.values()]
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, sums)

    # 2. the trainer under torchrun: DistributedSampler, rank-0 files, barrier
    cfg = TrainConfig(model="pix2pix-dist-fast", data=(stacks,), steps=2, crop=32, val_every=2, workers=0,
                      progress=False, samples_per_epoch=16, batch_size=2)
    state = train(cfg, get_spec("pix2pix-dist-fast", adversarial="none", lambda_distance=0), run)
    with open(f"{out}.{rank}.json", "w") as fh:
        json.dump({"world": dist.get_world_size(), "sums": everyone, "step": state.step}, fh)
    dist.destroy_process_group()
''')


@pytest.mark.slow
def test_torchrun_gloo_two_processes(sim_stacks: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp_job.py"
    script.write_text(SCRIPT)
    run, out = tmp_path / "run", tmp_path / "result"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(sim_stacks), str(run), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [json.loads(Path(f"{out}.{r}.json").read_text()) for r in range(2)]
    assert all(r["world"] == 2 and r["step"] == 2 for r in results)
    sums = results[0]["sums"]
    assert len(sums) == 2 and sums[0] == sums[1]  # generator and discriminator in sync across ranks
    assert read_run_config(run)[2].step == 2
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
    assert (run / "checkpoints" / "best.pt").is_file()
