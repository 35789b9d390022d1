"""The saliency estimate of the time left, driven by a fake clock over HiPe's real schedules.

The depth counts below were measured with :func:`core.saliency.hipe_job` on small conv nets
(128² patches, initial_cells 4): in cell mode depth 2 drops far below depth 1 and later depths grow
2-3× each; on the whole patch the growth slows with depth. The estimate must never be optimistic
(the old one was 2.5× short) and, once a class has finished, close for the classes to come.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.progress import Progress
from core.saliency.eta import SaliencyEta
from core.saliency.explain import (
    ClassDone,
    ContextReady,
    ExplainContext,
    ExplainPatch,
    Explanation,
    HipeStep,
    explain_job,
)
from core.saliency.hipe import HipeResult

CELL = (81, 21, 59, 121, 333)
PATCH = (81, 277, 839, 1433, 1582)
SECONDS_PER_PASS = 0.05
BATCH = 8


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _explanation(n_done: int, per_class: int) -> Explanation:
    maps = {t: HipeResult(np.zeros((2, 2)), np.zeros((1, 2, 2)), per_class, t) for t in range(1, n_done + 1)}
    return Explanation(None, maps, dict.fromkeys(maps, 1.0), "fade", 4)  # type: ignore[arg-type]


def _drive(schedules: list[tuple[int, ...]]) -> list[tuple[float | None, float]]:
    """Feed the reports of one run (a schedule per class); (estimate, true seconds left) per report."""
    clock = FakeClock()
    eta = SaliencyEta(clock)
    total = sum(sum(s) for s in schedules)
    spent, out = 0, []
    eta.update(ContextReady(0, 0, "ready"))
    for k, schedule in enumerate(schedules):
        passes = 0
        for depth, count in enumerate(schedule, 1):
            for start in range(0, count, BATCH):
                n = min(BATCH, count - start)
                clock.now += n * SECONDS_PER_PASS
                passes, spent = passes + n, spent + n
                step = HipeStep(0, 0, "", index=k, n_targets=len(schedules), depth=depth, max_depth=len(schedule),
                                depth_done=start + n, depth_total=count, passes=passes)
                out.append((eta.update(step), (total - spent) * SECONDS_PER_PASS))
        pending = tuple(range(k + 2, len(schedules) + 1))
        done = ClassDone(0, 0, "", explanation=_explanation(k + 1, passes), pending=pending)
        out.append((eta.update(done), (total - spent) * SECONDS_PER_PASS))
    return out


@pytest.mark.parametrize("schedule", [CELL, PATCH], ids=["cell", "patch"])
def test_one_class_is_never_optimistic_and_says_nothing_before_depth_3(schedule: tuple[int, ...]) -> None:
    reports = _drive([schedule])
    before_depth_3 = sum(schedule[:2]) // BATCH
    assert all(est is None for est, _ in reports[:before_depth_3])
    estimates = [(est, truth) for est, truth in reports if est is not None]
    assert len(estimates) > 0.8 * len(reports)
    for est, truth in estimates:
        assert est >= 0.95 * truth  # never short
        assert est <= 4 * truth + 1.0  # and not wildly long
    assert reports[-1][0] == pytest.approx(0.0)


def test_classes_after_the_first_are_extrapolated_from_it() -> None:
    reports = _drive([CELL, CELL, CELL, CELL])
    first_done = sum(CELL) // BATCH + 2
    for est, truth in reports[first_done:]:
        assert est is not None and est == pytest.approx(truth, rel=0.1, abs=1.0)


def test_progress_of_other_kinds_gives_no_estimate() -> None:
    eta = SaliencyEta(FakeClock())
    assert eta.update(Progress(0, 0, "Loading the model…")) is None


def test_explain_job_reports_each_batch_and_each_finished_class() -> None:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 5, 5, padding=2)).eval()
    from core.models import ModelCard
    from core.models.runtime import LoadedModel

    card = ModelCard(name="conv", encoder="none", mpp=0.5, patch_size=32, weights_sha256="0" * 64)
    model = LoadedModel(module, card, torch.device("cpu"), "fp32", "test")
    image = np.random.default_rng(0).random((32, 32), dtype=np.float32)
    patch = ExplainPatch(image, image, (0.0, 0.0), (16, 16), 0.5, (1.0, 1.0))
    classes = np.zeros((32, 32), np.uint8)
    context = ExplainContext(patch, np.zeros((5, 32, 32), np.float32), classes, 0, tuple(card.classes),
                             tuple(card.class_colours))
    steps: list[Progress] = []
    job = explain_job(model, context, [1, 2], batch_size=16)
    while True:
        try:
            steps.append(next(job))
        except StopIteration as stop:
            result = stop.value
            break
    done = [p for p in steps if isinstance(p, ClassDone)]
    assert [sorted(p.explanation.maps) for p in done] == [[1], [1, 2]]
    assert [p.pending for p in done] == [(2,), ()]
    first = [p for p in steps if isinstance(p, HipeStep) and p.index == 0]
    assert first[-1].passes == result.maps[1].n_masks
    per_depth = {p.depth: p.depth_total for p in first}
    assert sum(per_depth.values()) == result.maps[1].n_masks and per_depth[1] == 81
    assert "CD3+" in first[0].message or "CD3" in first[0].message
