"""Evaluate a model on labelled patches: per pixel and per cell, soft and hard, per slide and pooled.

Honest by construction (one implementation, used by retrain's validation and test, by
``python -m training.evaluate`` and, through retrain, by the model card):

* Every cell is counted once: patches overlap, but each cell (and each pixel) is scored only in
  the patch that *owns* it, the part of the patch nearer its centre than any neighbour's
  (:func:`training.patches.owned_bounds`), so 50 %-overlap patches never count a cell twice.
* Every prediction counts: the class at the centroid of every true nucleus is scored, 'other'
  nuclei included (a lymphocyte class called there is a false positive), and each predicted
  lymphocyte (a connected component of positive argmax pixels) that covers no true nucleus is a
  false positive of its class (a row with true class 'other').
* Per-cell F1 comes with a seeded bootstrap 95 % interval (:func:`training.metrics.bootstrap_ci`),
  resampling cells or tiles.

``python -m training.evaluate --model DIR --slides S.ome.tif ... --out DIR`` evaluates a trained
(or installed) model on slides or tile folders it never saw: they are labelled with the same
config, cut into 50 %-overlapping patches as for the model card (``--overlap``), and scored;
metrics.json and the printed table are the result.
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
from scipy import ndimage as ndi

from core.errors import CoreError
from core.models import load_weights
from core.progress import CancelToken, Progress, run_to_completion
from training.cli_common import add_input_args, add_label_args, config_from_args, prepare_inputs
from training.dataset import PatchDataset, PatchSet
from training.device import PRECISIONS, choose_device, choose_precision
from training.metrics import CellRecords, Counts, bootstrap_ci, format_scores
from training.patches import CacheEntry, PatchParams

#: A predicted lymphocyte smaller than this (µm²) is a speck, not a cell (half the smallest nucleus).
MIN_PREDICTED_CELL_UM2 = 5.0


@dataclass
class Evaluation:
    """Sums for the whole set and per slide, plus the per-cell rows; ``loss``: mean pixel cross-entropy."""

    pixel: Counts = field(default_factory=Counts)
    centroid: Counts = field(default_factory=Counts)
    per_slide: dict[str, tuple[Counts, Counts]] = field(default_factory=dict)
    cells: CellRecords = field(default_factory=CellRecords)
    loss_sum: float = 0.0
    patches: int = 0

    @property
    def loss(self) -> float:
        return self.loss_sum / max(1, self.patches)

    def to_dict(self, n_boot: int = 0, seed: int = 0, unit: str = "cell") -> dict[str, Any]:
        """Scores as JSON; with ``n_boot`` > 0 per-cell bootstrap intervals ("centroid_ci"), pooled and per slide."""
        out: dict[str, Any] = {
            "patches": self.patches,
            "loss": self.loss,
            "pixel": self.pixel.scores(),
            "centroid": self.centroid.scores(),
            "per_slide": {s: {"pixel": p.scores(), "centroid": c.scores()} for s, (p, c) in sorted(self.per_slide.items())},
        }
        if n_boot > 0 and len(self.cells):
            out["centroid_ci"] = self.ci(None, n_boot, seed, unit)
            for s in out["per_slide"]:
                out["per_slide"][s]["centroid_ci"] = self.ci(s, n_boot, seed, unit)
        return out

    def ci(self, slide: str | None, n_boot: int, seed: int, unit: str) -> dict[str, Any]:
        true, probs, group = self.cells.arrays(slide)
        return bootstrap_ci(true, probs, group if unit == "tile" else None, n_boot, seed)

    def report(self, n_boot: int = 0, seed: int = 0, unit: str = "cell") -> str:
        parts = [format_scores("Per pixel (each pixel once)", self.pixel.scores()),
                 format_scores("Per centroid: per cell, each cell once, every prediction counted", self.centroid.scores())]
        ci = self.ci(None, n_boot, seed, unit) if n_boot > 0 and len(self.cells) else None
        if ci:
            lo, hi = ci["hard"]["average"]
            slo, shi = ci["soft"]["average"]
            parts.append(f"Per-cell macro F1 95% bootstrap interval ({n_boot} resamples of {ci['units']} "
                         f"{unit}s, seed {seed}): hard {lo:.3f}-{hi:.3f}, soft {slo:.3f}-{shi:.3f}")
        for s, (p, c) in sorted(self.per_slide.items()):
            ps, cs = p.scores(), c.scores()
            line = (f"Slide {s}: per-pixel F1 (avg, soft/hard) {ps['soft']['average']['f1']:.3f}/"
                    f"{ps['hard']['average']['f1']:.3f}; per-cell {cs['soft']['average']['f1']:.3f}/"
                    f"{cs['hard']['average']['f1']:.3f} ({cs['count']} cells)")
            if n_boot > 0 and len(self.cells):
                sci = self.ci(s, n_boot, seed, unit)
                if sci["hard"]:
                    line += f", hard 95% CI {sci['hard']['average'][0]:.3f}-{sci['hard']['average'][1]:.3f}"
            parts.append(line)
        return "\n\n".join(parts)


class _PatchInfo:
    """Per cached patch: its cells (y, x, class, cell id, owned), owned window, tile; looked up by (entry, local)."""

    def __init__(self) -> None:
        self._by_entry: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def _load(self, entry: CacheEntry) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        key = str(entry.path)
        if key not in self._by_entry:
            z = np.load(entry.path / "centroids.npz")
            order = np.argsort(z["patch"], kind="stable")
            rows = np.column_stack([z["y"], z["x"], z["cls"], z["cell"], z["owned"]]).astype(np.int64)[order]
            self._by_entry[key] = (z["patch"][order], rows, np.load(entry.path / "owned.npy"),
                                   np.load(entry.path / "patch_tile.npy"))
        return self._by_entry[key]

    def get(self, entry: CacheEntry, local: int) -> tuple[np.ndarray, tuple[int, int, int, int], int]:
        patch, rows, owned, tiles = self._load(entry)
        a, b = np.searchsorted(patch, [local, local + 1])
        y0, y1, x0, x1 = (int(v) for v in owned[local])
        return rows[a:b], (y0, y1, x0, x1), int(tiles[local])


def cell_rows(probs: torch.Tensor, cells: np.ndarray, owned: tuple[int, int, int, int],
              min_px: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell (probabilities (M, C), true class (M,)) of one patch's owned window.

    Rows: every owned true cell (probabilities at its centroid), then every predicted lymphocyte
    (connected positive argmax pixels, ≥ ``min_px``) whose centroid is owned and that covers no
    true nucleus centroid (mean probabilities over it, true class 'other').
    """
    n = probs.shape[0]
    own = cells[cells[:, 4] == 1]
    cp = probs[:, own[:, 0], own[:, 1]].T if len(own) else torch.zeros((0, n))
    true = torch.from_numpy(own[:, 2].astype(np.int64))
    comps, k = ndi.label((probs.argmax(0) > 0).numpy())
    if k == 0:
        return cp, true
    covered = np.zeros(k + 1, dtype=bool)
    if len(cells):
        covered[comps[cells[:, 0], cells[:, 1]]] = True
    idx = np.arange(1, k + 1)
    sizes = ndi.sum_labels(np.ones_like(comps), comps, idx)
    cy = ndi.mean(np.indices(comps.shape)[0], comps, idx)
    cx = ndi.mean(np.indices(comps.shape)[1], comps, idx)
    y0, y1, x0, x1 = owned
    extra = [i for i, (sz, yy, xx) in enumerate(zip(sizes, cy, cx, strict=True), start=1)
             if not covered[i] and sz >= min_px and y0 <= int(yy) < y1 and x0 <= int(xx) < x1]
    if not extra:
        return cp, true
    flat = probs.reshape(n, -1).double()
    lab = torch.from_numpy(comps.ravel().astype(np.int64))
    sums = torch.zeros((k + 1, n), dtype=torch.float64).index_add_(0, lab, flat.T)
    mean = (sums[extra] / torch.as_tensor(sizes[np.asarray(extra) - 1], dtype=torch.float64)[:, None]).to(cp.dtype)
    return torch.cat([cp, mean]), torch.cat([true, torch.zeros(len(extra), dtype=torch.int64)])


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
    """Predict every patch of ``data`` (this rank's share) and sum the metrics; all-reduced under DDP.

    Per-cell rows (for bootstrap intervals) stay on each rank: under DDP only the sums are exact.
    """
    cancel = cancel or CancelToken()
    model.eval()
    result = Evaluation()
    info = _PatchInfo()
    mpp = float(data.patches.entries[0].meta.get("mpp", 0.227)) if data.patches.entries else 0.227
    min_px = max(2, int(MIN_PREDICTED_CELL_UM2 / (mpp * mpp)))
    positions = list(range(rank, len(data.indices), world))
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
            result.loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="none").mean((1, 2)).sum())
            probs = torch.softmax(logits, 1).cpu()
            y = y.cpu()
            for j, i in enumerate(chunk):
                g = int(data.indices[i])
                entry, local = data.patches.locate(g)
                cells, owned, tile = info.get(entry, local)
                oy0, oy1, ox0, ox1 = owned
                pp, py = probs[j : j + 1, :, oy0:oy1, ox0:ox1], y[j : j + 1, oy0:oy1, ox0:ox1]
                result.pixel.update(pp, py)
                cp, cy = cell_rows(probs[j], cells, owned, min_px)
                result.centroid.update(cp, cy)
                name = data.patches.slide_of(np.asarray([g]))[0]
                group = (data.patches.entries.index(entry) << 32) + (tile if tile >= 0 else (1 << 31) + local)
                result.cells.add(cp, cy, name, group)
                if per_slide:
                    p, cc = result.per_slide.setdefault(name, (Counts(), Counts()))
                    p.update(pp, py)
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
    p.add_argument("--overlap", type=float, default=0.5,
                   help="patch overlap (default 0.5: the layout of retrain's test split, the model card and the "
                   "engine, where each cell is judged in the patch that owns it, away from patch edges; 0 also "
                   "judges cells at patch edges with half their context, which the engine never does, and scores "
                   "lower: 0.67 against 0.85 for the demo model)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto (default), fp32, bf16 or fp16")
    add_bootstrap_args(p)
    return p


def add_bootstrap_args(p: argparse.ArgumentParser) -> None:
    """The interval flags, shared with ``training.retrain``."""
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the per-cell 95%% intervals (default 1000; 0: none)")
    p.add_argument("--bootstrap-unit", choices=("cell", "tile"), default="cell",
                   help="resample cells (default) or whole tiles/patches (cells of a tile are not independent; "
                   "needs many tiles)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap (default 0)")


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
        prec = choose_precision(device, args.precision)
        print(f"Evaluating {card.name} on {len(patches)} patches from {', '.join(patches.slide_names)}; "
              f"device {device}, precision {prec.name} ({prec.reason})")
        model = model.to(device).to(memory_format=torch.channels_last)
        data = PatchDataset(patches, np.arange(len(patches)))
        result = run_to_completion(evaluate(model, data, device, prec.dtype, args.batch_size))
    except CoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    boot = (args.bootstrap, args.bootstrap_seed, args.bootstrap_unit)
    metrics = {"model": card.name, "weights_sha256": card.weights_sha256, **result.to_dict(*boot)}
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(result.report(*boot))
    print(f"\nWrote {args.out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
