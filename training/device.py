"""Device and numeric precision for training, by the same rule as inference.

The rule lives in :mod:`core.models.precision`: fp32 on a CPU unless ``--precision bf16`` is
given (AVX2-only CPUs emulate bf16: 0.12 s vs 0.90 s per 256² tile forward), bf16 on CUDA (fp16
with a grad scaler on GPUs without bf16). No timing, so a rerun on the same computer trains in the
same precision. The choice and its reason are printed and recorded in the run's history.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.errors import ConfigError
from core.models.precision import PRECISION_CHOICES, Hardware, precision_plan
from training.errors import TrainingError

PRECISIONS = PRECISION_CHOICES
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """``dtype`` None = plain float32; ``scaler``: fp16 needs loss scaling against underflow."""

    name: str
    dtype: torch.dtype | None
    scaler: bool
    reason: str


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


def choose_precision(device: torch.device, requested: str = "auto", hardware: Hardware | None = None) -> Precision:
    """The autocast dtype for ``device`` by the rule shared with inference (:mod:`core.models.precision`).

    "auto": fp32 on a CPU (whatever its bf16 support), bf16 on CUDA (fp16 with a grad scaler on
    GPUs without bf16). An explicit request is honoured or refused, its cost stated.
    ``hardware``: the device's facts (None: probed); tests pass a CPU with native bf16.
    """
    try:
        plan = precision_plan(requested, hardware or Hardware.probe(device))
    except ConfigError as err:
        raise TrainingError(f"--precision {requested}: {err}") from None
    name = plan.candidates[0]
    return Precision(name, _DTYPES[name], name == "fp16", plan.reason)
