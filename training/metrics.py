"""Per-class precision, recall and F1, soft (the paper's) and hard (argmax), from running sums.

Soft, for class c with softmax output p_c and target y (paper, Table 2)::

    TP_c = Σ p_c·[y=c]    FP_c = Σ p_c·[y≠c]    FN_c = Σ (1−p_c)·[y=c]

Hard: the same with p replaced by the one-hot argmax, i.e. read off the confusion matrix. Only
sums are kept (TP, Σp, class counts, confusion), so batches, DDP ranks and slides add up exactly.
The average is the macro mean over the positive classes (the paper's "Avg."); "other" is listed
but not averaged, as in the paper.

Each class also gets its **count error**, calls / true − 1 (= recall / precision − 1): what a
density read from this model would be off by if these cells were one region. F1 hides it: a model
whose false calls outnumber its misses can gain F1 and count a class far too often (the
demo model's second fine-tune of 2026-12-02, never shipped, raised the held-out macro-F1 from 0.845
to 0.865 while its CD20 calls went from +9 % to +48 % of the true CD20 cells, and end to end its
CD20+ IM densities came out 14 % high on average).

Per cell, :class:`CellRecords` keeps one row per evaluated cell (true class, softmax at the cell,
slide, tile) so that the same rows give the point estimate (through :class:`Counts`) and a
seeded bootstrap 95 % interval (:func:`bootstrap_ci`), pooled and per slide.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.classes import CLASS_NAMES, POSITIVE_CLASSES


class Counts:
    """Running sums for one set of predictions (pixels or centroids) over ``n`` classes."""

    def __init__(self, n: int = len(CLASS_NAMES)) -> None:
        self.n = n
        self.soft_tp = np.zeros(n, dtype=np.float64)
        self.soft_pred = np.zeros(n, dtype=np.float64)  # Σ p_c over all items
        self.true = np.zeros(n, dtype=np.float64)  # Σ [y=c]
        self.confusion = np.zeros((n, n), dtype=np.int64)  # rows true, columns predicted

    def update(self, probs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> None:
        """``probs`` (M, C) or (N, C, H, W) softmax; ``labels`` (M,) or (N, H, W) class indices."""
        p = torch.as_tensor(probs).detach().to("cpu", torch.float64)
        y = torch.as_tensor(labels).detach().to("cpu", torch.int64)
        if p.ndim == 4:
            p = p.permute(0, 2, 3, 1).reshape(-1, p.shape[1])
            y = y.reshape(-1)
        if y.numel() == 0:
            return
        onehot = torch.nn.functional.one_hot(y, self.n).to(torch.float64)
        self.soft_tp += (p * onehot).sum(0).numpy()
        self.soft_pred += p.sum(0).numpy()
        self.true += onehot.sum(0).numpy()
        pred = p.argmax(1)
        self.confusion += torch.bincount(y * self.n + pred, minlength=self.n * self.n).reshape(self.n, self.n).numpy()

    def add(self, other: Counts) -> None:
        self.soft_tp += other.soft_tp
        self.soft_pred += other.soft_pred
        self.true += other.true
        self.confusion += other.confusion

    def to_tensor(self) -> torch.Tensor:
        """All sums as one float64 vector (for ``dist.all_reduce``)."""
        return torch.from_numpy(np.concatenate([self.soft_tp, self.soft_pred, self.true, self.confusion.ravel()]))

    def load_tensor(self, t: torch.Tensor) -> None:
        a = t.numpy()
        n = self.n
        self.soft_tp, self.soft_pred, self.true = a[:n].copy(), a[n : 2 * n].copy(), a[2 * n : 3 * n].copy()
        self.confusion = np.rint(a[3 * n :]).astype(np.int64).reshape(n, n)

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    def scores(self) -> dict[str, Any]:
        """{"soft": {class: {precision, recall, f1, support}, "average": {...}}, "hard": {...}, "confusion": [[...]]}."""
        hard_tp = np.diag(self.confusion).astype(np.float64)
        hard_pred = self.confusion.sum(0).astype(np.float64)
        out: dict[str, Any] = {}
        for kind, tp, pred in (("soft", self.soft_tp, self.soft_pred), ("hard", hard_tp, hard_pred)):
            table: dict[str, Any] = {}
            for c in range(self.n):
                fp, fn = pred[c] - tp[c], self.true[c] - tp[c]
                p = tp[c] / (tp[c] + fp) if tp[c] + fp > 0 else 0.0
                r = tp[c] / (tp[c] + fn) if tp[c] + fn > 0 else 0.0
                f = 2 * p * r / (p + r) if p + r > 0 else 0.0
                table[CLASS_NAMES[c]] = {"precision": p, "recall": r, "f1": f, "support": int(round(self.true[c])),
                                         "calls": float(pred[c]),
                                         "count_error": float(pred[c] / self.true[c] - 1) if self.true[c] > 0 else None}
            pos = [CLASS_NAMES[c] for c in POSITIVE_CLASSES if c < self.n]
            table["average"] = {k: float(np.mean([table[c][k] for c in pos])) for k in ("precision", "recall", "f1")}
            errors = [abs(table[c]["count_error"]) for c in pos if table[c]["count_error"] is not None]
            table["average"]["count_error_abs"] = float(np.mean(errors)) if errors else None
            out[kind] = table
        out["confusion"] = self.confusion.tolist()
        out["count"] = self.total
        return out


class CellRecords:
    """One row per evaluated cell: true class, class probabilities at the cell, slide and tile (group).

    A lymphocyte class predicted on an 'other' nucleus, or a predicted cell where no nucleus is,
    is a row with true class 0 ('other'): a false positive of the predicted class.
    """

    def __init__(self, n: int = len(CLASS_NAMES)) -> None:
        self.n = n
        self._true: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []
        self._slide: list[np.ndarray] = []
        self._group: list[np.ndarray] = []
        self.slides: list[str] = []

    def add(self, probs: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor, slide: str, group: int) -> None:
        p = torch.as_tensor(probs).detach().to("cpu", torch.float64).numpy().reshape(-1, self.n)
        if len(p) == 0:
            return
        if slide not in self.slides:
            self.slides.append(slide)
        self._true.append(torch.as_tensor(true).detach().cpu().numpy().astype(np.int64).reshape(-1))
        self._probs.append(p)
        self._slide.append(np.full(len(p), self.slides.index(slide), dtype=np.int32))
        self._group.append(np.full(len(p), group, dtype=np.int64))

    def __len__(self) -> int:
        return int(sum(len(t) for t in self._true))

    def arrays(self, slide: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(true (M,), probs (M, C), group (M,)) of all rows, or of one slide's rows."""
        if not self._true:
            return np.zeros(0, np.int64), np.zeros((0, self.n)), np.zeros(0, np.int64)
        true, probs = np.concatenate(self._true), np.concatenate(self._probs)
        group, sl = np.concatenate(self._group), np.concatenate(self._slide)
        if slide is not None:
            keep = sl == (self.slides.index(slide) if slide in self.slides else -1)
            true, probs, group = true[keep], probs[keep], group[keep]
        return true, probs, group

    def counts(self, slide: str | None = None) -> Counts:
        true, probs, _ = self.arrays(slide)
        c = Counts(self.n)
        c.update(probs, true)
        return c


