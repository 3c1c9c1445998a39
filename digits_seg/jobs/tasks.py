"""RQ entry point: run one job by id in the worker's work-horse process.

    run_job(job_id, jobs_dir)
      ├─ job.json: queued → running (worker name, host, GPU)
      ├─ Heartbeat thread: touches .heartbeat, watches abort.requested and the parent worker
      ├─ domain function (datasets / training / store / inference) with callbacks
      │     on_progress(fraction, message) → job.json progress + ETA (throttled)
      │     should_stop() → abort requested?   log(text) → log.txt
      └─ job.json: done (result) | error (message, detail) | aborted

The function always returns normally (even when the job fails) so RQ starts jobs that
depend on this one; they check their dependency's state themselves.
"""

import importlib
import os
import socket
import threading
import time
import traceback

from ..errors import DigitsSegError, JobAborted
from .job import JobState
from .store import JobStore

TASKS = {
    "dataset": ("digits_seg.datasets.create", "create_dataset"),
    "model": ("digits_seg.training.trainer", "train"),
    "pretrained": ("digits_seg.store.importer", "import_model"),
    "inference": ("digits_seg.inference.batch", "infer_many"),
    "check": ("digits_seg.jobs.check", "check_worker"),
    "evaluation": ("digits_seg.inference.evaluation", "evaluate_job"),
}
"""Job kind → (module, function) of the domain task; imported lazily in the work horse."""

PROGRESS_WRITE_INTERVAL_S = 1.0
"""Seconds between job.json progress writes (the log and final states are not throttled)."""


class Heartbeat(threading.Thread):
    """Beats while the task runs; turns an abort request into an event; exits with the worker."""

    def __init__(self, store, job_id, interval, watch_parent=True):
        super().__init__(daemon=True, name="heartbeat-%s" % job_id)
        self.store, self.job_id, self.interval = store, job_id, interval
        self.stop_requested = threading.Event()
        self.finished = threading.Event()
        # In a work horse the parent is the RQ worker; `--now` runs have a shell as parent.
        self.parent = os.getppid() if watch_parent else None

    def run(self):
        last_beat = 0.0
        while not self.finished.is_set():
            now = time.time()
            if now - last_beat >= self.interval:
                try:
                    self.store.touch_heartbeat(self.job_id)
                except OSError:
                    pass
                last_beat = now
            if self.store.abort_requested(self.job_id):
                self.stop_requested.set()
            if self.parent is not None and os.getppid() != self.parent:
                # The worker process that forked us died: record it and stop, as the job
                # can no longer be controlled (abort, shutdown) through the queue.
                from .queue import mark_worker_lost

                mark_worker_lost(self.store, self.job_id,
                                 "worker stopped unexpectedly (worker process %d died)" % self.parent)
                os._exit(1)
            self.finished.wait(0.25)


def eta_seconds(first, fraction, now):
    """Seconds left, at the rate of this run alone: from `first` = (time, fraction) of its first report.

    A resumed training job starts at the fraction its earlier runs reached; dividing this run's
    elapsed time by the whole fraction promised the rest in a few seconds.
    """
    t0, f0 = first
    gained = fraction - f0
    if gained <= 0.005 or now <= t0:
        return None
    return (now - t0) * (1.0 - fraction) / gained


def make_callbacks(store, job_id, heartbeat, clock=time.time):
    """Build (on_progress, should_stop, log) for a domain function."""
    first = []
    last_write = [0.0]
    held = {}  # the newest report the throttle kept back: an error or abort right after it must still show it

    def on_progress(fraction, message=""):
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = clock()
        if not first:
            first.append((now, fraction))
        if now - last_write[0] < PROGRESS_WRITE_INTERVAL_S and fraction < 1.0:
            held["last"] = (round(fraction, 5), str(message)[:300])
            return
        held.pop("last", None)
        last_write[0] = now
        eta = eta_seconds(first[0], fraction, now)

        def change(job):
            if job.state != JobState.RUNNING:
                return False
            job.progress = {"fraction": round(fraction, 5), "eta_s": None if eta is None else round(eta, 1),
                            "message": str(message)[:300], "updated": now}
        store.update(job_id, change)
    on_progress.held = held

    def should_stop():
        return heartbeat.stop_requested.is_set()

    def log(text):
        store.append_log(job_id, text)

    return on_progress, should_stop, log


