"""Pickle-free checkpoints round-trip AdamW exactly; precision follows the shared rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.models.precision import Hardware
from training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from training.device import choose_precision
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


@pytest.mark.parametrize("native_bf16", [None, True, False], ids=["this-cpu", "amx", "avx2"])
def test_training_precision_follows_the_shared_rule(native_bf16: bool | None) -> None:
    """fp32 on every CPU unless asked (AMX included), the same rule as inference; bf16 when asked."""
    cpu = torch.device("cpu")
    hw = None if native_bf16 is None else Hardware("cpu", native_bf16, "stated by the test")
    chosen = choose_precision(cpu, "auto", hw)
    assert chosen.name == "fp32" and chosen.dtype is None and not chosen.scaler
    assert choose_precision(cpu, "fp32", hw).dtype is None
    assert choose_precision(cpu, "bf16", hw).dtype is torch.bfloat16
    with pytest.raises(TrainingError, match="CUDA"):
        choose_precision(cpu, "fp16", hw)


def test_training_precision_on_cuda_needs_no_gpu_to_decide() -> None:
    gpu = torch.device("cuda:0")
    assert choose_precision(gpu, "auto", Hardware("cuda", True, "GPU")).dtype is torch.bfloat16
    fp16 = choose_precision(gpu, "auto", Hardware("cuda", False, "old GPU"))
    assert fp16.dtype is torch.float16 and fp16.scaler
