import threading

import pytest

from core.errors import Cancelled
from core.progress import CancelToken, Progress, run_to_completion


def _job(n, cancel):
    for i in range(1, n + 1):
        cancel.check()
        yield Progress(i, n, f"Step {i} of {n}")
    return "done"


def test_run_to_completion_returns_the_result_and_reports_every_step():
    seen = []
    assert run_to_completion(_job(3, CancelToken()), seen.append) == "done"
    assert [p.done for p in seen] == [1, 2, 3]
    assert seen[-1].fraction == 1.0


def test_cancel_from_another_thread_stops_the_job():
    token = CancelToken()
    job = _job(100, token)
    next(job)
    t = threading.Thread(target=token.cancel)
    t.start()
    t.join()
    with pytest.raises(Cancelled):
        run_to_completion(job)
