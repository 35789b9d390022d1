"""Run a model: pick the device and the numeric precision, then turn tiles into class probabilities.

``load_model`` builds on :func:`core.models.load_weights` (sha256-verified safetensors; never a
pickle) and decides two things once, at load time, recording why:

- **device**: CUDA when available, else CPU; ``"cuda"`` on a computer without it is an error that
  says so and offers the CPU, never a silent fallback.
- **precision**: by a fixed rule, never by timing (:mod:`core.models.precision`): fp32 on a CPU
  unless bf16 is asked for; on CUDA bf16 (or fp16 without bf16 support). Any reduced precision
  must also pass a parity check: on a fixed seeded input, its argmax classes agree with fp32 on at
  least 99.5% of pixels. ``LoadedModel.precision_reason`` says what was chosen and why; the engine
  records both in every run's summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import platformdirs
import torch

from core.errors import ConfigError, ModelLoadError
from core.models.card import ModelCard
from core.models.precision import Hardware, precision_plan
from core.models.weights import load_weights
from core.resources import demo_model_dir

#: Minimum fraction of pixels whose argmax class must agree with fp32 for a reduced precision.
PARITY_THRESHOLD = 0.995
_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class LoadedModel:
    """A network ready for inference on ``device`` in ``precision`` ("fp32", "bf16", "fp16").

    ``predict*`` take a float32 batch (N, 1, H, W) already normalised with :mod:`core.normalise`,
    as numpy or a tensor. Call them from one thread at a time.
    """

    module: torch.nn.Module
    card: ModelCard
    device: torch.device
    precision: str = "fp32"
    precision_reason: str = ""
    directory: Path | None = None
    #: What runs the network (subclasses: "onnxruntime"); part of the engine's checkpoint key.
    runtime: ClassVar[str] = "torch"

    def to_device(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """A float32 batch on the model's device. On CUDA the host copy is pinned and the transfer
        asynchronous (``non_blocking``), so the next batch can be prepared while this one moves."""
        x = torch.as_tensor(batch, dtype=torch.float32)
        if x.ndim != 4:
            raise ValueError(f"expected a batch (N, C, H, W), got shape {tuple(x.shape)}")
        if self.device.type == "cuda" and x.device.type == "cpu":
            x = x.pin_memory()
        return x.to(self.device, non_blocking=True)

    def logits(self, x: torch.Tensor, crop: int = 0) -> torch.Tensor:
        """float32 logits (N, C, H − 2·crop, W − 2·crop) of a normalised batch already on the device."""
        x = x.contiguous(memory_format=torch.channels_last)
        dtype = _AUTOCAST[self.precision]
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            out = self.module(x)
        if crop > 0:
            out = out[:, :, crop:-crop, crop:-crop]
        return out.float()

    def _probabilities(self, batch: np.ndarray | torch.Tensor, crop: int) -> torch.Tensor:
        return torch.softmax(self.logits(self.to_device(batch), crop), dim=1)

    def predict(self, batch: np.ndarray | torch.Tensor, crop: int = 0) -> np.ndarray:
        """Softmax probabilities, float32 numpy (N, C, H − 2·crop, W − 2·crop).

        ``crop``: pixels removed from each side before the softmax (the tile's context margin).
        """
        return self._probabilities(batch, crop).cpu().numpy()

    def predict_classes(self, batch: np.ndarray | torch.Tensor, crop: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Argmax class (uint8, N×H×W) and its softmax probability (float32, N×H×W).

        The engine's path: half the transfer and none of the (N, C, H, W) copy of :meth:`predict`.
        """
        cls, prob = classes_from_logits(self.logits(self.to_device(batch), crop))
        return cls.cpu().numpy(), prob.cpu().numpy()


def classes_from_logits(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax class uint8, its softmax probability float32), both (N, H, W), on the logits' device.

    The winner's softmax probability is exp(0) / Σ exp(l − max) = 1 / Σ exp(l − max): one max and
    one exp pass over the logits instead of a full softmax and a second max (ties: lowest class).
    """
    with torch.inference_mode():
        top, cls = logits.max(dim=1)
        prob = torch.exp(logits - top.unsqueeze(1)).sum(dim=1).reciprocal_()
    return cls.to(torch.uint8), prob


def default_model_dir() -> Path:
    """The demo model: the shipped one (:func:`core.resources.demo_model_dir`), else the user's
    installed ``models/demo`` (platformdirs user data dir). Returns the shipped path when neither exists."""
    shipped = demo_model_dir()
    if not (shipped / "model.json").exists():
        installed = Path(platformdirs.user_data_dir("HoechstScore")) / "models" / "demo"
        if (installed / "model.json").exists():
            return installed
    return shipped


def resolve_device(device: str | torch.device | None) -> torch.device:
    """CUDA when available and ``device`` is None; otherwise the requested device, checked."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"Unknown device {device!r}; choose 'cpu' or 'cuda'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            "CUDA was requested but is not available on this computer (no NVIDIA GPU, driver or CUDA "
            "build of PyTorch found). Use the CPU instead (--device cpu): slower but the same results."
        )
    if dev.type not in ("cpu", "cuda"):
        raise ModelLoadError(f"Device {device!r} is not supported; choose 'cpu' or 'cuda'.")
    return dev


