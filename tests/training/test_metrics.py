"""Metrics against scikit-learn computed independently on the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from training.metrics import Counts, format_scores


def _data(seed: int, n: int = 2, h: int = 8, c: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, c, h, h, generator=g) * 2, 1)
    labels = torch.randint(0, c, (n, h, h), generator=g)
    return probs, labels


def test_hard_metrics_match_sklearn() -> None:
    probs, labels = _data(0)
    counts = Counts()
    counts.update(probs[:1], labels[:1])  # two updates add up like one
    counts.update(probs[1:], labels[1:])
    y = labels.reshape(-1).numpy()
    pred = probs.argmax(1).reshape(-1).numpy()
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(5), zero_division=0)
    hard = counts.scores()["hard"]
    names = ["other", "CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI"]
    for i, name in enumerate(names):
        assert hard[name]["precision"] == pytest.approx(p[i])
        assert hard[name]["recall"] == pytest.approx(r[i])
        assert hard[name]["f1"] == pytest.approx(f[i])
        assert hard[name]["support"] == s[i]
    assert hard["average"]["f1"] == pytest.approx(np.mean(f[1:]))
    assert counts.scores()["confusion"] == confusion_matrix(y, pred, labels=range(5)).tolist()


def test_soft_metrics_match_sklearn_with_probability_weights() -> None:
    # Soft TP_c = Σ p_c[y=c], FP_c = Σ p_c[y≠c], FN_c = Σ (1-p_c)[y=c] is sklearn's precision/recall
    # when every pixel is expanded into C predictions k weighted by p_k.
    probs, labels = _data(1)
    counts = Counts()
    counts.update(probs, labels)
    flat_p = probs.permute(0, 2, 3, 1).reshape(-1, 5).double().numpy()
    y = labels.reshape(-1).numpy()
    y_rep = np.repeat(y, 5)
    pred_rep = np.tile(np.arange(5), len(y))
    w = flat_p.reshape(-1)
    p, r, f, _ = precision_recall_fscore_support(y_rep, pred_rep, labels=range(5), sample_weight=w, zero_division=0)
    soft = counts.scores()["soft"]
    for i, name in enumerate(["other", "CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI"]):
        assert soft[name]["precision"] == pytest.approx(p[i])
        assert soft[name]["recall"] == pytest.approx(r[i])
        assert soft[name]["f1"] == pytest.approx(f[i])


def test_centroid_style_updates_and_tensor_round_trip() -> None:
    probs, labels = _data(2)
    flat = probs.permute(0, 2, 3, 1).reshape(-1, 5)
    a, b = Counts(), Counts()
    a.update(flat[:50], labels.reshape(-1)[:50])
    b.update(flat[50:], labels.reshape(-1)[50:])
    whole = Counts()
    whole.update(probs, labels)
    merged = Counts()
    merged.load_tensor(a.to_tensor() + b.to_tensor())
    assert merged.confusion.tolist() == whole.confusion.tolist()
    assert merged.scores()["soft"]["average"]["f1"] == pytest.approx(whole.scores()["soft"]["average"]["f1"])
    assert np.allclose(merged.soft_tp, whole.soft_tp)
    assert "confusion" in format_scores("Per pixel", whole.scores())


def test_empty_counts_give_zeros_not_errors() -> None:
    s = Counts().scores()
    assert s["hard"]["average"]["f1"] == 0.0
    assert s["count"] == 0


def test_count_error_is_calls_over_true_cells() -> None:
    """A density is a count: the card must say how far each class's calls are from its true cells,
    which F1 hides (over-calls and misses of a class can trade F1 for count bias)."""
    # Rows: 2 other, 4 CD3 (one called other), 2 CD20 plus 2 others called CD20.
    labels = torch.tensor([0, 0, 0, 0, 2, 2, 2, 2, 3, 3])
    called = torch.tensor([0, 0, 3, 3, 2, 2, 2, 0, 3, 3])
    counts = Counts()
    counts.update(torch.nn.functional.one_hot(called, 5).double(), labels)
    hard = counts.scores()["hard"]
    assert hard["CD3"]["calls"] == 3 and hard["CD3"]["count_error"] == pytest.approx(-0.25)
    assert hard["CD20"]["calls"] == 4 and hard["CD20"]["count_error"] == pytest.approx(1.0)
    assert hard["CD20"]["count_error"] == pytest.approx(hard["CD20"]["recall"] / hard["CD20"]["precision"] - 1)
    assert hard["CD8_CD3LO"]["count_error"] is None  # no true cells: no ratio, not 0
    assert hard["average"]["count_error_abs"] == pytest.approx((0.25 + 1.0) / 2)
    table = format_scores("Per centroid", counts.scores())
    assert "calls/true" in table
    row = next(line for line in table.splitlines() if line.strip().startswith("CD20"))
    assert row.rstrip().endswith("+100%")
