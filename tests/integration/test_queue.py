"""Queue lifecycle with real components: embedded Redis, `digits-seg worker` subprocesses."""

import os
import signal
import time

import pytest

from digits_seg.jobs.job import JobState
from digits_seg.jobs.queue import connect, escalate_aborts, list_workers, recover
from digits_seg.jobs.service import JobService
from digits_seg.jobs.store import JobStore

from ..conftest import wait_for


def state_of(service, job_id):
    return service.store.get(job_id).state


def test_job_goes_queued_running_done(settings, start_worker):
    service = JobService(settings)
    job = service.submit("check", "three steps", {"steps": 3, "interval_s": 0.1})
    assert state_of(service, job.id) == JobState.QUEUED
    start_worker()
    wait_for(lambda: state_of(service, job.id) == JobState.DONE, 60, message="job done")
    done = service.store.get(job.id)
    states = [h["state"] for h in done.status_history]
    assert states == ["queued", "running", "done"]
    assert done.progress["fraction"] == 1.0
    assert done.result["steps"] == 3
    assert done.worker["pid"] > 0
    log, _ = service.store.read_log(job.id)
    assert "Started check job" in log and "Done." in log
    # the job folder is the source of truth: the record reads back from job.json alone
    assert JobStore(settings.jobs_dir).get(job.id).state == JobState.DONE


def test_failing_job_records_message(settings, start_worker):
    service = JobService(settings)
    job = service.submit("check", "bad", {"steps": 1, "fail": "label value 7 in labels/a.png is >= 3 classes"})
    start_worker()
    wait_for(lambda: state_of(service, job.id) == JobState.ERROR, 60, message="job error")
    assert service.store.get(job.id).error["message"] == "label value 7 in labels/a.png is >= 3 classes"


def test_abort_running_job(settings, start_worker):
    service = JobService(settings)
    job = service.submit("check", "long", {"steps": 400, "interval_s": 0.1})
    start_worker()
    wait_for(lambda: state_of(service, job.id) == JobState.RUNNING, 60, message="running")
    wait_for(lambda: os.path.exists(os.path.join(service.store.job_dir(job.id), "steps.txt")), 30,
             message="first step")
    t0 = time.time()
    service.abort(job.id)
    wait_for(lambda: state_of(service, job.id) == JobState.ABORTED, 10, message="aborted")
    assert time.time() - t0 < 10
    # the folder keeps what the job had written
    with open(os.path.join(service.store.job_dir(job.id), "steps.txt")) as f:
        assert len(f.read().splitlines()) >= 1


def test_abort_queued_job_never_runs(settings, start_worker):
    service = JobService(settings)
    job = service.submit("check", "never", {"steps": 1})
    service.abort(job.id)
    assert state_of(service, job.id) == JobState.ABORTED
    marker = service.submit("check", "after", {"steps": 1, "interval_s": 0.01})
    start_worker()
    wait_for(lambda: state_of(service, marker.id) == JobState.DONE, 60, message="marker done")
    assert state_of(service, job.id) == JobState.ABORTED
    assert not os.path.exists(os.path.join(service.store.job_dir(job.id), "steps.txt"))


def test_stubborn_job_is_killed_by_stop_command(settings, start_worker):
    """A task that ignores should_stop() is killed through RQ's stop-job command."""
    service = JobService(settings)
    job = service.submit("check", "stubborn", {"steps": 1, "interval_s": 120})
    start_worker()
    wait_for(lambda: state_of(service, job.id) == JobState.RUNNING, 60, message="running")
    service.abort(job.id)
    time.sleep(1.0)
    assert state_of(service, job.id) == JobState.RUNNING  # still sleeping inside its only step
    escalate_aborts(service.conn, service.store, now=time.time() + 60)
    assert state_of(service, job.id) == JobState.ABORTED


def test_sigkilled_worker_marks_job_error(settings, start_worker):
    service = JobService(settings)
    job = service.submit("check", "victim", {"steps": 400, "interval_s": 0.1})
    worker = start_worker()
    wait_for(lambda: state_of(service, job.id) == JobState.RUNNING, 60, message="running")
    worker.kill(signal.SIGKILL)
    wait_for(lambda: state_of(service, job.id) == JobState.ERROR, 30, message="error after SIGKILL")
    error = service.store.get(job.id).error
    assert "worker stopped unexpectedly" in error["message"]


