"""Checks a model submission needs from the job store and the worker registry, run before anything is written.

The form validation (`training.params`) cannot see other jobs or the workers; these can:
the model a run starts from must exist, be of the right kind and have weights to start
from, and the chosen device must be one a registered worker can run. They return error
records in the declaration's shape (`{"field", "label", "message"}`) so the web form and the
CLI show them with the other field errors; a device that no worker runs *yet* is a warning.
"""

from ..declare import field_error
from ..errors import NotFoundError
from ..training.params import ModelSource, TrainingParams
from .job import JobState


def source_errors(store, params):
    """Problems with the previous/pretrained model of `params` (exists, right kind, usable)."""
    net = params.get("network") or {}
    kind = net.get("kind")
    if kind not in ("previous", "pretrained") or not net.get("job_id"):
        return []
    field = kind + "_job"
    try:
        job = store.get(net["job_id"])
    except (NotFoundError, ValueError, OSError):
        return [field_error(ModelSource, field, "%r does not exist (see `digits-seg jobs list`)" % net["job_id"])]
    wanted = "model" if kind == "previous" else "pretrained"
    if job.kind != wanted:
        return [field_error(ModelSource, field, "%s is a %s job, not a %s" % (
            job.id, job.kind, "trained model" if kind == "previous" else "pretrained model"))]
    if kind == "pretrained" and job.state != JobState.DONE:
        return [field_error(ModelSource, field, "%r is %s; only a finished import can be trained from"
                            % (job.name, job.state.value))]
    if kind == "previous":
        from ..training import snapshots

        if job.state in (JobState.QUEUED, JobState.RUNNING):
            return [field_error(ModelSource, field, "%r is still %s; continue from it once it has stopped"
                                % (job.name, job.state.value))]
        if not snapshots.list_snapshots(store.job_dir(job.id)):
            return [field_error(ModelSource, field, "%r has no snapshot to start from (it %s before saving one)"
                                % (job.name, "ended in error" if job.state == JobState.ERROR else "stopped"))]
        wanted_snapshot = net.get("snapshot") or "best"
        try:  # a snapshot that is not there: say so now, not when the job starts
            snapshots.resolve_snapshot(store.job_dir(job.id), wanted_snapshot)
        except NotFoundError:
            have = ", ".join(str(s["iteration"]) for s in snapshots.list_snapshots(store.job_dir(job.id)))
            return [field_error(ModelSource, "previous_snapshot", "%r is not a snapshot of %r (choose best, last or "
                                "an iteration: %s)" % (wanted_snapshot, job.name, have))]
    return []


def _describe(workers):
    parts = []
    for w in workers:
        gpu = w.get("gpu")
        what = "CPU" if gpu is None else ("all %s GPUs" % w.get("gpu_count") if gpu == "all" else "GPU %s" % gpu)
        parts.append("%s on %s" % (what, w.get("host", "?")))
    return ", ".join(parts) or "none"


def device_problems(device, workers):
    """(errors, warnings) for running `device` on the registered `workers` (list_workers' records)."""
    gpus = [w for w in workers if isinstance(w.get("gpu"), int)]
    machines = [w for w in workers if w.get("gpu") == "all"]
    cpus = [w for w in workers if w.get("gpu") is None]
    kind, _, rest = device.partition(":")
    number, _, host = rest.partition("@")
    if not workers:
        return [], ["No worker is running right now: the job waits in the queue until one starts "
                    "(`digits-seg serve` or `digits-seg worker`)."]
    if kind == "gpu" and number:
        if not any(w["gpu"] == int(number) and (not host or w.get("host") == host) for w in gpus):
            return [field_error(TrainingParams, "device", "%s: no worker has GPU %s%s (workers: %s). Start "
                                "`digits-seg worker --gpu %s` on that machine first, or choose another device"
                                % (device, number, " on " + host if host else "", _describe(workers), number))], []
        return [], []
    if kind == "gpu" and not gpus:
        return [], ["No GPU worker is running (workers: %s): a job on `gpu` waits in the queue until one joins. "
                    "Choose auto or cpu to start now." % _describe(workers)]
    if kind == "gpus" and not any(int(w.get("gpu_count") or 0) >= int(number) and (not host or w.get("host") == host)
                                  for w in machines):
        return [], ["No worker serves %s (it needs `digits-seg worker --gpu all` on a machine with %s GPUs; workers: "
                    "%s): the job waits in the queue until one joins." % (device, number, _describe(workers))]
    if kind in ("cpu", "cpus") and not cpus:
        return [], ["No CPU worker is running (workers: %s): a job on `%s` waits in the queue until one joins."
                    % (_describe(workers), device)]
    return [], []


def submission_problems(store, conn, params):
    """(errors, warnings) of a validated model submission: its source model and its device."""
    from .queue import list_workers

    errors = source_errors(store, params)
    try:
        workers = list_workers(conn) if conn is not None else None
    except Exception:  # no Redis reachable: queueing itself will say so
        workers = None
    if workers is None:
        return errors, []
    device_errors, warnings = device_problems(params["device"], workers)
    return errors + device_errors, warnings
