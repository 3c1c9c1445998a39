"""Faults against a live `serve`: Redis SIGKILL, worker SIGKILL, serve SIGKILL + restart, a
`train --now` beside serve (heartbeats, SIGTERM), many event streams. Each test records how
long recovery took (printed; the closing note of issue 13 tabulates them).

Jobs are "worker check" jobs (a counted sleep in a real worker): they run as long as asked
without loading torch, so the faults, not training, set the pace.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from digits_seg.config import load_settings
from digits_seg.errors import DigitsSegError
from digits_seg.jobs.service import JobService
from digits_seg.jobs.store import JobStore
from tests.conftest import LiveServer, wait_for
from tests.reliability.conftest import call


def _service(jobs):
    return JobService(load_settings({"jobs_dir": jobs}, environ={}))


def _check_job(service, steps, interval=0.2):
    return service.submit("check", "check", {"steps": steps, "interval_s": interval}, queue="default")


def _children(pid, marker):
    found = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            if marker in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:  # gone, or a zombie not yet reaped
            continue
    return found


def _state(jobs, job_id):
    return JobStore(jobs).get(job_id).state.value


def _report(what, seconds):
    print("FAULT %s: recovered in %.2f s" % (what, seconds))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    s = LiveServer(tmp, env={"DIGITS_SEG_MAX_EVENT_STREAMS": "3", "DIGITS_SEG_MAX_EVENT_STREAMS_PER_CLIENT": "3"})
    yield s
    s.stop()


def test_redis_sigkill_is_survived(server):
    """Redis is restarted with persistence, the worker keeps going, nothing is left in error."""
    jobs = server.jobs_dir
    service = _service(jobs)
    redis_proc = _children(server.proc.pid, "redis-server")[0]
    conn = service.conn
    from digits_seg.jobs.queue import list_workers

    wait_for(lambda: list_workers(conn), 60, message="the worker registered")  # not killed mid-start-up
    assert conn.config_get("save")["save"] != ""  # persistence as the README says
    assert conn.config_get("dir")["dir"] == os.path.join(jobs, ".redis")
    queued = _check_job(service, 2, 0.05)  # waits in the queue while Redis is down... or runs first
    t0 = time.time()
    redis_proc.kill()
    refused = 0
    while time.time() - t0 < 30:
        try:
            _check_job(_service(jobs), 1, 0.05)
            break
        except DigitsSegError:  # QueueUnavailableError (503): nothing was created
            refused += 1
            time.sleep(0.2)
    restarted = time.time() - t0
    _report("Redis SIGKILL -> accepting jobs again", restarted)
    assert restarted < 15
    new = _children(server.proc.pid, "redis-server")
    assert new and new[0].pid != redis_proc.pid
    assert not psutil.pid_exists(redis_proc.pid)  # reaped, not left as a zombie
    assert "restarting it" in server.log()
    store = JobStore(jobs)
    wait_for(lambda: all(j.state.value == "done" for j in store.list()), 60, message="jobs done after Redis restart")
    assert _state(jobs, queued.id) == "done"
    assert not [j for j in store.list() if j.state.value == "error"]
    # the worker waited for Redis instead of crash-looping: serve restarted none
    assert not [line for line in server.log().splitlines() if line.startswith("worker ") and "exited" in line]
    _report("Redis SIGKILL -> queued job done", time.time() - t0)


def test_event_streams_are_capped_and_leave_threads_free(server):
    """Streams beyond the cap get 503 at once; with every slot taken, other pages still answer fast."""
    service = _service(server.jobs_dir)
    job = _check_job(service, 300, 0.1)  # stays queued or running: its streams stay open
    host, port = server.url.split("//")[1].split(":")
    streams = []
    for _ in range(3):
        s = socket.create_connection((host, int(port)))
        s.sendall(("GET /jobs/%s/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n"
                   % (job.id, host)).encode())
        streams.append(s)
    time.sleep(0.5)
    status, _, text = call(server.url, "GET", "/jobs/%s/events" % job.id)
    assert status == 503 and "streams" in text
    t0 = time.time()
    for _ in range(10):
        assert call(server.url, "GET", "/index.json", timeout=5)[0] == 200
    assert time.time() - t0 < 5
    for s in streams:
        s.close()
    service.abort(job.id)


@pytest.mark.slow
def test_train_now_beside_serve_keeps_beating_and_aborts_on_sigterm(server, tiny_trained, tmp_path):
    """A `--now` job is not declared dead by serve's heartbeat check; its progress shows; SIGTERM → aborted."""
    import shutil

    jobs = server.jobs_dir
    ds = tiny_trained["dataset"]
    if not os.path.isdir(os.path.join(jobs, ds)):
        shutil.copytree(os.path.join(tiny_trained["jobs"], ds), os.path.join(jobs, ds))
    env = dict(os.environ, DIGITS_SEG_JOBS_DIR=jobs, DIGITS_SEG_HEARTBEAT_S="1", PYTHONUNBUFFERED="1")
    # stderr to a file, not a pipe nobody reads: the progress bar fills a pipe's 64 KiB and the job
    # then blocks on its next write instead of exiting.
    err = open(tmp_path / "train-now.stderr", "w")
    proc = subprocess.Popen([sys.executable, "-m", "digits_seg.cli", "train", "--dataset", ds, "--network",
                             "tiny-fcn", "--epochs", "100000", "--batch-size", "2", "--device", "cpu", "--workers", "0",
                             "--now", "--json"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        store = JobStore(jobs)

        def running():
            found = [j for j in store.list(kind="model") if j.state.value == "running"]
            return found and (found[0].progress or {}).get("fraction", 0) > 0 and found[0]
        job = wait_for(running, 90, message="--now job running with progress")
        time.sleep(8)  # > 6 heartbeats of 1 s: serve's check would have called it dead
        job = store.get(job.id)
        assert job.state.value == "running", job.error
        assert job.progress["fraction"] > 0
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: store.get(job.id).state.value == "aborted", 10, message="aborted on SIGTERM")
        _report("SIGTERM of train --now -> aborted", time.time() - t0)
        assert "Aborted: stopped (SIGTERM)" in store.read_log(job.id)[0]
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err.close()


def test_worker_sigkill_marks_the_job_error(server):
    service = _service(server.jobs_dir)
    job = _check_job(service, 200, 0.1)
    store = JobStore(server.jobs_dir)
    wait_for(lambda: store.get(job.id).state.value == "running", 30, message="check job running")
    worker = _children(server.proc.pid, "digits_seg.cli worker")
    rq_worker = [p for p in worker if p.parent().pid == server.proc.pid][0]
    t0 = time.time()
    rq_worker.kill()
    wait_for(lambda: store.get(job.id).state.value == "error", 30, message="job marked error")
    _report("worker SIGKILL -> job error", time.time() - t0)
    assert "worker" in store.get(job.id).error["message"]


@pytest.mark.slow
def test_serve_sigkill_and_restart(tmp_path):
    server = LiveServer(tmp_path)
    try:
        service = _service(server.jobs_dir)
        job = _check_job(service, 300, 0.1)
        store = JobStore(server.jobs_dir)
        wait_for(lambda: store.get(job.id).state.value == "running", 30, message="check job running")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        server._log.close()
        t0 = time.time()
        again = LiveServer(tmp_path, env={"DIGITS_SEG_JOBS_DIR": server.jobs_dir})
        _report("serve SIGKILL -> serving again", time.time() - t0)
        try:
            wait_for(lambda: store.get(job.id).state.value == "error", 30, message="orphaned job marked error")
            _report("serve SIGKILL -> orphaned job error", time.time() - t0)
            status, body = again.post_json("/jobs/%s/abort.json" % job.id)
            assert status == 409
            assert _check_job(_service(server.jobs_dir), 1, 0.01)
        finally:
            again.stop()
    finally:
        if server.proc.poll() is None:
            server.stop()


def test_disk_full_on_a_small_filesystem(tmp_path, settings):
    """A 24 MiB tmpfs as the jobs folder, filled up: 507 with the free space, nothing written, a clean dataset error."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); run the suite as root to test a full disk")
    try:
        _disk_full_checks(str(mnt), settings)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def _disk_full_checks(mnt, settings):
    from digits_seg.datasets.create import create_dataset
    from digits_seg.errors import DigitsSegError
    from digits_seg.web.app import create_app
    from tests.conftest import synthcity_params
    from tests.reliability.conftest import disk_state

    jobs = os.path.join(mnt, "jobs")
    os.makedirs(jobs)
    s = settings.replace(jobs_dir=jobs, min_free_mb=4)
    app = create_app(s)
    client = app.test_client()
    existing = JobStore(jobs).create("dataset", "kept", {"x": 1})
    with open(os.path.join(mnt, "filler"), "wb") as f:  # leave about 2 MiB
        f.write(b"\0" * (os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize - 2 * 2 ** 20))
    src = os.path.join(settings.resolved_data_roots[0], "src")
    params = synthcity_params(settings, src, 24, (96, 96), seed=2)
    before = disk_state(jobs)
    r = client.post("/datasets.json", json={"name": "d", "images": params["images"], "labels": params["labels"],
                                            "classes_file": params["classes_file"]})
    assert r.status_code == 507, r.get_data(as_text=True)
    message = r.get_json()["error"]["message"]
    assert "the jobs folder's disk is full (" in message and "MB free)" in message
    # an upload larger than what is left (with the free-space floor off): 507, and no stage left behind
    client = create_app(s.replace(min_free_mb=0)).test_client()
    import io

    r = client.post("/datasets.json", data={"name": "d", "archive": (io.BytesIO(os.urandom(3 * 2 ** 20)), "d.zip")},
                    headers={"X-Requested-With": "x"}, content_type="multipart/form-data")
    assert r.status_code == 507, r.get_data(as_text=True)
    assert disk_state(jobs) == before
    assert JobStore(jobs).get(existing.id).params == {"x": 1}
    # a dataset build that fills the disk fails with the same sentence, not an LMDB traceback
    job_dir = os.path.join(jobs, "build")
    os.makedirs(job_dir)
    with open(os.path.join(mnt, "filler2"), "wb") as f:  # leave about 64 KiB: the LMDB pages do not fit
        f.write(b"\0" * (os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize - 64 * 2 ** 10))
    with pytest.raises(DigitsSegError, match="the jobs folder's disk is full"):
        create_dataset(job_dir, params, settings=settings, log=lambda t: None, workers=1)
    assert os.listdir(job_dir) == []
