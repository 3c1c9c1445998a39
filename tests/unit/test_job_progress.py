"""jobs.tasks progress callbacks: the ETA of a resumed job comes from the resumed run's own rate."""

from digits_seg.jobs.job import JobState
from digits_seg.jobs.store import JobStore
from digits_seg.jobs.tasks import Heartbeat, make_callbacks


class Clock:
    """A settable clock, so the test states the times instead of sleeping through them."""

    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def _running_job(tmp_path):
    store = JobStore(str(tmp_path / "jobs"))
    job = store.create("model", "resumed", {})
    store.set_state(job.id, JobState.RUNNING)
    return store, job.id


def test_resumed_run_eta_uses_only_the_resumed_progress(tmp_path):
    store, job_id = _running_job(tmp_path)
    clock = Clock(1000.0)
    on_progress, _, _ = make_callbacks(store, job_id, Heartbeat(store, job_id, 1.0), clock=clock)
    on_progress(0.50, "resumed at iteration 500/1000")  # the earlier runs did half the work
    clock.t += 20.0
    on_progress(0.60, "iteration 600/1000")  # 10 % in 20 s: the remaining 40 % take 80 s
    progress = store.get(job_id).progress
    expected = 20.0 * (1.0 - 0.60) / (0.60 - 0.50)
    assert progress["fraction"] == 0.6
    assert abs(progress["eta_s"] - expected) < 0.2, progress  # the whole-history rate said 13 s


def test_fresh_run_eta_and_no_eta_before_progress(tmp_path):
    store, job_id = _running_job(tmp_path)
    clock = Clock(50.0)
    on_progress, _, _ = make_callbacks(store, job_id, Heartbeat(store, job_id, 1.0), clock=clock)
    on_progress(0.0, "loading")
    assert store.get(job_id).progress["eta_s"] is None
    clock.t += 30.0
    on_progress(0.25, "epoch 1/4")
    assert abs(store.get(job_id).progress["eta_s"] - 90.0) < 0.2
