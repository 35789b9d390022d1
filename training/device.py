"""Device and numeric precision for training: mixed precision only where the hardware has it.

Measured on an AVX2-only CPU (no AMX / AVX512-BF16): a resnet34 U-Net forward on a 256² tile takes
0.12 s in float32 but 0.90 s under bfloat16 autocast, because bf16 is emulated. So "auto" picks
bf16 only on CUDA (fp16 with a grad scaler on GPUs without bf16) and on CPUs that report
``avx512_bf16`` or ``amx_bf16``; everywhere else it trains in float32. The choice is printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from training.errors import TrainingError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """``dtype`` None = plain float32; ``scaler``: fp16 needs loss scaling against underflow."""

    name: str
    dtype: torch.dtype | None
    scaler: bool
    reason: str


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matrix units (AMX or AVX512-BF16), per /proc/cpuinfo and torch."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        flags = ""
    if "amx_bf16" in flags or "avx512_bf16" in flags:
        return True
    try:
        return "AMX" in torch.backends.cpu.get_cpu_capability().upper()
    except (AttributeError, RuntimeError):
        return False


def choose_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this rank's CUDA device if there is one, else the CPU."""
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(requested)
    except RuntimeError:
        raise TrainingError(f"--device {requested!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {requested}: no CUDA GPU is available here; use --device cpu.")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def choose_precision(device: torch.device, requested: str = "auto") -> Precision:
    """The autocast dtype for ``device``; an explicit request is honoured (with its cost stated)."""
    if requested not in PRECISIONS:
        raise TrainingError(f"--precision {requested!r}; valid: {', '.join(PRECISIONS)}.")
    if requested == "fp32":
        return Precision("fp32", None, False, "requested")
    if device.type == "cuda":
        if requested in ("auto", "bf16") and torch.cuda.is_bf16_supported():
            return Precision("bf16", torch.bfloat16, False, "CUDA with bf16 support")
        if requested == "bf16":
            raise TrainingError("--precision bf16: this GPU has no bf16 support; use fp16 or fp32.")
        return Precision("fp16", torch.float16, True, "CUDA without bf16: fp16 with loss scaling")
    fast = cpu_has_fast_bf16()
    if requested == "fp16":
        raise TrainingError("--precision fp16 is for CUDA GPUs; on a CPU use fp32 (or bf16 with AMX/AVX512-BF16).")
    if requested == "bf16":
        why = "requested" if fast else "requested, but this CPU emulates bf16 (AVX2 only): expect ~7x slower"
        return Precision("bf16", torch.bfloat16, False, why)
    if fast:
        return Precision("bf16", torch.bfloat16, False, "CPU with AMX/AVX512-BF16")
    cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
    return Precision("fp32", None, False, f"CPU ({cap}) without native bf16: mixed precision would be slower")
