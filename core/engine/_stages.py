"""Where an analysis spends its time: busy (wall) and CPU time of each pipeline stage.

Each stage runs in its own thread(s), so its *busy* time (wall clock while it works) includes
waiting for the GIL and for a core that another program holds; on a shared machine that swings
2× from minute to minute. Its *CPU* time (``time.thread_time`` of the thread doing it) counts only
the work, so it is what to compare between runs under different loads (cores shared with other
programs still make the work itself slower, by up to ~40% measured).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageClock:
    """Busy and CPU seconds per stage, summed over the threads that run it (thread-safe)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.busy = dict.fromkeys(names, 0.0)
        self.cpu = dict.fromkeys(names, 0.0)
        self._lock = threading.Lock()

    def add(self, name: str, busy: float, cpu: float) -> None:
        with self._lock:
            self.busy[name] += busy
            self.cpu[name] += cpu

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (in the calling thread)."""
        w, c = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - w, time.thread_time() - c)

    def per_tile_ms(self, tiles: int) -> tuple[dict[str, float], dict[str, float]]:
        """(busy, CPU) milliseconds per tile of every stage."""
        n = max(1, tiles)
        return ({k: 1000 * v / n for k, v in self.busy.items()}, {k: 1000 * v / n for k, v in self.cpu.items()})