def _f1_table(tp: np.ndarray, pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """F1 = 2TP / (predicted + true) per row and class; 0 where a class is neither predicted nor true."""
    den = pred + true
    return np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)


def bootstrap_ci(
    true: np.ndarray, probs: np.ndarray, group: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Percentile bootstrap interval of per-class and macro F1 (soft and hard), seeded.

    ``group`` None resamples cells; otherwise whole groups (e.g. tiles) are resampled, which
    respects that neighbouring cells are not independent. Returns
    ``{"soft"|"hard": {class|"average": [low, high]}, "n_boot", "unit", "units", "seed"}``.
    """
    n = probs.shape[1] if probs.ndim == 2 else len(CLASS_NAMES)
    true = np.asarray(true, dtype=np.int64)
    names = [CLASS_NAMES[c] for c in range(n)]
    pos = [c for c in POSITIVE_CLASSES if c < n]
    unit = "cell" if group is None else "group"
    if len(true) == 0:
        return {"soft": {}, "hard": {}, "n_boot": 0, "unit": unit, "units": 0, "seed": seed}
    onehot = np.eye(n)[true]
    pred1 = np.eye(n)[probs.argmax(1)]
    per_row = {"soft": (probs * onehot, probs), "hard": (pred1 * onehot, pred1)}
    if group is None:
        gidx, n_units = np.arange(len(true)), len(true)
    else:
        _, gidx = np.unique(group, return_inverse=True)
        n_units = int(gidx.max()) + 1
    rng = np.random.default_rng(seed)
    f1s: dict[str, list[np.ndarray]] = {"soft": [], "hard": []}
    for start in range(0, n_boot, 100):
        b = min(100, n_boot - start)
        draws = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=b).astype(np.float64)
        w = draws[:, gidx]  # (b, M): how often each row is drawn
        t = w @ onehot
        for kind, (tp_rows, pred_rows) in per_row.items():
            f1s[kind].append(_f1_table(w @ tp_rows, w @ pred_rows, t))
    alpha = (1 - level) / 2
    out: dict[str, Any] = {"n_boot": n_boot, "unit": unit, "units": n_units, "seed": seed, "level": level}
    for kind in ("soft", "hard"):
        f = np.concatenate(f1s[kind])
        table = {names[c]: [float(np.quantile(f[:, c], alpha)), float(np.quantile(f[:, c], 1 - alpha))] for c in range(n)}
        avg = f[:, pos].mean(1)
        table["average"] = [float(np.quantile(avg, alpha)), float(np.quantile(avg, 1 - alpha))]
        out[kind] = table
    return out


def macro_f1(counts: Counts, kind: str = "hard") -> float:
    """Mean F1 over the positive classes: the number the best checkpoint is chosen by."""
    return float(counts.scores()[kind]["average"]["f1"])


def format_scores(title: str, scores: dict[str, Any]) -> str:
    """A readable table: one row per class, soft / hard for each measure, the hard count error
    (calls / true − 1; for the average, the mean of its absolute values), then the confusion matrix."""
    lines = [f"{title} ({scores['count']} items)   soft / hard",
             f"  {'class':<12} {'precision':>13} {'recall':>13} {'F1':>13} {'support':>10} {'calls/true':>11}"]
    for name in [*CLASS_NAMES, "average"]:
        s, h = scores["soft"][name], scores["hard"][name]
        cells = " ".join(f"{s[k]:.3f} / {h[k]:.3f}".rjust(13) for k in ("precision", "recall", "f1"))
        support = "" if name == "average" else str(s["support"])
        err = h.get("count_error_abs") if name == "average" else h.get("count_error")
        bias = "" if err is None else (f"±{err:.0%}" if name == "average" else f"{err:+.0%}")
        lines.append(f"  {name:<12} {cells} {support:>10} {bias:>11}")
    lines.append("  confusion (rows true, columns predicted): " + " ".join(f"{c[:8]:>9}" for c in CLASS_NAMES))
    for name, row in zip(CLASS_NAMES, scores["confusion"], strict=True):
        lines.append(f"  {name:>12} " + " ".join(f"{v:>9d}" for v in row))
    return "\n".join(lines)
