"""Stand-in models for benchmarks: the model's output shape at a known cost, so the pipeline is measured alone.

A real U-Net on a developer CPU takes ~0.2 s per tile and hides everything around it; on a GPU or
an AMX CPU the model takes milliseconds and the pipeline is the whole cost. A stand-in returns
logits of the model card's shape from a cheap, fixed, per-pixel function of the input, so the
class map has realistic cells (bright nuclei become components; each 64-px square of a tile
gives them one positive class, so every class occurs) and extraction does its real work:

- ``instant``: just that function (well under 1 ms per tile): the pipeline's own ceiling.
- ``sleep``: plus ``time.sleep`` of ``ms_per_tile`` per tile, like an accelerator that computes
  while the CPU is free (the GPU case).
- ``compute``: plus about ``ms_per_tile`` of PyTorch convolutions per tile on the CPU's threads,
  like a fast CPU model that competes with the pipeline for the cores (the AMX case).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from core.models.card import ModelCard
from core.models.runtime import LoadedModel

KINDS = ("instant", "sleep", "compute")
#: Normalised intensity above which a pixel is "nucleus" (per-patch min-max; phantom nuclei are bright).
THRESHOLD = 0.35
#: Side (px) of the squares that share one positive class.
SQUARE = 64


class StandInNet(torch.nn.Module):
    """Logits (N, C, H, W): background = THRESHOLD, positive class k(square) = x, the others x − 1."""

    busy_kernel: torch.Tensor  # a registered buffer (moves with the module)

    def __init__(self, n_classes: int, kind: str = "instant", ms_per_tile: float = 0.0, patch: int = 256) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"stand-in kind must be one of {', '.join(KINDS)}, not {kind!r}")
        self.n_classes = n_classes
        self.kind = kind
        self.ms_per_tile = ms_per_tile
        self.register_buffer("busy_kernel", torch.full((8, 1, 5, 5), 1 / 25.0))
        self.repeats = 0
        self._bias_cache: dict[tuple[int, int, str], torch.Tensor] = {}
        if kind == "compute" and ms_per_tile > 0:
            self.repeats = self._calibrate(patch)

    def _bias(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """(1, C−1, H, W): 0 for the square's class, −1 for the others (made once per shape)."""
        key = (h, w, str(device))
        if key not in self._bias_cache:
            self._bias_cache[key] = self._make_bias(h, w, device)
        return self._bias_cache[key]

    def _make_bias(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        yy = torch.arange(h, device=device).view(h, 1) // SQUARE
        xx = torch.arange(w, device=device).view(1, w) // SQUARE
        chosen = (yy * 7 + xx * 3) % max(1, self.n_classes - 1)
        classes = torch.arange(self.n_classes - 1, device=device).view(-1, 1, 1)
        return ((chosen[None] == classes).float() - 1.0)[None]

    def _busy(self, x: torch.Tensor, repeats: int) -> torch.Tensor:
        acc = x.new_zeros(())
        for _ in range(repeats):
            acc = acc + F.conv2d(x, self.busy_kernel, padding=2).mean()
        return acc

    def _calibrate(self, patch: int) -> int:
        """Convolution repeats per forward call that cost ``ms_per_tile`` per tile (best of 3)."""
        x = torch.rand(4, 1, patch, patch)
        with torch.inference_mode():
            self._busy(x, 1)
            best = min(self._timed(x) for _ in range(3))
        return max(1, math.ceil(self.ms_per_tile / 1000 * 4 / best))

    def _timed(self, x: torch.Tensor) -> float:
        t0 = time.perf_counter()
        self._busy(x, 2)
        return (time.perf_counter() - t0) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.kind == "sleep" and self.ms_per_tile > 0:
            time.sleep(self.ms_per_tile / 1000 * n)
        if self.repeats:
            # Repeats were calibrated on 4 tiles; scale to this batch so the cost stays per tile.
            x = x + 0.0 * self._busy(x, max(1, round(self.repeats * n / 4)))
        threads = torch.get_num_threads()
        if x.device.type == "cpu":  # the output itself is a few memory-bound ops: one thread,
            torch.set_num_threads(1)  # no barrier waiting for a busy core (see analyse._one_thread)
        try:  # written in place: one pass over the output, no concatenated copies
            out = torch.empty((n, self.n_classes, h, w), device=x.device)
            out[:, :1].fill_(THRESHOLD)
            torch.add(x.float(), self._bias(h, w, x.device), out=out[:, 1:])
            return out
        finally:
            torch.set_num_threads(threads)


def standin_model(card: ModelCard, kind: str = "instant", ms_per_tile: float = 0.0) -> LoadedModel:
    """A CPU fp32 :class:`LoadedModel` with ``card``'s classes, pixel size and patch, and no weights."""
    net = StandInNet(card.n_classes, kind, ms_per_tile, card.patch_size).eval()
    what = f"stand-in model ({kind}{f', {ms_per_tile:g} ms/tile' if kind != 'instant' else ''}); speed only"
    return LoadedModel(net, card, torch.device("cpu"), "fp32", what)