def run_job(job_id, jobs_dir):
    """Run job `job_id` found in `jobs_dir` (the RQ task; arguments are JSON-serializable)."""
    from ..config import load_settings

    settings = load_settings({"jobs_dir": jobs_dir})
    store = JobStore(jobs_dir)
    try:
        job = store.get(job_id)
    except DigitsSegError:
        return {"skipped": "deleted"}
    if job.state != JobState.QUEUED:
        return {"skipped": job.state.value}
    if job.kind not in TASKS:
        store.set_state(job_id, JobState.ERROR, error={"message": "unknown job kind %r" % job.kind})
        return {"error": "unknown kind"}
    dependency_problem = _check_dependencies(store, job)
    if dependency_problem:
        store.set_state(job_id, JobState.ERROR, dependency_problem,
                        error={"message": dependency_problem, "detail": ""})
        store.append_log(job_id, "Error: " + dependency_problem)
        return {"error": dependency_problem}

    worker_info = {"name": os.environ.get("RQ_WORKER_ID", ""), "host": socket.gethostname(),
                   "pid": os.getpid(), "gpu": os.environ.get("DIGITS_SEG_WORKER_GPU")}

    def start(j):
        if j.state != JobState.QUEUED:
            return False
        j.set_state(JobState.RUNNING)
        j.worker = worker_info
        j.error = None
        j.progress = {"fraction": 0.0, "eta_s": None, "message": "starting", "updated": time.time()}
    job = store.update(job_id, start)
    if job.state != JobState.RUNNING:
        return {"skipped": job.state.value}
    store.clear_abort(job_id)
    store.touch_heartbeat(job_id)
    heartbeat = Heartbeat(store, job_id, settings.heartbeat_s)
    heartbeat.start()
    on_progress, should_stop, log = make_callbacks(store, job_id, heartbeat)
    log("Started %s job %r on %s (worker %s, pid %d)." % (job.kind, job.name, worker_info["host"],
                                                         worker_info["name"] or "in-process", os.getpid()))
    try:
        module, func = TASKS[job.kind]
        fn = getattr(importlib.import_module(module), func)
        extra = _extra_arguments(store, job, settings)
        result = fn(store.job_dir(job_id), job.params, on_progress=on_progress, should_stop=should_stop,
                    log=log, **extra)
        finish_job(store, job_id, JobState.DONE, result=result or {})
        log("Done.")
        if job.kind == "model" and settings.onnx_inference:
            prepare_cpu_inference(store.job_dir(job_id), log)
    except JobAborted as exc:
        finish_job(store, job_id, JobState.ABORTED, message=exc.message, held=on_progress.held.get("last"))
        log("Aborted: " + exc.message)
    except DigitsSegError as exc:
        finish_job(store, job_id, JobState.ERROR, error={"message": exc.message, "detail": exc.detail or ""},
                held=on_progress.held.get("last"))
        log("Error: " + exc.message)
    except MemoryError:
        msg = "out of memory: reduce the batch size, the crop size or the image size"
        finish_job(store, job_id, JobState.ERROR, error={"message": msg, "detail": traceback.format_exc()})
        log("Error: " + msg)
    except Exception as exc:  # a bug: keep the traceback for the job page's detail
        msg = "internal error: %s: %s" % (type(exc).__name__, exc)
        finish_job(store, job_id, JobState.ERROR, error={"message": msg, "detail": traceback.format_exc()})
        log("Error: " + msg)
        log(traceback.format_exc())
    finally:
        heartbeat.finished.set()
    return {"state": store.get(job_id).state.value}


def prepare_cpu_inference(model_dir, log):
    """Export the best snapshot's graph for ONNX Runtime (CPU inference); a failure only costs speed."""
    from ..inference import onnx_backend
    from ..inference.predictor import Predictor

    started = time.monotonic()
    try:
        predictor = Predictor.from_model_dir(model_dir, device="cpu", backend="torch")
        report = onnx_backend.build(predictor, onnx_backend.cache_path(model_dir, predictor.weights_path))
    except Exception as exc:  # noqa: BLE001 - the model is done either way; CPU inference stays in PyTorch
        log("CPU inference stays in PyTorch: no ONNX graph (%s)" % (getattr(exc, "message", None) or exc))
        return
    log("CPU inference will run in ONNX Runtime: graph of %s exported and verified in %.1f s (%s exporter)"
        % (os.path.basename(predictor.weights_path), time.monotonic() - started, report["exporter"]))


def finish_job(store, job_id, state, message=None, error=None, result=None, held=None):
    """Record the end state; `held`: the last (fraction, message) progress report not yet written."""
    def change(job):
        if job.state != JobState.RUNNING:
            return False
        if held is not None:  # the step it failed in, not one a second earlier
            job.progress["fraction"], job.progress["message"] = held
        job.set_state(state, message)
        if error is not None:
            job.error = error
        if result is not None:
            job.result = result
        job.progress["eta_s"] = None
        if state == JobState.DONE:
            job.progress["fraction"] = 1.0
    store.update(job_id, change)


def _check_dependencies(store, job):
    for dep_id in job.depends_on:
        try:
            dep = store.get(dep_id)
        except DigitsSegError:
            return "the job this one needs (%s) was deleted" % dep_id
        if dep.state != JobState.DONE:
            return "the %s %r this job needs ended as %s" % (dep.kind, dep.name, dep.state.value)
    return None


def _extra_arguments(store, job, settings):
    """Resolve the folders a domain function needs from the ids in the job's params."""
    params = job.params
    if job.kind == "model":
        def folder(key):
            return store.job_dir(params[key]) if params.get(key) else None
        return {"dataset_dir": folder("dataset_id"), "resume": bool(job.resume),
                "pretrained_dir": folder("pretrained_id"), "previous_dir": folder("previous_id")}
    if job.kind == "inference":
        return {"model_dir": store.job_dir(params["model_id"]), "settings": settings}
    if job.kind in ("dataset", "pretrained", "check"):
        return {"settings": settings}
    if job.kind == "evaluation":
        return {"dataset_dir": store.job_dir(params["dataset_id"]) if params.get("dataset_id") else None}
    return {}
