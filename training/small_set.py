"""Honesty on a small training set: cells per class against the paper's, the warm-up and patience in
patch-steps, and whether validation holds enough cells to choose an epoch.

Why this exists (issue 29): on a real 18-tile export (13 tiles training, 2 validating) early stopping
kept epoch 1, whose weights had seen 108 patches: its validation F1 of 0.089 from barely trained
weights beat ten epochs of 0.000 on a handful of validation cells, and nothing told the user that
13 tiles held ~250 positive cells where the paper trained on ~38,000. So:

* every count here is in **patch-steps** (patches trained on, summed over epochs and processes), the
  unit that says how much a model has learnt whatever the epoch length: an "epoch" is 108 patches on
  a small export and 5,930 in the paper;
* no epoch is eligible for selection before a **warm-up** (:func:`warmup_for`);
* when validation holds fewer than :data:`MIN_VAL_CELLS` cells of a positive class, the per-cell
  F1 cannot rank epochs and the **last** epoch is exported instead (:func:`choose_rule`);
* before training, the positive cells per class in each split are printed beside the paper's Table 1
  (:func:`cell_report`), with plain warnings when a class is far below what a model needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.classes import CLASS_NAMES, POSITIVE_CLASSES
from training.dataset import PatchSet

#: Positive training cells per class in the paper's Table 1 (its ~38,000 lymphocytes).
PAPER_TRAIN_CELLS: dict[str, int] = {"CD8_CD3LO": 14_536, "CD3": 14_480, "CD20": 7_528, "CD8_CD3HI": 1_412}
#: Fewer training cells of a class than this is "far below what a model needs": a third of the
#: paper's rarest class (CD8_CD3HI, 1,412 cells), which was already its weakest.
TRAIN_CELLS_NEEDED = 500
#: Fewer training cells than this and the class is, in plain words, not learnable from this set.
TRAIN_CELLS_TOO_FEW = 100
#: Fewer validation cells of a positive class than this and the per-cell F1 cannot rank epochs. With
#: n cells one cell more or less found moves that class's F1 by about 1/n; at 25 cells the binomial
#: standard error of a recall near 0.5 is 0.10, as large as the epoch-to-epoch differences worth
#: choosing between, so a smaller count picks epochs by chance (issue 29: 0.089 → 0.000 → 0.065).
MIN_VAL_CELLS = 25
#: Fewer test cells than this and a class's held-out F1 is a rough figure (read its interval).
MIN_TEST_CELLS = 25
#: Warm-up = this fraction of the planned patch-steps ...
WARMUP_FRACTION = 0.25
#: ... but at least this many: ~30 optimiser steps of the paper's batch of 32, before which a U-Net
#: from random weights predicts mostly background and its F1 is noise.
WARMUP_FLOOR = 1_000
#: Patience when neither --patience nor --patience-patches is given: 15 epochs, as before, and never
#: shorter than the warm-up (a model that needed the warm-up to start gets as long again to improve).
DEFAULT_PATIENCE_EPOCHS = 15
SELECT_RULES = ("auto", "f1", "last")


def warmup_for(planned_patches: int) -> int:
    """The default warm-up in patch-steps: max(:data:`WARMUP_FLOOR`, :data:`WARMUP_FRACTION` × planned),
    never more than the plan itself (so the last planned epoch is always eligible)."""
    return int(min(max(1, planned_patches), max(WARMUP_FLOOR, round(WARMUP_FRACTION * planned_patches))))


@dataclass(frozen=True)
class SplitCells:
    """Positive cells per class name in each split (each cell counted once: the patch owning it)."""

    train: dict[str, int]
    val: dict[str, int]
    test: dict[str, int]

    def to_dict(self) -> dict[str, dict[str, int]]:
        return asdict(self)


def count_cells(patches: PatchSet, indices: np.ndarray) -> dict[str, int]:
    """Positive cells per class in the patches ``indices`` (global), each cell once (``owned``)."""
    counts = dict.fromkeys((CLASS_NAMES[c] for c in POSITIVE_CLASSES), 0)
    idx = np.asarray(indices, dtype=np.int64)
    for k, entry in enumerate(patches.entries):
        lo, hi = int(patches.offsets[k]), int(patches.offsets[k + 1])
        local = idx[(idx >= lo) & (idx < hi)] - lo
        if not len(local):
            continue
        z = np.load(entry.path / "centroids.npz")
        keep = z["owned"].astype(bool) & np.isin(z["patch"], local)
        cls = np.asarray(z["cls"])[keep]
        for c in POSITIVE_CLASSES:
            counts[CLASS_NAMES[c]] += int((cls == c).sum())
    return counts


def split_cells(patches: PatchSet, splits: dict[str, np.ndarray]) -> SplitCells:
    empty = np.zeros(0, dtype=np.int64)
    return SplitCells(*(count_cells(patches, splits.get(s, empty)) for s in ("train", "val", "test")))


def cell_warnings(cells: SplitCells, test_split: str = "test") -> list[str]:
    """Plain-words warnings about classes far below what training, epoch choice or testing needs."""
    out: list[str] = []
    for name, paper in PAPER_TRAIN_CELLS.items():
        n = cells.train.get(name, 0)
        if n < TRAIN_CELLS_TOO_FEW:
            out.append(f"{name}: only {n} training cells ({100 * n / paper:.1f}% of the paper's {paper:,}). "
                       "A model cannot learn this class from so few; expect it to be missed or guessed. "
                       "Add slides or tiles where it occurs.")
        elif n < TRAIN_CELLS_NEEDED:
            out.append(f"{name}: {n} training cells, far below the paper's {paper:,} (under {TRAIN_CELLS_NEEDED}, a "
                       "third of the paper's rarest class). Expect a weak and unstable F1 for it.")
    low_val = [f"{k} {v}" for k, v in cells.val.items() if v < MIN_VAL_CELLS]
    if low_val:
        out.append(f"Validation holds too few cells to choose an epoch ({', '.join(low_val)}; at least "
                   f"{MIN_VAL_CELLS} of each positive class are needed): its F1 would pick epochs by chance.")
    held = cells.test if test_split == "test" else cells.val
    low_test = [f"{k} {v}" for k, v in held.items() if v < MIN_TEST_CELLS]
    if low_test:
        out.append(f"The {test_split} split holds few cells of {', '.join(low_test)}: their held-out F1 is a rough "
                   "figure; read its 95% interval.")
    return out


def cell_report(cells: SplitCells) -> str:
    """The table printed before training: positive cells per class and split beside the paper's."""
    lines = ["Positive cells per class (each cell once) beside the paper's training set (Table 1):",
             f"  {'class':<10} {'train':>7} {'val':>6} {'test':>6} {'paper train':>12} {'train/paper':>12}"]
    for name, paper in PAPER_TRAIN_CELLS.items():
        t = cells.train.get(name, 0)
        lines.append(f"  {name:<10} {t:>7,} {cells.val.get(name, 0):>6,} {cells.test.get(name, 0):>6,} "
                     f"{paper:>12,} {100 * t / paper:>11.1f}%")
    total = sum(cells.train.values())
    lines.append(f"  {'all':<10} {total:>7,} {sum(cells.val.values()):>6,} {sum(cells.test.values()):>6,} "
                 f"{sum(PAPER_TRAIN_CELLS.values()):>12,} {100 * total / sum(PAPER_TRAIN_CELLS.values()):>11.1f}%")
    return "\n".join(lines)


