"""Run a domain task in the CLI's own process (`--now`): a job folder, a tqdm bar, no queue.

The job is as alive to a `serve` on the same jobs dir as a queued one: it beats its
heartbeat, writes its progress to job.json, and records `aborted` at once on Ctrl-C or
SIGTERM (the heartbeat check would otherwise call it dead, or leave it `running`).
"""

import os
import signal
import socket


def run_now(store, job, fn, params, interrupt_hint="", **extra):
    """Run `fn` (a domain task) for `job` here, recording the outcome in job.json; return its result.

    Ctrl-C marks the job aborted (with `interrupt_hint`) and re-raises; a `DigitsSegError`
    marks it error (or aborted for `JobAborted`) and re-raises, so the CLI prints the message.
    """
    from ..errors import DigitsSegError, JobAborted
    from ..jobs.job import JobState

    from ..config import load_settings
    from ..jobs.tasks import Heartbeat, finish_job, make_callbacks
    from .bars import fraction_bar, say, show

    def start(j):
        j.set_state(JobState.RUNNING, "running in-process (--now)")
        j.worker = {"name": "in-process (--now)", "host": socket.gethostname(), "pid": os.getpid(), "gpu": None}
        j.error = None
    store.update(job.id, start)
    store.clear_abort(job.id)
    store.touch_heartbeat(job.id)
    heartbeat = Heartbeat(store, job.id, load_settings({"jobs_dir": store.jobs_dir}).heartbeat_s, watch_parent=False)
    heartbeat.start()
    record_progress, should_stop, record_log = make_callbacks(store, job.id, heartbeat)

    def held():
        return record_progress.held.get("last")
    bar = fraction_bar(job.name)

    def on_progress(fraction, message=""):
        record_progress(fraction, message)
        show(bar, fraction, message)

    def log(text):
        record_log(text)
        say(bar, text)

    previous = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        result = fn(store.job_dir(job.id), params, on_progress=on_progress, should_stop=should_stop, log=log,
                    **extra)
    except KeyboardInterrupt as exc:
        why = "stopped (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
        finish_job(store, job.id, JobState.ABORTED, (why + " " + interrupt_hint).strip(), held=held())
        store.append_log(job.id, "Aborted: " + why)
        raise
    except JobAborted as exc:
        finish_job(store, job.id, JobState.ABORTED, exc.message, held=held())
        raise
    except DigitsSegError as exc:  # the step it failed in, not the last one the write throttle let through
        finish_job(store, job.id, JobState.ERROR, error={"message": exc.message, "detail": ""}, held=held())
        log("Error: " + exc.message)
        raise
    finally:
        heartbeat.finished.set()
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    def done(j):
        j.set_state(JobState.DONE)
        j.result = result
        j.progress["fraction"] = 1.0
    store.update(job.id, done)
    return result


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the job is recorded as aborted before the process exits."""


def _interrupt(signum, frame):
    raise Terminated()


def _main_thread():
    import threading

    return threading.current_thread() is threading.main_thread()
