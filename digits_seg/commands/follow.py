"""`--wait`: watch a queued job from the CLI with a tqdm bar and its log lines, until it ends.

Ctrl-C stops watching, not the job (the job belongs to the queue; `digits-seg jobs abort ID`
stops it). The exit status says how the job ended, so scripts can chain on it.
"""

import json
import os
import sys
import time

POLL_S = 0.5
"""Seconds between reads of job.json and the log while following."""


def follow_job(store, job_id, out=None, poll_s=POLL_S):
    """Show the job's progress and new log lines until it finishes; return its final `Job`.

    Raises `KeyboardInterrupt` after telling the user the job goes on. `out` defaults to the
    current `sys.stderr` (looked up at call time, so a replaced stream is honoured).
    """
    from .bars import fraction_bar, show

    out = out or sys.stderr
    job = store.get(job_id)
    bar = fraction_bar(job.name, file=out)
    log_path, offset = store.log_path(job_id), 0
    try:
        while True:
            job = store.get(job_id)
            offset = _print_new_lines(bar, log_path, offset, out)
            if job.state.value == "queued":
                bar.set_postfix_str("queued: waiting for a free worker", refresh=False)
                bar.update(0)  # draws when its interval allows (bars.py)
            else:
                show(bar, job.progress.get("fraction") or 0.0, job.progress.get("message") or job.state.value)
            if job.state.finished:
                _print_new_lines(bar, log_path, offset, out)
                return job
            time.sleep(poll_s)
    except KeyboardInterrupt:
        bar.write("stopped watching; job %s goes on (`digits-seg jobs show %s`, `digits-seg jobs abort %s`)"
                  % (job_id, job_id, job_id), file=out)
        raise
    finally:
        bar.close()


def _print_new_lines(bar, path, offset, out):
    """Write the log lines added since `offset` above the bar; return the new offset."""
    try:
        if os.path.getsize(path) <= offset:
            return offset
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return offset
    complete = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
    from .bars import say

    for line in data[:complete].decode("utf-8", "replace").splitlines():
        say(bar, line, out)
    return offset + complete


def exit_status(job):
    """0 when the job is done, 1 otherwise (after printing why)."""
    if job.state.value == "done":
        return 0
    message = (job.error or {}).get("message") if job.state.value == "error" else job.state.value
    print("job %s ended %s: %s" % (job.id, job.state.value, message or "see its log"), file=sys.stderr)
    return 1


def report_queued(store, job, args, what):
    """After queuing `job`: with `--wait` follow it to its end (the exit status says how it ended),
    else say how to follow it. `what` names the kind for people ("dataset", "pretrained")."""
    if getattr(args, "wait", False):
        job = follow_job(store, job.id)
        if args.json:
            print(json.dumps({"id": job.id, "state": job.state.value, **(job.result or {})}))
        else:
            announce(job.id, "%s %s %s → %s" % (what, job.id, job.state.value, store.job_dir(job.id)), args)
        return exit_status(job)
    if args.json:
        print(json.dumps({"id": job.id, "state": job.state.value}))
    else:
        announce(job.id, "queued %s job %s (%s); follow it with `digits-seg jobs show %s`, or use --wait"
                 % (what, job.id, job.name, job.id), args)
    return 0


def announce(job_id, sentence, args, out=None):
    """Tell the user about a created job: the sentence on a terminal; the id alone on stdout (and the
    sentence on stderr) when stdout is piped or with `-q`, so `ID=$(digits-seg dataset create ...)` works."""
    out = out or sys.stdout
    if getattr(args, "quiet", False) or not out.isatty():
        print(job_id, file=out)
        print(sentence, file=sys.stderr)
    else:
        print(sentence, file=out)


def add_quiet_argument(parser):
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only the job id on stdout (as when stdout is not a terminal); messages go to "
                             "stderr")


def add_wait_argument(parser, what="the job"):
    parser.add_argument("--wait", action="store_true",
                        help="queue %s, then follow it with a progress bar and its log until it ends (Ctrl-C stops "
                             "watching, not the job); the exit status says how it ended" % what)
