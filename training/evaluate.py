"""Evaluate a model on labelled patches: per pixel and per cell centroid, soft and hard, per slide.

Per centroid: the prediction at the centroid pixel of each labelled cell that lies in a patch
(slides: every cell of the labeller's cell table, including 'other' cells, so false positives on
unlabelled nuclei count; tile folders: the connected components of each positive class). Patches
overlap, so a cell near a patch edge can be counted in two patches, as in the paper.

``python -m training.evaluate --model DIR --slides S.ome.tif ... --out DIR`` evaluates a trained
(or installed) model on slides it never saw: they are labelled with the same config, cut without
overlap, and scored; metrics.json and the printed table are the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from core.errors import CoreError
from core.models import load_weights
from core.progress import CancelToken, Progress, run_to_completion
from training.cli_common import add_input_args, add_label_args, config_from_args, prepare_inputs
from training.dataset import PatchDataset, PatchSet
from training.device import choose_device, choose_precision
from training.metrics import Counts, format_scores
from training.patches import CacheEntry, PatchParams


@dataclass
class Evaluation:
    """Sums for the whole set and per slide; ``loss``: mean pixel cross-entropy."""

    pixel: Counts = field(default_factory=Counts)
    centroid: Counts = field(default_factory=Counts)
    per_slide: dict[str, tuple[Counts, Counts]] = field(default_factory=dict)
    loss_sum: float = 0.0
    patches: int = 0

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.patches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "patches": self.patches,
            "loss": self.loss,
            "pixel": self.pixel.scores(),
            "centroid": self.centroid.scores(),
            "per_slide": {s: {"pixel": p.scores(), "centroid": c.scores()} for s, (p, c) in sorted(self.per_slide.items())},
        }

    def report(self) -> str:
        parts = [format_scores("Per pixel", self.pixel.scores()), format_scores("Per centroid", self.centroid.scores())]
        for s, (p, c) in sorted(self.per_slide.items()):
            ps, cs = p.scores(), c.scores()
            parts.append(
                f"Slide {s}: per-pixel F1 (avg, soft/hard) {ps['soft']['average']['f1']:.3f}/{ps['hard']['average']['f1']:.3f}; "
                f"per-centroid {cs['soft']['average']['f1']:.3f}/{cs['hard']['average']['f1']:.3f}"
            )
        return "\n\n".join(parts)


class _Centroids:
    """Centroid rows (y, x, class) of each cached patch, looked up by (entry, local index)."""

    def __init__(self) -> None:
        self._by_entry: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def get(self, entry: CacheEntry, local: int) -> np.ndarray:
        key = str(entry.path)
        if key not in self._by_entry:
            z = np.load(entry.path / "centroids.npz")
            order = np.argsort(z["patch"], kind="stable")
            rows = np.column_stack([z["y"], z["x"], z["cls"]])[order]
            self._by_entry[key] = (z["patch"][order], rows, order)
        patch, rows, _ = self._by_entry[key]
        a, b = np.searchsorted(patch, [local, local + 1])
        return rows[a:b]


def evaluate(
    model: torch.nn.Module,
    data: PatchDataset,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    batch_size: int = 16,
    rank: int = 0,
    world: int = 1,
    per_slide: bool = True,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, Evaluation]:
    """Predict every patch of ``data`` (this rank's share) and sum the metrics; all-reduced under DDP."""
    cancel = cancel or CancelToken()
    model.eval()
    result = Evaluation()
    cents = _Centroids()
    positions = list(range(rank, len(data.indices), world))
    n_classes = 0
    with torch.inference_mode():
        for start in range(0, len(positions), batch_size):
            cancel.check()
            chunk = positions[start : start + batch_size]
            items = [data.raw(i) for i in chunk]
            x = torch.from_numpy(np.stack([im for im, _ in items])[:, None]).to(device)
            y = torch.from_numpy(np.stack([lab for _, lab in items]).astype(np.int64)).to(device)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                logits = model(x)
            logits = logits.float()
            n_classes = logits.shape[1]
            result.loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="none").mean((1, 2)).sum())
            probs = torch.softmax(logits, 1).cpu()
            y = y.cpu()
            result.pixel.update(probs, y)
            for j, i in enumerate(chunk):
                entry, local = data.patches.locate(int(data.indices[i]))
                c = cents.get(entry, local)
                cp = probs[j, :, c[:, 0], c[:, 1]].T if len(c) else torch.zeros((0, n_classes))
                cy = torch.from_numpy(c[:, 2].astype(np.int64))
                result.centroid.update(cp, cy)
                if per_slide:
                    name = data.patches.slide_of(np.asarray([data.indices[i]]))[0]
                    p, cc = result.per_slide.setdefault(name, (Counts(), Counts()))
                    p.update(probs[j : j + 1], y[j : j + 1])
                    cc.update(cp, cy)
            result.patches += len(chunk)
            yield Progress(min(start + batch_size, len(positions)), len(positions), "Evaluating")
    if world > 1:
        _all_reduce(result, data, device)
    return result


