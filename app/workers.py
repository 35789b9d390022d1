"""The one worker that runs any core job generator on a QThread (STYLE.md §2).

A core job yields :class:`core.progress.Progress` and returns its result. :class:`JobWorker` calls
``next()`` in a loop on its own thread and re-emits what happens as signals; connect them to widget
*methods* (never lambdas), so Qt delivers them on the UI thread. Cancel with :meth:`JobRunner.cancel`
(sets the CancelToken the job checks between units of work).
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.errors import Cancelled
from core.progress import CancelToken, Progress

log = logging.getLogger(__name__)

#: GIL switch interval while jobs may run (s). Each Qt call the UI thread makes releases the GIL;
#: with Python's default 5 ms a busy worker could keep it that long each time, so a frame of a
#: few dozen such calls took 60-90 ms. At 1 ms the longest stall while panning a 40000² slide
#: during an analysis fell from 75 to 59 ms and the slowest frame from 62 to 36 ms; the worker's
#: throughput is set by torch and numpy code that releases the GIL anyway.
UI_SWITCH_INTERVAL_S = 0.001


def freeze_long_lived() -> None:
    """Move every object alive now out of the garbage collector's reach (``gc.freeze``).

    With torch, pandas and Qt loaded the process tracks ~500k objects, and a full (generation-2)
    collection walks them all: 120-200 ms, on whichever thread happens to trigger it, often the
    UI thread (measured while panning during an analysis). Objects alive at job start or after a
    model is loaded outlive the job; frozen, they are not scanned while it runs. Each job's end
    unfreezes them (:meth:`JobRunner._on_thread_finished`), so cyclic garbage is still freed.
    """
    gc.freeze()


#: Niceness added to a job's thread on Linux, where QThread priorities have no effect.
WORKER_NICENESS = 10


def _lower_this_thread() -> None:
    """Let the UI thread win the CPU when both want it (background work may wait, the UI may not).

    On 2 cores the engine, a tile decoder and the UI thread compete; a frame that lost its core
    took 30-40 ms instead of 6. Linux threads have their own nice value (setpriority on the
    thread id); elsewhere QThread's LowPriority, set at start, does the same.
    """
    if sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()  # added to the thread's own niceness (a nice'd app stays below it)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICENESS))
        except OSError:  # not allowed here: run at normal priority
            log.debug("Could not lower the worker thread's priority", exc_info=True)


#: Makes the job on the worker thread (so slow set-up such as loading a model runs there too).
JobFactory = Callable[[CancelToken], Generator[Progress, None, Any]]

#: (thread, worker, token) of every started job until its thread has finished. Destroying a QThread that
#: still runs aborts the whole process, and that is what happened when a widget owning a runner
#: was deleted after ``wait()`` gave up on a job slow to notice its cancel (a fully loaded CPU,
#: the worker thread niced). So a runner may go, but its thread and worker stay referenced here
#: until its end is handled (or, if the runner went first, until the next start; the worker holds
#: the job's closure, e.g. an open slide, so it is not kept longer). At exit each is cancelled and
#: waited for a while, so that quitting while a job winds down does not abort either.
_STARTED: set[tuple[QThread, QObject, CancelToken]] = set()
#: How long (ms) the exit waits for each job still running.
EXIT_WAIT_MS = 10_000


def _keep_until_finished(thread: QThread, worker: QObject, token: CancelToken) -> None:
    _STARTED.difference_update({entry for entry in _STARTED if entry[0].isFinished()})
    _STARTED.add((thread, worker, token))


@atexit.register
def _wait_for_jobs_at_exit() -> None:
    for thread, _worker, token in list(_STARTED):
        token.cancel()
        if not thread.wait(EXIT_WAIT_MS):
            log.warning("A background job did not stop within %d s of quitting", EXIT_WAIT_MS // 1000)


class JobWorker(QObject):
    """Drives one job; lives on a QThread. Emits exactly one of finished/cancelled/failed."""

    progress = Signal(object)   # Progress (BlockDone included)
    finished = Signal(object)   # the job's return value
    cancelled = Signal()
    failed = Signal(object)     # the exception

    def __init__(self, factory: JobFactory, cancel: CancelToken) -> None:
        super().__init__()
        self._factory = factory
        self._cancel = cancel

    @Slot()
    def run(self) -> None:
        _lower_this_thread()
        try:
            job = self._factory(self._cancel)
            while True:
                try:
                    p = next(job)
                except StopIteration as stop:
                    self.finished.emit(stop.value)
                    return
                self.progress.emit(p)
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # reported by the UI thread's handler, never swallowed
            log.exception("Job failed")
            self.failed.emit(exc)
        finally:
            # Quit from this thread: a UI thread blocked in JobRunner.wait() could not deliver a quit.
            QThread.currentThread().quit()


class JobRunner(QObject):
    """Owns the thread and worker of one running job; ``done`` fires after any ending."""

    done = Signal()

    def __init__(self, factory: JobFactory, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.token = CancelToken()
        self.qthread = QThread()
        self.worker = JobWorker(factory, self.token)
        self.worker.moveToThread(self.qthread)
        self.qthread.started.connect(self.worker.run)
        for sig in (self.worker.finished, self.worker.failed):
            sig.connect(self._on_end)
        self.worker.cancelled.connect(self._on_cancelled)
        self.qthread.finished.connect(self._on_thread_finished)

    def start(self) -> None:
        if sys.getswitchinterval() > UI_SWITCH_INTERVAL_S:
            sys.setswitchinterval(UI_SWITCH_INTERVAL_S)  # the UI thread gets the GIL back sooner
        freeze_long_lived()
        _keep_until_finished(self.qthread, self.worker, self.token)
        self.qthread.start(QThread.Priority.LowPriority)

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def running(self) -> bool:
        return self.qthread.isRunning()

    def wait(self, ms: int = 30000) -> bool:
        return self.qthread.wait(ms)

    @Slot(object)
    def _on_end(self, _value: object) -> None:
        self.qthread.quit()

    @Slot()
    def _on_cancelled(self) -> None:
        self.qthread.quit()

    @Slot()
    def _on_thread_finished(self) -> None:
        # Between jobs the collector may see everything again: objects that became cyclic garbage
        # while frozen (a closed slide's, say) are freed instead of kept for the whole session.
        gc.unfreeze()
        _STARTED.discard((self.qthread, self.worker, self.token))  # the runner holds them from here
        self.done.emit()