def test_dead_machine_detected_by_heartbeat(settings, start_worker):
    """Worker and work horse both gone (machine reboot): the stale heartbeat gives it away."""
    import psutil

    service = JobService(settings)
    job = service.submit("check", "reboot", {"steps": 400, "interval_s": 0.1})
    worker = start_worker()
    wait_for(lambda: state_of(service, job.id) == JobState.RUNNING, 60, message="running")
    horse = service.store.get(job.id).worker["pid"]
    os.kill(horse, signal.SIGSTOP)  # frozen: no heartbeat, no exit
    try:
        worker.kill(signal.SIGKILL)
        time.sleep(0.5)
        assert state_of(service, job.id) == JobState.RUNNING
        # heartbeat_s is 1 in tests, so 6 s without a beat means dead
        wait_for(lambda: recover(service.conn, service.store, heartbeat_s=1) and
                 state_of(service, job.id) == JobState.ERROR, 20, message="recovery")
    finally:
        try:
            psutil.Process(horse).kill()
        except psutil.NoSuchProcess:
            pass
    assert "no heartbeat" in service.store.get(job.id).error["message"]


def test_two_workers_run_each_job_exactly_once(settings, start_worker):
    service = JobService(settings)
    jobs = [service.submit("check", "job %d" % i, {"steps": 2, "interval_s": 0.05}) for i in range(8)]
    start_worker(name="w1")
    start_worker(name="w2")
    wait_for(lambda: all(state_of(service, j.id) == JobState.DONE for j in jobs), 120, message="8 jobs done")
    pids = set()
    for j in jobs:
        with open(os.path.join(service.store.job_dir(j.id), "steps.txt")) as f:
            lines = f.read().splitlines()
        assert [line.split()[0] for line in lines] == ["0", "1"]  # ran once, not twice
        history = [h["state"] for h in service.store.get(j.id).status_history]
        assert history.count("running") == 1
        pids.add(service.store.get(j.id).worker["name"])
    assert pids <= {"w1", "w2"}
    workers = list_workers(connect(settings.redis_url))
    assert {w["name"] for w in workers} == {"w1", "w2"}
    assert all(w["gpu"] is None for w in workers)


def test_dependent_job_waits_then_fails_with_dependency(settings, start_worker):
    service = JobService(settings)
    first = service.submit("check", "dataset-like", {"steps": 1, "fail": "broken labels"})
    second = service.submit("check", "model-like", {"steps": 1}, depends_on=[first.id])
    start_worker()
    wait_for(lambda: state_of(service, second.id).finished, 60, message="dependent finished")
    assert state_of(service, first.id) == JobState.ERROR
    assert state_of(service, second.id) == JobState.ERROR
    assert "ended as error" in service.store.get(second.id).error["message"]


def test_restart_requeues_queued_jobs_and_keeps_states(tmp_path, settings, start_worker):
    """A new Redis that lost the queue: start-up recovery queues the waiting jobs again."""
    from digits_seg.jobs.redis_server import EmbeddedRedis

    service = JobService(settings)
    done = service.submit("check", "finished", {"steps": 1, "interval_s": 0.01})
    w = start_worker()
    wait_for(lambda: state_of(service, done.id) == JobState.DONE, 60, message="done")
    w.stop()
    waiting = service.submit("check", "waiting", {"steps": 1, "interval_s": 0.01})
    # a different, empty Redis: as after losing the embedded server's data
    with EmbeddedRedis(str(tmp_path / "other-redis")) as fresh:
        settings2 = settings.replace(redis_url=fresh.url)
        service2 = JobService(settings2)
        changed = recover(service2.conn, service2.store, heartbeat_s=1, startup=True)
        assert changed == [waiting.id]
        from ..conftest import WorkerProcess

        worker = WorkerProcess(settings2)
        try:
            wait_for(lambda: state_of(service2, waiting.id) == JobState.DONE, 60, message="re-queued job done")
        finally:
            worker.stop()
    assert state_of(service2, done.id) == JobState.DONE
    assert [h["state"] for h in service2.store.get(done.id).status_history] == ["queued", "running", "done"]


def test_delete_refuses_dataset_used_by_model(settings, client):
    service = JobService(settings)
    dataset = service.store.create("dataset", "streets", {})
    service.store.create("model", "fcn on streets", {"dataset_id": dataset.id})
    r = client.post("/jobs/%s/delete.json" % dataset.id, json={})
    assert r.status_code == 409
    assert "fcn on streets" in r.get_json()["error"]["message"]
    assert os.path.isdir(service.store.job_dir(dataset.id))


def test_resume_requeues_stopped_model_job(settings):
    service = JobService(settings)
    job = service.store.create("model", "m", {})
    service.store.set_state(job.id, JobState.RUNNING)
    service.store.set_state(job.id, JobState.ERROR, error={"message": "worker stopped unexpectedly"})
    resumed = service.resume(job.id)
    assert resumed.state == JobState.QUEUED and resumed.resume is True
    from digits_seg.jobs.queue import rq_status

    assert rq_status(service.conn, job.id) == "queued"
    with pytest.raises(Exception):
        service.resume(job.id)  # queued jobs cannot be resumed again
