"""The numeric precision rule shared by inference (core.models.runtime) and training (training.device).

Why a rule and not a measurement: choosing bf16 when a timing at load time says it is faster made
the same slide on the same computer come out in fp32 one day and bf16 the next (and failed the
test suite on CPUs with AMX). Scores must not depend on how busy the machine was. So:

- **CPU: fp32**, unless the caller (the user, the lab's settings, a CLI flag) asks for bf16. fp16
  is refused on a CPU. bf16 on a CPU without native support (AMX / AVX512-BF16) is honoured but
  the reason says it is emulated and several times slower (0.12 s vs 0.90 s per 256² tile on AVX2).
- **CUDA: bf16** where the GPU supports it, else **fp16**: tensor cores make them much faster and the
  choice depends only on the GPU model, so it is deterministic per machine. Inference still
  checks parity (argmax agreement with fp32) and falls back to fp32 when a reduced precision fails.
- An explicit request is never changed silently: it is used or refused with a message.

The hardware facts are an argument (:class:`Hardware`), so the rule can be checked for a CPU with
native bf16 on a computer without one (tests do exactly that) and nothing reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.models.card import PRECISIONS

if TYPE_CHECKING:
    import torch

__all__ = ["PRECISIONS", "PRECISION_CHOICES", "RUNTIMES", "Hardware", "PrecisionPlan", "cpu_bf16_support", "precision_plan"]

#: PRECISIONS (fp32, bf16, fp16) plus "auto" (or None): the device's default by the rule above.
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)
#: CPU inference runtimes at fp32 (core.models.onnx_runtime.with_runtime); here, without torch, for the CLIs.
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnxruntime")


@dataclass(frozen=True)
class Hardware:
    """What the rule needs to know about a device.

    device_type: "cpu" or "cuda"; native_bf16: the CPU has AMX-BF16/AVX512-BF16, or the GPU supports
    bf16; description: one line for the recorded reason.
    """

    device_type: str
    native_bf16: bool
    description: str

    @classmethod
    def probe(cls, device: torch.device | str) -> Hardware:
        """The facts of this computer for ``device`` (reads /proc/cpuinfo or asks CUDA)."""
        import torch

        dev = torch.device(device)
        if dev.type == "cuda":
            native = bool(torch.cuda.is_bf16_supported())
            name = torch.cuda.get_device_name(dev)
            return cls("cuda", native, f"{name} ({'with' if native else 'without'} bf16)")
        native, why = cpu_bf16_support()
        return cls("cpu", native, why)


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU runs bf16 natively (AMX-BF16 or AVX512-BF16), and a one-line reason."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    native = sorted(flags & {"amx_bf16", "avx512_bf16"})
    if native:
        return True, f"CPU has native bf16 ({', '.join(native)}; PyTorch capability {capability})"
    return False, (
        f"CPU has no native bf16 (no AMX/AVX512-BF16; PyTorch capability {capability}), so bf16 would be "
        "emulated and several times slower than fp32"
    )


@dataclass(frozen=True)
class PrecisionPlan:
    """The precisions to try, best first (inference parity-checks all but fp32), and why.

    ``fallback``: fp32 may replace a candidate that fails the parity check (only for the default,
    never for an explicit request).
    """

    candidates: tuple[str, ...]
    reason: str
    fallback: bool


def precision_plan(requested: str | None, hardware: Hardware) -> PrecisionPlan:
    """Apply the rule (module docstring) to ``requested`` (None/"auto" = the device default).

    Raises ConfigError for an unknown name or a precision the device cannot use (fp16 on a CPU,
    bf16 on a GPU without it), naming the valid choices.
    """
    if requested is None:
        requested = "auto"
    if requested not in PRECISION_CHOICES:
        raise ConfigError(f"Unknown precision {requested!r}; choose one of {', '.join(PRECISION_CHOICES)}.")
    if requested == "fp32":
        return PrecisionPlan(("fp32",), "fp32 requested", fallback=False)
    if hardware.device_type == "cpu":
        if requested == "fp16":
            raise ConfigError("fp16 is only used on CUDA GPUs; on the CPU choose fp32 or bf16.")
        if requested == "auto":
            return PrecisionPlan(("fp32",), "fp32: the CPU default (bf16 only when the settings ask for it)",
                                 fallback=False)
        cost = "" if hardware.native_bf16 else "; expect it to be several times slower than fp32"
        return PrecisionPlan(("bf16",), f"bf16 requested; {hardware.description}{cost}", fallback=False)
    if requested == "bf16" and not hardware.native_bf16:
        raise ConfigError(f"bf16 was requested but this GPU has no bf16 support ({hardware.description}); "
                          "choose fp16 or fp32.")
    if requested == "auto":
        first = "bf16" if hardware.native_bf16 else "fp16"
        return PrecisionPlan((first,), f"{first}: the CUDA default on {hardware.description}", fallback=True)
    return PrecisionPlan((requested,), f"{requested} requested; {hardware.description}", fallback=False)
