"""JobRunner: a core job on a QThread, and what it does so the UI thread keeps up beside it."""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Generator

import pytest

from app import workers
from app.workers import UI_SWITCH_INTERVAL_S, WORKER_NICENESS, JobRunner
from core.errors import Cancelled
from core.progress import CancelToken, Progress


def test_job_runs_off_the_ui_thread_lowered_frozen_then_unfrozen(qtbot) -> None:  # noqa: ANN001
    seen: dict[str, object] = {}

    def job(cancel: CancelToken) -> Generator[Progress, None, str]:
        seen["thread"] = threading.get_ident()
        seen["frozen"] = gc.get_freeze_count()
        if sys.platform.startswith("linux"):
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        yield Progress(1, 2, "half")
        cancel.check()
        return "done"

    base_nice = os.getpriority(os.PRIO_PROCESS, 0) if sys.platform.startswith("linux") else 0
    runner = JobRunner(job)
    results: list[object] = []
    runner.worker.finished.connect(results.append)
    with qtbot.waitSignal(runner.done, timeout=10000):
        runner.start()
    assert results == ["done"] and seen["thread"] != threading.get_ident()
    assert seen["frozen"] > 1000  # what was alive at the start is out of the collector's way
    assert gc.get_freeze_count() == 0  # and back in reach once the job has ended
    assert sys.getswitchinterval() <= UI_SWITCH_INTERVAL_S
    if sys.platform.startswith("linux"):
        assert seen["nice"] == min(19, base_nice + WORKER_NICENESS)
    # once its end is handled, only the runner holds the job (and what its closure holds, e.g. a slide)
    assert all(entry[0] is not runner.qthread for entry in workers._STARTED)


def test_cancel_ends_the_job_with_cancelled(qtbot) -> None:  # noqa: ANN001
    started = threading.Event()

    def job(cancel: CancelToken) -> Generator[Progress, None, None]:
        started.set()
        while True:
            cancel.check()
            yield Progress(0, 0, "waiting")

    runner = JobRunner(job)
    cancelled: list[bool] = []
    runner.worker.cancelled.connect(lambda: cancelled.append(True))
    with qtbot.waitSignal(runner.done, timeout=10000):
        runner.start()
        assert started.wait(5)
        runner.cancel()
    assert cancelled == [True] and not runner.running
    with pytest.raises(Cancelled):
        runner.token.check()


_OWNER_DELETED_WHILE_RUNNING = """
import gc, threading
import shiboken6
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QApplication
from app.workers import JobRunner
from core.progress import Progress

app = QApplication([])
release, started, ended = threading.Event(), threading.Event(), threading.Event()

def job(cancel):
    started.set()
    release.wait(10)  # a job slow to notice its cancel
    yield Progress(1, 1, "late")
    ended.set()
    return "late"

owner = QObject()
runner = JobRunner(job, owner)
runner.start()
assert started.wait(10)
runner.cancel()
assert not runner.wait(50)  # the owner gave up waiting ...
shiboken6.delete(owner)  # ... and is deleted, the runner with it
del runner, owner
gc.collect()
release.set()
assert ended.wait(10)
print("survived")
"""


def test_deleting_the_owner_of_a_running_job_does_not_abort_the_app() -> None:
    """A QThread destroyed while it runs aborts the process (seen in a test under full CPU load)."""
    import subprocess

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", _OWNER_DELETED_WHILE_RUNNING], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "survived" in done.stdout, done.stderr[-2000:]
