"""An honest estimate of the time left of a saliency run, from what this run has measured.

HiPe cannot know its cost in advance: each depth plans its windows from the saliency found so far,
and a deeper depth has a finer grid, so later depths usually cost several times the earlier ones.
Spreading progress evenly over the depths (what the progress bar shows) made the old estimate
2.5× optimistic for one class, growing 794 → 1157 s for four. This estimate instead counts forward
passes, whose time is steady:

* seconds per pass: measured in this run (wall time since HiPe started, i.e. the ContextReady
  report, over the passes done), so whatever device and load the machine has is in it;
* passes left in this depth: known exactly (HiPe plans a depth before it runs it);
* passes of the depths to come: until a class has finished, projected from the growth between
  the depths seen so far, at the largest ratio seen (so the projection errs long, not short), each
  depth capped at the windows its grid has. Depth 1 tries every window and depth 2 only the salient
  ones, so their ratio says nothing (cell mode: 81 then ~21, then growing 2-3× a depth); there is no
  estimate before the third depth is planned, a few per cent into the work;
* classes to come: as many passes as the classes already finished took on average (the first class
  measured, then extrapolated), or the current class's projection before any has finished.

:meth:`SaliencyEta.update` returns None while there is nothing honest to say ("estimating…").
The clock is injected, so tests drive it by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core.progress import Progress
from core.saliency.explain import ClassDone, ContextReady, HipeStep

#: A depth's grid has at most 4× the windows of the one before (the cells per side double).
MAX_GROWTH = 4.0


class SaliencyEta:
    """Seconds left of one :func:`core.saliency.explain_job` run; feed it every progress report."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, initial_cells: int = 4) -> None:
        self._clock = clock
        self._initial_cells = initial_cells
        self._start: float | None = None
        self._passes_before = 0  # passes of the classes finished in this run
        self._finished: list[int] = []  # passes per finished class
        self._depth_totals: dict[int, int] = {}  # depth -> planned passes, current class
        self._uncounted = 0  # passes done before the clock started

    def start(self) -> None:
        """Start the clock (when HiPe starts; called by the first update if not before)."""
        self._start = self._clock()

    def update(self, p: Progress) -> float | None:
        """Take one progress report; the seconds left, or None when there is no honest estimate yet."""
        if isinstance(p, ClassDone) and p.explanation is not None:
            passes = sum(r.n_masks for r in p.explanation.maps.values())
            self._finished.append(passes - self._passes_before)
            self._passes_before = passes
            self._depth_totals = {}
            return self._seconds(0, len(p.pending) * self._per_class(0.0))
        if isinstance(p, ContextReady):
            self.start()  # HiPe starts now: its first batch is timed from here
            return None
        if not isinstance(p, HipeStep):
            return None
        if self._start is None:  # no ContextReady seen: time from here, without the passes already done
            self.start()
            self._uncounted = p.passes
        self._depth_totals[p.depth] = p.depth_total
        done_here = p.passes
        left_here = self._left_in_class(p)
        if left_here is None:
            return None
        classes_after = p.n_targets - p.index - 1
        per_class = self._per_class(done_here + left_here)
        return self._seconds(done_here, left_here + classes_after * per_class)

    def _left_in_class(self, p: HipeStep) -> float | None:
        """Passes left in the current class: this depth exactly, the depths to come projected."""
        in_depth = max(0, p.depth_total - p.depth_done)
        if self._finished:
            mean = sum(self._finished) / len(self._finished)
            return max(float(in_depth), mean - p.passes)
        if p.depth >= p.max_depth:
            return float(in_depth)
        if p.depth < 3:
            return None  # depth 1 tries every window, so 1 -> 2 says nothing of the growth to come
        ratio = 1.0
        for d in range(3, p.depth + 1):
            prev = self._depth_totals.get(d - 1)
            if prev:
                ratio = max(ratio, self._depth_totals[d] / prev)
        ratio = min(ratio, MAX_GROWTH)
        count, future = float(p.depth_total), 0.0
        for d in range(p.depth + 1, p.max_depth + 1):
            cells = self._initial_cells * 2**d
            count = min(count * ratio, float((cells + 1) ** 2))
            future += count
        return in_depth + future

    def _per_class(self, current_class_total: float) -> float:
        return sum(self._finished) / len(self._finished) if self._finished else current_class_total

    def _seconds(self, done_in_class: int, passes_left: float) -> float | None:
        if self._start is None:
            return None
        passes = self._passes_before + done_in_class - self._uncounted
        if passes <= 0:
            return None
        rate = (self._clock() - self._start) / passes
        return rate * passes_left


__all__ = ["MAX_GROWTH", "SaliencyEta"]
