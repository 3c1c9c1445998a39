"""`digits-seg serve` as a real subprocess: answers, stops cleanly, refuses a twin, survives restarts.

Everything here is the real thing: the serve process starts its embedded redis-server and
a `digits-seg worker` subprocess, which forks an RQ work horse for each job. Jobs are
submitted through `JobService` against the Redis URL the server advertises in
`<jobs_dir>/.serve.json`, exactly as the CLI does.
"""

import os
import re
import signal
import subprocess
import sys

import psutil
import pytest

from tests.conftest import REPO_ROOT, LiveServer, free_port, wait_for
from digits_seg.config import SETTINGS, load_settings
from digits_seg.jobs.job import JobState
from digits_seg.jobs.redis_server import EmbeddedRedis
from digits_seg.jobs.service import SERVE_INFO, JobService

STOP_TIMEOUT_S = 30
"""Seconds `serve` may take to stop after SIGTERM (its worker shutdown waits up to 20 s)."""


def _service(server):
    """A JobService for the live server's jobs dir; Redis comes from its .serve.json."""
    return JobService(load_settings({"jobs_dir": server.jobs_dir}, environ={}))


def _state(service, job_id):
    return service.store.get(job_id).state


def _process_tree(pid):
    """The process and all its descendants (psutil.Process objects)."""
    root = psutil.Process(pid)
    return [root] + root.children(recursive=True)


