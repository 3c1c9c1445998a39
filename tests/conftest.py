"""Shared fixtures: real sample data, embedded Redis, workers, live servers, browsers."""

import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Finished training jobs export an ONNX graph for CPU inference (seconds, up to a minute for the
# big nets): off for the suite, in this process and every server, worker or CLI it starts; the tests
# of that feature turn it on themselves.
os.environ.setdefault("DIGITS_SEG_ONNX_INFERENCE", "0")
SHARED_DATA = os.path.abspath(os.path.join(REPO_ROOT, "..", "shared", "data"))


def synthcity_params(settings, src, count, size, seed, val_pct=20):
    """Generate `count` SynthCity scenes (`size` = (w, h)) into `src`; return validated dataset params."""
    from digits_seg.datasets import synthcity
    from digits_seg.datasets.params import validate_params

    synthcity.generate(src, count, size=size, seed=seed)
    return validate_params({"images": os.path.join(src, "images"), "labels": os.path.join(src, "labels"),
                            "classes_file": os.path.join(src, "classes.txt"), "val_pct": val_pct}, settings)


def build_dataset(settings, out, params):
    """Build a dataset folder at `out` with the real `create_dataset`, in this process."""
    from digits_seg.datasets.create import create_dataset

    os.makedirs(out, exist_ok=True)
    create_dataset(out, params, settings=settings, log=lambda t: None, workers=1)
    return out


def synthcity_dataset(settings, src, out, count, size, seed, val_pct=20):
    """SynthCity scenes in `src` built into a dataset folder at `out`; returns `out`."""
    return build_dataset(settings, out, synthcity_params(settings, src, count, size, seed, val_pct))


def synthcity_dataset_job(settings, src, count, size, seed, val_pct=20, name="synth"):
    """SynthCity scenes in `src` built as a finished dataset job in `settings.jobs_dir`; returns its id."""
    from digits_seg.jobs.job import JobState
    from digits_seg.jobs.store import JobStore

    params = synthcity_params(settings, src, count, size, seed, val_pct)
    store = JobStore(settings.jobs_dir)
    job = store.create("dataset", name, params)
    store.set_state(job.id, JobState.RUNNING)
    build_dataset(settings, store.job_dir(job.id), params)
    store.set_state(job.id, JobState.DONE)
    return job.id


def train_tiny_model(store, dataset_id, name="tiny", **overrides):
    """Train a tiny-fcn on a finished dataset job in this process (seconds) and mark it done; returns its id."""
    from digits_seg.datasets.info import DatasetInfo
    from digits_seg.jobs.job import JobState
    from digits_seg.training.params import validate_params
    from digits_seg.training.trainer import train

    raw = {"dataset_id": dataset_id, "network": "tiny-fcn", "network_kind": "standard", "epochs": 3,
           "batch_size": 4, "base_lr": 0.01, "solver_type": "Adam", "lr_policy": "fixed", "loader_workers": 0,
           "seed": 1, "device": "cpu"}
    raw.update(overrides)
    dataset_dir = store.job_dir(dataset_id)
    params = validate_params(raw, None, DatasetInfo.load(dataset_dir))
    model = store.create("model", name, params)
    train(store.job_dir(model.id), params, on_progress=lambda f, m: None, should_stop=lambda: False,
          log=lambda t: None, dataset_dir=dataset_dir, resume=False, pretrained_dir=None, previous_dir=None)
    for state in (JobState.RUNNING, JobState.DONE):
        store.set_state(model.id, state)
    return model.id


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slow test (CI still runs it)")
    config.addinivalue_line("markers", "e2e: browser test (Playwright + /usr/bin/chromium)")


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data; skip when absent unless DIGITS_SEG_REQUIRE_REAL_DATA=1."""
    if not os.path.isdir(SHARED_DATA):
        if os.environ.get("DIGITS_SEG_REQUIRE_REAL_DATA") == "1":
            pytest.fail("real sample data missing at %s (DIGITS_SEG_REQUIRE_REAL_DATA=1)" % SHARED_DATA)
        pytest.skip("real sample data not present at %s" % SHARED_DATA)
    return SHARED_DATA


# -- real components: embedded Redis, worker processes, apps, live servers -------------------
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jobs_dir(tmp_path):
    path = tmp_path / "jobs"
    path.mkdir()
    return str(path)


@pytest.fixture
def redis_url(tmp_path):
    """A private embedded Redis (the same server `serve` runs) for one test."""
    from digits_seg.jobs.redis_server import EmbeddedRedis

    server = EmbeddedRedis(str(tmp_path / "redis-home")).start()
    yield server.url
    server.stop()


@pytest.fixture
def settings(jobs_dir, redis_url, tmp_path):
    from digits_seg.config import load_settings

    data_root = tmp_path / "data"
    data_root.mkdir(exist_ok=True)
    # ONNX Runtime inference off: its exports take seconds per model; tests of it turn it on.
    return load_settings({"jobs_dir": jobs_dir, "redis_url": redis_url, "data_roots": str(data_root),
                          "heartbeat_s": "1", "onnx_inference": "0"}, environ={})


class WorkerProcess:
    """A real `digits-seg worker` subprocess (its own session, so it can be killed as a group)."""

    def __init__(self, settings, gpu=None, name=None, env=None):
        cmd = [sys.executable, "-m", "digits_seg.cli", "worker", "--jobs-dir", settings.jobs_dir,
               "--redis-url", settings.redis_url]
        if name:
            cmd += ["--name", name]
        full_env = dict(os.environ)
        full_env["DIGITS_SEG_HEARTBEAT_S"] = str(settings.heartbeat_s)
        full_env["DIGITS_SEG_ONNX_INFERENCE"] = "1" if settings.onnx_inference else "0"
        full_env.update(env or {})
        # Output to a temp file, not a pipe nobody reads: a full pipe would block the worker.
        self.output = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, env=full_env, start_new_session=True,
                                     stdout=self.output, stderr=subprocess.STDOUT)

    @property
    def pid(self):
        return self.proc.pid

    def kill(self, sig=signal.SIGKILL):
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self):
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            time.sleep(1.2)  # rq ignores a second SIGTERM within 1 s; the second one kills the job
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait()
        self.output.close()


@pytest.fixture
def start_worker(settings):
    """Factory: start_worker(name=None) → WorkerProcess; all are stopped after the test."""
    started = []

    def start(**kw):
        w = WorkerProcess(settings, **kw)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def app(settings):
    from digits_seg.web.app import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def wait_for(predicate, timeout=30.0, interval=0.1, message="condition"):
    """Poll `predicate()` until it returns a truthy value; fail the test after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail("timed out after %.0f s waiting for %s" % (timeout, message))


class LiveServer:
    """`digits-seg serve` as a subprocess on a free port, with its own jobs dir and data root."""

    def __init__(self, tmp_path, env=None, workers=1, args=()):
        self.port = free_port()
        self.jobs_dir = str(tmp_path / "live-jobs")
        self.data_root = str(tmp_path / "live-data")
        os.makedirs(self.data_root, exist_ok=True)
        self.url = "http://127.0.0.1:%d" % self.port
        full_env = dict(os.environ)
        full_env.update({"DIGITS_SEG_JOBS_DIR": self.jobs_dir, "DIGITS_SEG_PORT": str(self.port),
                         "DIGITS_SEG_DATA_ROOTS": self.data_root, "DIGITS_SEG_WORKERS": str(workers),
                         "DIGITS_SEG_HEARTBEAT_S": "1", "DIGITS_SEG_ONNX_INFERENCE": "0",
                         "PYTHONUNBUFFERED": "1"})
        full_env.pop("REDIS_URL", None)
        full_env.pop("DIGITS_SEG_REDIS_URL", None)
        full_env.update(env or {})
        self.log_path = str(tmp_path / "serve.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "digits_seg.cli", "serve", *args], env=full_env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout=60):
        import urllib.request

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("serve exited early:\n" + self.log())
            try:
                with urllib.request.urlopen(self.url + "/index.json", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("serve did not answer within %d s:\n%s" % (timeout, self.log()))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def get_json(self, path):
        import json
        import urllib.request

        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def post_json(self, path, body=None):
        import json
        import urllib.error
        import urllib.request

        req = urllib.request.Request(self.url + path, data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@pytest.fixture
def live_server(tmp_path):
    server = LiveServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by Playwright (skips when neither is installed, unless CI)."""
    if not os.path.exists("/usr/bin/chromium"):
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing (CI must install Debian's chromium)")
        pytest.skip("/usr/bin/chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    # Playwright evaluates string predicates (wait_for_function) with eval, which the app's CSP
    # forbids; tests/reliability/test_csp_browser.py checks the pages under the real CSP.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    pg = context.new_page()
    yield pg
    context.close()


ARTIFACTS_DIR = os.path.join(REPO_ROOT, "test-artifacts")


@pytest.fixture
def artifact_path():
    """artifact_path(name) → path under test-artifacts/ for screenshots kept after the run."""
    os.makedirs(ARTIFACTS_DIR, exist_ok=True)
    return lambda name: os.path.join(ARTIFACTS_DIR, name)