def choose_rule(select: str, val_cells: dict[str, int]) -> tuple[str, str]:
    """The selection rule ('f1' or 'last') for ``--select`` (auto, f1, last) and why, in words."""
    low = [f"{k} {v}" for k, v in val_cells.items() if v < MIN_VAL_CELLS]
    if select == "f1":
        why = "best validation per-cell macro-F1 after the warm-up (--select f1)"
        return "f1", why + (f"; asked for although validation holds few cells ({', '.join(low)})" if low else "")
    if select == "last":
        return "last", "the last epoch is exported (--select last); no early stopping"
    if low:
        return "last", (f"validation holds fewer than {MIN_VAL_CELLS} cells of {', '.join(low)}, too few for its F1 "
                        "to rank epochs, so the last epoch is exported and training is not stopped early "
                        "(--select f1 forces the choice)")
    return "f1", (f"best validation per-cell macro-F1 after the warm-up (validation holds ≥ {MIN_VAL_CELLS} cells "
                  "of every positive class)")


@dataclass(frozen=True)
class SelectionPlan:
    """How the exported epoch is chosen, in patch-steps; recorded in the card's training section."""

    rule: str
    rule_reason: str
    warmup_patches: int
    warmup_reason: str
    patience_patches: int | None
    patience_reason: str
    patches_per_epoch: int
    planned_patches: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_selection(rule: str, rule_reason: str, *, planned_patches: int, patches_per_epoch: int,
                   warmup_patches: int | None, patience_patches: int | None, patience_epochs: int | None,
                   planned_by: str) -> SelectionPlan:
    """Resolve the warm-up and patience in patch-steps.

    ``warmup_patches``/``patience_patches``: given by the user (None: default; patience 0: never).
    ``patience_epochs``: the older ``--patience N`` (epochs), converted at ``patches_per_epoch``.
    ``planned_by`` says where ``planned_patches`` came from (epochs, --max-steps, the time limit).
    """
    if warmup_patches is None:
        warmup = warmup_for(planned_patches)
        if warmup >= planned_patches:
            w_why = (f"default: all {planned_patches:,} planned patch-steps ({planned_by}), fewer than the "
                     f"{WARMUP_FLOOR:,} before which a new model's F1 is noise, so only the end of the run is eligible")
        else:
            w_why = (f"default: max({WARMUP_FLOOR:,}, {WARMUP_FRACTION:g} × the {planned_patches:,} planned "
                     f"patch-steps ({planned_by})); no epoch before it is eligible")
    else:
        warmup, w_why = warmup_patches, "given by --warmup-patches"
    if patience_patches is not None:
        patience: int | None = patience_patches or None
        p_why = "given by --patience-patches" if patience else "--patience-patches 0: never stop early"
    elif patience_epochs is not None:
        patience = patience_epochs * patches_per_epoch or None
        p_why = (f"--patience {patience_epochs} epochs × {patches_per_epoch:,} patches per epoch" if patience
                 else "--patience 0: never stop early")
    else:
        patience = max(DEFAULT_PATIENCE_EPOCHS * patches_per_epoch, warmup)
        p_why = (f"default: {DEFAULT_PATIENCE_EPOCHS} epochs × {patches_per_epoch:,} patches, at least the warm-up")
    if rule == "last":
        patience, p_why = None, "none: the last epoch is exported, so nothing stops early"
    return SelectionPlan(rule, rule_reason, warmup, w_why, patience, p_why, patches_per_epoch, planned_patches)