def _alive(proc):
    """True while `proc` runs (a zombie waiting for a parent that never reaps counts as gone)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(proc):
    try:
        return "%d %s" % (proc.pid, " ".join(proc.cmdline())[:120])
    except psutil.Error:
        return str(proc.pid)


def _sigterm_and_wait(server):
    os.kill(server.proc.pid, signal.SIGTERM)
    try:
        return server.proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail("serve did not exit within %d s of SIGTERM; log:\n%s" % (STOP_TIMEOUT_S, server.log()))


@pytest.fixture
def server(tmp_path):
    live = LiveServer(tmp_path)
    yield live
    live.stop()


def test_serve_answers_index_json(server):
    data = server.get_json("/index.json")
    for key in ("datasets", "models", "pretrained_models"):
        assert data[key] == []
    with open(os.path.join(server.jobs_dir, SERVE_INFO)) as f:
        info = f.read()
    assert str(server.port) in info


def test_sigterm_stops_whole_tree_and_running_job(server):
    service = _service(server)
    job = service.submit("check", "long check", {"steps": 600, "interval_s": 0.2})
    wait_for(lambda: _state(service, job.id) == JobState.RUNNING, timeout=60, message="the check job to run")
    horse_pid = service.store.get(job.id).worker["pid"]

    tree = _process_tree(server.proc.pid)
    pids = {p.pid for p in tree}
    cmdlines = [" ".join(p.cmdline()) for p in tree]
    assert any("redis-server" in c for c in cmdlines), cmdlines
    assert any("digits_seg.cli worker" in c for c in cmdlines), cmdlines
    assert horse_pid in pids, "the work horse running the job should be in serve's tree: %s" % cmdlines
    socket_path = EmbeddedRedis(server.jobs_dir).socket_path
    assert os.path.exists(socket_path)

    code = _sigterm_and_wait(server)
    assert code == 0, server.log()
    _, still = psutil.wait_procs(tree[1:], timeout=10)
    left = [_describe(p) for p in still if _alive(p)]
    assert left == [], "processes left after serve stopped: %s" % left
    assert not os.path.exists(socket_path), "stale Redis socket %s" % socket_path
    assert not os.path.exists(os.path.join(server.jobs_dir, SERVE_INFO))

    stopped = service.store.get(job.id)
    assert stopped.state == JobState.ERROR, stopped.to_dict()
    assert "shut down" in stopped.error["message"]


def test_sigkilled_serve_takes_its_children_along(server):
    """serve killed outright (OOM killer): its Redis and workers must not live on as orphans."""
    service = _service(server)
    job = service.submit("check", "orphan check", {"steps": 600, "interval_s": 0.2})
    wait_for(lambda: _state(service, job.id) == JobState.RUNNING, timeout=60, message="the check job to run")
    tree = _process_tree(server.proc.pid)
    assert len(tree) >= 4, [_describe(p) for p in tree]  # serve, redis-server, worker, work horse
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    _, still = psutil.wait_procs(tree[1:], timeout=20)
    left = [_describe(p) for p in still if _alive(p)]
    assert left == [], "processes left after serve was killed: %s" % left
    assert not os.path.exists(EmbeddedRedis(server.jobs_dir).socket_path)
    # The work horse noticed its worker died and said so.
    wait_for(lambda: _state(service, job.id) == JobState.ERROR, timeout=30, message="the job to be marked error")
    assert "worker stopped unexpectedly" in service.store.get(job.id).error["message"]


def test_crashed_worker_is_restarted_and_stopped_cleanly(server):
    service = _service(server)
    first = [p for p in _process_tree(server.proc.pid) if "digits_seg.cli worker" in " ".join(p.cmdline())]
    assert len(first) == 1
    first[0].kill()
    wait_for(lambda: "restarting it" in server.log(), timeout=60, message="serve to restart the worker")
    job = service.submit("check", "on the restarted worker", {"steps": 600, "interval_s": 0.2})
    wait_for(lambda: _state(service, job.id) == JobState.RUNNING, timeout=60, message="the check job to run")
    tree = _process_tree(server.proc.pid)
    assert first[0].pid not in {p.pid for p in tree}

    assert _sigterm_and_wait(server) == 0, server.log()
    _, still = psutil.wait_procs(tree[1:], timeout=10)
    assert [_describe(p) for p in still if _alive(p)] == []
    # Stopped by serve in order (not killed because the thread that started it ended).
    assert "shut down" in service.store.get(job.id).error["message"], service.store.get(job.id).error


def test_second_serve_on_same_jobs_dir_refuses(server):
    env = dict(os.environ)
    env.update({"DIGITS_SEG_JOBS_DIR": server.jobs_dir, "DIGITS_SEG_PORT": str(free_port()),
                "DIGITS_SEG_WORKERS": "1"})
    env.pop("REDIS_URL", None)
    env.pop("DIGITS_SEG_REDIS_URL", None)
    twin = subprocess.run([sys.executable, "-m", "digits_seg.cli", "serve"], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert twin.returncode != 0
    assert "already running" in twin.stderr, twin.stderr
    assert server.jobs_dir in twin.stderr
    assert "pid %d" % server.proc.pid in twin.stderr
    # The refused twin must not have touched the running server's Redis socket or info file.
    assert os.path.exists(EmbeddedRedis(server.jobs_dir).socket_path)
    assert server.get_json("/index.json")["datasets"] == []
    job = _service(server).submit("check", "after twin", {"steps": 1, "interval_s": 0.01})
    wait_for(lambda: _state(_service(server), job.id) == JobState.DONE, timeout=60, message="a job to finish")


def test_restart_keeps_every_job_and_state(tmp_path):
    first = LiveServer(tmp_path)
    try:
        service = _service(first)
        done = service.submit("check", "quick", {"steps": 1, "interval_s": 0.01})
        wait_for(lambda: _state(service, done.id) == JobState.DONE, timeout=60, message="quick job done")
        failed = service.submit("check", "fails", {"fail": "bad parameter"})
        wait_for(lambda: _state(service, failed.id) == JobState.ERROR, timeout=60, message="failing job")
        running = service.submit("check", "interrupted", {"steps": 600, "interval_s": 0.2})
        wait_for(lambda: _state(service, running.id) == JobState.RUNNING, timeout=60, message="long job running")
        # One worker, busy: this one stays queued through the restart and must still run after it.
        waiting = service.submit("check", "waiting", {"steps": 2, "interval_s": 0.05})
        aborted = service.submit("check", "aborted while queued", {"steps": 2, "interval_s": 0.05})
        service.abort(aborted.id)
        assert _state(service, waiting.id) == JobState.QUEUED
        assert _sigterm_and_wait(first) == 0, first.log()
    finally:
        first.stop()

    second = LiveServer(tmp_path)
    try:
        assert second.jobs_dir == first.jobs_dir
        listed = {j["id"]: j for j in second.get_json("/index.json")["checks"]}
        assert set(listed) == {done.id, failed.id, running.id, waiting.id, aborted.id}
        assert listed[done.id]["state"] == "done"
        assert listed[failed.id]["state"] == "error"
        assert listed[failed.id]["error"]["message"] == "bad parameter"
        assert listed[running.id]["state"] == "error"
        assert listed[aborted.id]["state"] == "aborted"
        assert listed[waiting.id]["state"] in ("queued", "running", "done")
        service = _service(second)
        wait_for(lambda: _state(service, waiting.id) == JobState.DONE, timeout=60,
                 message="the job queued before the restart to run after it")
        detail = second.get_json("/jobs/%s.json" % done.id)
        assert detail["result"]["steps"] == 1
        assert [h["state"] for h in detail["status_history"]] == ["queued", "running", "done"]
    finally:
        second.stop()


def test_event_stream_follows_a_job_to_its_end(server):
    """`/jobs/<id>/events` (for API clients) through the production server: status events, then end."""
    import json
    import urllib.request

    service = _service(server)
    job = service.submit("check", "streamed", {"steps": 3, "interval_s": 0.4})
    states, events = [], []
    with urllib.request.urlopen(server.url + "/jobs/%s/events" % job.id, timeout=60) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        event = None
        for raw in stream:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
                events.append(event)
            elif line.startswith("data: ") and event == "status":
                states.append(json.loads(line[6:])["state"])
            if event == "end":
                break
    assert events[-1] == "end"
    assert states[-1] == "done" and set(states) <= {"queued", "running", "done"}


def _readme_setting_names():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    # Names in table rows only: a mention in prose does not document a setting.
    rows = [line for line in text.splitlines() if line.lstrip().startswith("|")]
    return set(re.findall(r"DIGITS_SEG_[A-Z0-9_]+", "\n".join(rows)))


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env)
def test_every_setting_is_in_readme_table(setting):
    assert setting.env in _readme_setting_names(), (
        "%s is not in README.md's settings table: add a row `| %s | %s | %s |`"
        % (setting.env, setting.env, setting.default or "(empty)", setting.help))


def test_readme_table_names_only_real_settings():
    known = {s.env for s in SETTINGS}
    # Settings read by other code but not declared (none today) would show up here.
    unknown = _readme_setting_names() - known - {"DIGITS_SEG_REQUIRE_REAL_DATA"}
    assert unknown == set(), "README.md's settings table names undeclared settings: %s" % sorted(unknown)


def test_flags_given_to_serve_reach_its_workers(tmp_path):
    """`serve --max-download-mb 123` used to apply to the web process only: the workers it starts read the
    environment, so a store import (run by a worker) kept the default limit."""
    other = tmp_path / "more-data"
    other.mkdir()
    live = LiveServer(tmp_path, args=["--max-download-mb", "123", "--data-roots",
                                      "%s%s%s" % (tmp_path / "live-data", os.pathsep, other),
                                      "--onnx-inference", "1", "--store-urls", "http://store.example/a,/srv/b"])
    try:
        def worker():
            found = [p for p in _process_tree(live.proc.pid)[1:] if "worker" in " ".join(p.cmdline())]
            return found[0] if found else None
        wait_for(worker, 30, message="serve's worker to start")
        got = load_settings(environ=worker().environ())
        assert got.max_download_mb == 123 and got.onnx_inference is True
        assert got.data_roots == (str(tmp_path / "live-data"), str(other))
        assert got.store_urls == ("http://store.example/a", "/srv/b")
        assert got.jobs_dir == live.jobs_dir and got.heartbeat_s == 1  # from serve's environment, as before
    finally:
        _sigterm_and_wait(live)