def reduce_sum(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``all_reduce`` (sum) of a CPU tensor via ``device`` (NCCL only reduces CUDA tensors)."""
    moved = t.to(device)
    dist.all_reduce(moved)
    return moved.cpu()


def _all_reduce(result: Evaluation, data: PatchDataset, device: torch.device) -> None:
    """Sum every rank's counts (slides in a fixed order, so every rank sends the same layout)."""
    names = sorted(set(data.patches.slide_of(data.indices)))
    parts = [result.pixel.to_tensor(), result.centroid.to_tensor()]
    for s in names:
        p, c = result.per_slide.get(s, (Counts(), Counts()))
        parts += [p.to_tensor(), c.to_tensor()]
    flat = torch.cat([*parts, torch.tensor([result.loss_sum, float(result.patches)], dtype=torch.float64)])
    flat = reduce_sum(flat, device)
    size = parts[0].numel()
    result.pixel.load_tensor(flat[:size])
    result.centroid.load_tensor(flat[size : 2 * size])
    result.per_slide = {}
    for k, s in enumerate(names):
        p, c = Counts(), Counts()
        p.load_tensor(flat[(2 + 2 * k) * size : (3 + 2 * k) * size])
        c.load_tensor(flat[(3 + 2 * k) * size : (4 + 2 * k) * size])
        if p.total:
            result.per_slide[s] = (p, c)
    result.loss_sum, result.patches = float(flat[-2]), int(flat[-1])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="Evaluate a trained model on labelled mIF slides or tile folders it never saw.",
    )
    p.add_argument("--model", required=True, type=Path, help="model directory (model.json + model.safetensors)")
    add_input_args(p)
    add_label_args(p)
    p.add_argument("--out", type=Path, required=True, help="folder for metrics.json and the patch cache")
    p.add_argument("--overlap", type=float, default=0.0, help="patch overlap (default 0: every pixel once)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model, card = load_weights(args.model)
        cfg = config_from_args(args)
        params = PatchParams(size=card.patch_size, overlap=args.overlap, mpp=card.mpp)
        args.out.mkdir(parents=True, exist_ok=True)
        entries = prepare_inputs(args, cfg, params, args.out / "cache")
        patches = PatchSet(entries)
        device = choose_device(args.device)
        prec = choose_precision(device, "auto")
        print(f"Evaluating {card.name} on {len(patches)} patches from {', '.join(patches.slide_names)}; "
              f"device {device}, precision {prec.name} ({prec.reason})")
        model = model.to(device).to(memory_format=torch.channels_last)
        data = PatchDataset(patches, np.arange(len(patches)))
        result = run_to_completion(evaluate(model, data, device, prec.dtype, args.batch_size))
    except CoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    metrics = {"model": card.name, "weights_sha256": card.weights_sha256, **result.to_dict()}
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(result.report())
    print(f"\nWrote {args.out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
