"""Pickle-free checkpoints round-trip AdamW exactly; precision follows the hardware."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from training.device import choose_precision, cpu_has_fast_bf16
from training.errors import TrainingError


def _step(model: torch.nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    loss = model(torch.randn(4, 3, generator=g)).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_checkpoint_round_trip_continues_identically(tmp_path: Path) -> None:
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2)
    _step(a, opt_a, 1)
    save_checkpoint(tmp_path, a, opt_a, TrainState(epoch=1, step=1, best_f1=0.5, best_epoch=1), {"x": 1}, None)
    rng_after_save = torch.get_rng_state()
    torch.manual_seed(99)
    b = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-2)
    state, best = load_checkpoint(tmp_path, b, opt_b)
    assert state == TrainState(1, 1, 0.5, 1) and best is None
    assert torch.equal(torch.get_rng_state(), rng_after_save)
    _step(a, opt_a, 2)
    _step(b, opt_b, 2)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.rglob("*.pkl"))


def test_precision_choice_on_this_machine() -> None:
    cpu = torch.device("cpu")
    chosen = choose_precision(cpu, "auto")
    assert chosen.name == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert choose_precision(cpu, "fp32").dtype is None
    with pytest.raises(TrainingError, match="CUDA"):
        choose_precision(cpu, "fp16")
