"""jobs.tasks progress callbacks: the ETA of a resumed job comes from the resumed run's own rate."""

import pytest

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


def test_a_failed_job_shows_the_step_it_failed_in(tmp_path, monkeypatch):
    """A pretrained import that fails while downloading said "reading the store entry": the download's own
    progress report came within the 1 s write throttle and was dropped when the job ended."""
    import json
    import shutil

    from digits_seg.jobs.tasks import run_job
    from digits_seg.store.index import bundled_store

    store_dir = tmp_path / "team-store"
    shutil.copytree(f"{bundled_store()}/fcn-alexnet-voc", store_dir / "fcn-alexnet-voc")
    manifest = store_dir / "fcn-alexnet-voc" / "manifest.json"
    m = json.loads(manifest.read_text())
    for f in m["files"]:
        if f["role"] == "weights":  # a host that never resolves (RFC 2606), with a checksum so it may be fetched
            f.update(url="http://weights.invalid/fcn-alexnet-pascal.caffemodel", sha256="0" * 64)
    manifest.write_text(json.dumps(m))
    monkeypatch.setenv("DIGITS_SEG_STORE_URLS", str(store_dir))
    store = JobStore(str(tmp_path / "jobs"))
    job = store.create("pretrained", "fcn", {"source": "store", "store": str(store_dir), "model": "fcn-alexnet-voc",
                                             "name": None})
    run_job(job.id, store.jobs_dir)
    done = store.get(job.id)
    assert done.state == JobState.ERROR and "weights.invalid" in done.error["message"], done.error
    assert done.progress["message"].startswith("downloading"), done.progress  # was "reading the store entry"


def test_a_failed_now_job_shows_the_step_it_failed_in(tmp_path):
    """`--now` jobs (run in the CLI's process) end through the same record as worker jobs: the report the
    1 s write throttle held back is the step shown, not the one before it."""
    from digits_seg.commands.inprocess import run_now
    from digits_seg.errors import DigitsSegError

    def task(job_dir, params, on_progress, should_stop, log):
        on_progress(0.1, "reading the folders")
        on_progress(0.2, "downloading the weights")  # within the throttle: held back
        raise DigitsSegError("the weights host cannot be found")

    store = JobStore(str(tmp_path / "jobs"))
    job = store.create("dataset", "now", {})
    with pytest.raises(DigitsSegError):
        run_now(store, job, task, {})
    done = store.get(job.id)
    assert done.state == JobState.ERROR and done.progress["message"] == "downloading the weights"
    assert done.progress["fraction"] == 0.2
