"""Two CPU processes (torchrun, gloo) train through the DDP wrapper; parameters end identical on both ranks."""
import socket
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from safetensors.torch import load_file
from test_train import FAST, assert_same_tensors, env

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_ranks_stay_identical(tmp_path):
    out = tmp_path / "ddp"
    fast = [x for x in FAST if not x.startswith(("num_threads", "data.batch_size"))]
    cmd = [PY, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "train.py", "--config", "configs/train/tiny_unified.yaml", *fast, f"output_dir={out}",
           "data.batch_size=1", "optim.grad_accum_steps=2", "max_steps=3", "checkpoint.every=0",
           "log.sample_every=0", "num_threads=1", "debug.dump_params=true",
           "data.memory.tasks=[recognize, recognize, t2i, edit]"]      # text-only batches: unused decoder params
    e = env()
    e.update(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=400, check=False)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-5000:])
    assert "MULTI_CPU, 2 process(es)" in r.stdout and "model wrapper DistributedDataParallel" in r.stdout, r.stdout
    a = load_file(str(out / "debug" / "rank0.safetensors"))
    b = load_file(str(out / "debug" / "rank1.safetensors"))
    assert_same_tensors(a, b)
    assert all(torch.isfinite(v).all() for v in a.values())
    ck = load_file(str(out / "checkpoints" / "step_00000003" / "trainable.safetensors"))
    assert_same_tensors(a, ck)
    # it trained (weights moved from the seed's init) and both ranks reported to one run
    from textharmony.train.config import load_train_config
    from textharmony.train.loop import build_model
    cfg = load_train_config(str(ROOT / "configs/train/tiny_unified.yaml"), fast + [f"output_dir={tmp_path}/x"])
    init = dict(build_model(cfg).named_parameters())
    moved = [n for n in a if not torch.equal(a[n], init[n].detach())]
    assert len(moved) > len(a) // 2
    st = (out / "checkpoints" / "step_00000003" / "trainer_state.json").read_text()
    assert '"world_size": 2' in st
    assert (out / "checkpoints" / "step_00000003" / "ranks" / "rank1.pt").exists()
