"""Per-class precision, recall and F1, soft (the paper's) and hard (argmax), from running sums.

Soft, for class c with softmax output p_c and target y (paper, Table 2)::

    TP_c = Σ p_c·[y=c]    FP_c = Σ p_c·[y≠c]    FN_c = Σ (1−p_c)·[y=c]

Hard: the same with p replaced by the one-hot argmax, i.e. read off the confusion matrix. Only
sums are kept (TP, Σp, class counts, confusion), so batches, DDP ranks and slides add up exactly.
The average is the macro mean over the positive classes (the paper's "Avg."); "other" is listed
but not averaged, as in the paper.
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
                table[CLASS_NAMES[c]] = {"precision": p, "recall": r, "f1": f, "support": int(round(self.true[c]))}
            pos = [CLASS_NAMES[c] for c in POSITIVE_CLASSES if c < self.n]
            table["average"] = {k: float(np.mean([table[c][k] for c in pos])) for k in ("precision", "recall", "f1")}
            out[kind] = table
        out["confusion"] = self.confusion.tolist()
        out["count"] = self.total
        return out


def macro_f1(counts: Counts, kind: str = "hard") -> float:
    """Mean F1 over the positive classes: the number the best checkpoint is chosen by."""
    return float(counts.scores()[kind]["average"]["f1"])


def format_scores(title: str, scores: dict[str, Any]) -> str:
    """A readable table: one row per class, soft / hard for each measure, then the confusion matrix."""
    lines = [f"{title} ({scores['count']} items)   soft / hard",
             f"  {'class':<12} {'precision':>13} {'recall':>13} {'F1':>13} {'support':>10}"]
    for name in [*CLASS_NAMES, "average"]:
        s, h = scores["soft"][name], scores["hard"][name]
        cells = " ".join(f"{s[k]:.3f} / {h[k]:.3f}".rjust(13) for k in ("precision", "recall", "f1"))
        support = "" if name == "average" else str(s["support"])
        lines.append(f"  {name:<12} {cells} {support:>10}")
    lines.append("  confusion (rows true, columns predicted): " + " ".join(f"{c[:8]:>9}" for c in CLASS_NAMES))
    for name, row in zip(CLASS_NAMES, scores["confusion"], strict=True):
        lines.append(f"  {name:>12} " + " ".join(f"{v:>9d}" for v in row))
    return "\n".join(lines)
