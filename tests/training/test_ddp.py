"""DistributedDataParallel for real: two CPU processes on gloo under torchrun, as on a GPU cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]


def test_two_processes_see_disjoint_data_and_end_identical(
    train_phantom: Path, patch_cache: Path, tmp_path: Path, tiny: list[str]
) -> None:
    out, record = tmp_path / "run", tmp_path / "record"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.retrain", "--slides", str(train_phantom), "--cache", str(patch_cache), "--out", str(out),
           *tiny, "--batch-size", "8", "--epochs", "2", "--patches-per-epoch", "16", "--device", "cpu",
           "--threads", "1", "--debug-record-dir", str(record),
           "--balance", "none"]  # disjoint patches: the plain sampler (weighted draws are with replacement)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    seen = [json.loads((record / f"rank{r}-indices.json").read_text()) for r in (0, 1)]
    for epoch in ("1", "2"):
        a, b = set(seen[0][epoch]), set(seen[1][epoch])
        assert len(a) == len(b) == 8 and not a & b, epoch
    w0, w1 = (load_file(str(record / f"rank{r}.safetensors")) for r in (0, 1))
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert (out / "model.json").is_file()
