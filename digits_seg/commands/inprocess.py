"""Run a domain task in the CLI's own process (`--now`): a job folder, a tqdm bar, no queue."""

import sys


def run_now(store, job, fn, params, interrupt_hint="", **extra):
    """Run `fn` (a domain task) for `job` here, recording the outcome in job.json; return its result.

    Ctrl-C marks the job aborted (with `interrupt_hint`) and re-raises; a `DigitsSegError`
    marks it error (or aborted for `JobAborted`) and re-raises, so the CLI prints the message.
    """
    from tqdm import tqdm

    from ..errors import DigitsSegError, JobAborted
    from ..jobs.job import JobState

    store.set_state(job.id, JobState.RUNNING, "running in-process (--now)")
    bar = tqdm(total=1000, desc=job.name, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")

    def on_progress(fraction, message=""):
        bar.n = int(1000 * max(0.0, min(1.0, fraction)))
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    def log(text):
        store.append_log(job.id, text)
        bar.write(text, file=sys.stderr)

    try:
        result = fn(store.job_dir(job.id), params, on_progress=on_progress, should_stop=lambda: False, log=log,
                    **extra)
    except KeyboardInterrupt:
        store.set_state(job.id, JobState.ABORTED, ("interrupted (Ctrl-C) " + interrupt_hint).strip())
        raise
    except JobAborted as exc:
        store.set_state(job.id, JobState.ABORTED, exc.message)
        raise
    except DigitsSegError as exc:
        store.set_state(job.id, JobState.ERROR, error={"message": exc.message, "detail": ""})
        log("Error: " + exc.message)
        raise
    finally:
        bar.close()

    def done(j):
        j.set_state(JobState.DONE)
        j.result = result
        j.progress["fraction"] = 1.0
    store.update(job.id, done)
    return result