def parity_input(size: int = 128, n: int = 2, seed: int = 0) -> np.ndarray:
    """A fixed, seeded, nucleus-like batch (n, 1, size, size) normalised to [0, 1] for parity checks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, 1, size, size), dtype=np.float32)
    for i in range(n):
        img = rng.normal(0.08, 0.02, (size, size)).astype(np.float32)
        for _ in range(max(4, size * size // 900)):
            cy, cx = rng.uniform(0, size, 2)
            r = rng.uniform(4, 12)
            img += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        out[i, 0] = (img - img.min()) / (img.max() - img.min())
    return out


def precision_agreement(module: torch.nn.Module, x: np.ndarray, device: torch.device, precision: str) -> float:
    """Fraction of pixels whose argmax class under ``precision`` equals the fp32 one (0–1)."""
    card = ModelCard(name="parity")
    ref = LoadedModel(module, card, device, "fp32").predict_classes(x)[0]
    low = LoadedModel(module, card, device, precision).predict_classes(x)[0]
    return float(np.mean(ref == low))


def choose_precision(
    module: torch.nn.Module,
    card: ModelCard,
    device: torch.device,
    requested: str | None = None,
    hardware: Hardware | None = None,
) -> tuple[str, str]:
    """(precision, reason) for ``module`` on ``device`` by the rule of :mod:`core.models.precision`.

    ``requested``: None or "auto" = the device default (fp32 on a CPU; bf16/fp16 on CUDA);
    ``hardware``: the device's facts (None: probed). No timing is involved, so the same computer
    always makes the same choice. Reduced precisions must agree with fp32 on the argmax class of
    at least PARITY_THRESHOLD of the pixels of a fixed seeded input: an explicit request that fails
    raises ModelLoadError; the CUDA default falls back to fp32 and says why.
    """
    try:
        plan = precision_plan(requested, hardware or Hardware.probe(device))
    except ConfigError as err:
        raise ModelLoadError(str(err)) from None
    if plan.candidates == ("fp32",):
        return "fp32", plan.reason
    x = parity_input(size=min(card.patch_size, 256))
    failures = []
    for precision in plan.candidates:
        agreement = precision_agreement(module, x, device, precision)
        if agreement >= PARITY_THRESHOLD:
            return precision, f"{plan.reason}; agrees with fp32 on {agreement:.2%} of pixels"
        failures.append(f"{precision} agrees with fp32 on only {agreement:.2%} of pixels (< {PARITY_THRESHOLD:.1%})")
    if not plan.fallback:
        raise ModelLoadError(f"Refusing {plan.candidates[0]} for this model: {failures[0]}. Use fp32.")
    return "fp32", f"fp32: {'; '.join(failures)}"


def load_model(
    directory: str | Path,
    device: str | torch.device | None = None,
    precision: str | None = None,
    hardware: Hardware | None = None,
) -> LoadedModel:
    """Load a verified model from ``directory`` (model.json + model.safetensors) for inference.

    ``device``: None (CUDA if available, else CPU), "cpu" or "cuda". ``precision``: None or "auto"
    (the device default: fp32 on a CPU, bf16/fp16 after a parity check on CUDA), "fp32", "bf16"
    or "fp16". ``hardware``: the device's facts for the rule (None: probed; tests pass their own).
    Raises ModelCardError/ModelLoadError.
    """
    directory = Path(directory)
    if not directory.exists():
        raise ModelLoadError(
            f"No model at {directory}. Give a model directory (model.json + model.safetensors) with --model."
        )
    dev = resolve_device(device)
    module, card = load_weights(directory)
    module = module.to(dev).to(memory_format=torch.channels_last).eval()
    chosen, reason = choose_precision(module, card, dev, precision, hardware)
    return LoadedModel(module, card, dev, chosen, reason, directory)


def cpu_threads_hint() -> int:
    """Cores this process may use (respects CPU affinity), for thread allocation."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
