"""Read tiles ahead of the model on a small thread pool, in order, with a bounded look-ahead.

Reading, decoding and normalising a tile takes milliseconds, a model call on a CPU a tenth of a
second per tile: one or two reader threads keep the model fed. The look-ahead bounds memory (at
most ``depth`` tiles wait) and the order is the submission order, so results are deterministic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Prefetcher(Generic[T, R]):
    """Iterate ``fn(item)`` over ``items`` computed by ``workers`` threads, ``depth`` items ahead.

    ``workers=0`` computes each item in the calling thread when it is taken (no look-ahead, no
    extra thread competing with the model for the CPU). Use as a context manager: leaving it (also
    through an exception or a cancel) drops the pending reads and lets the threads finish.
    """

    def __init__(self, fn: Callable[[T], R], items: Iterable[T], workers: int = 1, depth: int = 16) -> None:
        self._fn = fn
        self._items = iter(items)
        self._depth = max(1, depth)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tile-reader") if workers > 0 else None
        self._pending: deque[Future[R]] = deque()
        self._fill()

    def _fill(self) -> None:
        while self._pool is not None and len(self._pending) < self._depth:
            try:
                item = next(self._items)
            except StopIteration:
                return
            self._pending.append(self._pool.submit(self._fn, item))

    def __iter__(self) -> Iterator[R]:
        while True:
            got = self.take(1)
            if not got:
                return
            yield got[0]

    def take(self, n: int) -> list[R]:
        """The next ``n`` results (fewer at the end)."""
        out: list[R] = []
        if self._pool is None:
            for item in self._items:
                out.append(self._fn(item))
                if len(out) == n:
                    break
            return out
        while len(out) < n and self._pending:
            fut = self._pending.popleft()
            self._fill()
            out.append(fut.result())
        return out

    def close(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Prefetcher[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
