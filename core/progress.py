"""Progress reports and cancellation for long jobs, shared by the app and the CLIs.

A long core function is a generator: it yields :class:`Progress`, calls ``cancel.check()``
between units of work, and ``return``s its result. It knows nothing of threads or widgets; the
app's worker and :func:`run_to_completion` (CLI) are two front ends to the same generator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeVar

from core.errors import Cancelled

T = TypeVar("T")

Job = Generator["Progress", None, T]


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units finished; ``message`` is a short line for a status bar."""

    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


class CancelToken:
    """A thread-safe flag; ``check()`` raises :class:`Cancelled` once ``cancel()`` was called."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class Eta:
    """Estimates the time left from the rate so far (seconds)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def remaining(self, p: Progress) -> float | None:
        if p.done <= 0 or p.total <= 0:
            return None
        elapsed = time.perf_counter() - self._start
        return elapsed / p.done * max(0, p.total - p.done)


def run_to_completion(job: Job[T], on_progress: Callable[[Progress], None] | None = None) -> T:
    """Drive a job generator to its end and return its result (for CLIs and tests)."""
    while True:
        try:
            p = next(job)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(p)
