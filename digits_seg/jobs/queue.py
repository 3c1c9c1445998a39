"""RQ glue: connections, queue names, enqueue by job id (JSON serializer), abort, recovery.

Queues: `default` (any worker: datasets, imports, inference), `cpu` (CPU workers), `gpu`
(any GPU worker) and `gpu.<host>.<N>` (one GPU of one machine). A GPU worker listens on
its own queue, then `gpu`, then `default`; a CPU worker on `cpu`, then `default`.

Multi-GPU (DistributedDataParallel) jobs need every GPU of a machine, which a pinned worker
cannot see: they go to `gpu.<host>.all` (device `gpus:N@host`) or `gpu.all` (`gpus:N`),
served only by a worker started with `digits-seg worker --gpu all` (not pinned; it takes
no single-GPU work, so it never competes with the pinned workers for one GPU). Run such a
worker on a machine whose GPUs are not also given to pinned workers.
"""

import json
import os
import socket
import time

from ..errors import ConflictError, ValidationError
from .job import JobState

TASK_FUNCTION = "digits_seg.jobs.tasks.run_job"
WORKER_KEY_PREFIX = "digits_seg:worker:"
WORKER_INFO_TTL_S = 60
"""Seconds a worker's advertised info (host, GPU, current job) lives without a refresh."""
ABORT_GRACE_S = 8
"""Seconds a running job gets to stop by itself before the RQ stop-job command kills it."""


def connect(url):
    """A Redis client for `url` (redis://, rediss:// or unix://)."""
    import redis

    try:
        return redis.Redis.from_url(url)
    except ValueError as exc:
        raise ValidationError("invalid Redis URL %r: %s" % (url, exc), field="redis_url")


def get_queue(conn, name="default"):
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=conn, serializer=JSONSerializer)


def queue_for_device(device, conn=None):
    """Map a job's device choice (auto | cpu | cpus:N | gpu | gpu:K[@host] | gpus:N[@host]) to a queue name."""
    device = (device or "auto").strip()
    if device == "cpu" or device.startswith("cpus:"):
        return "cpu"
    if device.startswith("gpus:"):
        host = device.partition("@")[2]
        return "gpu.%s.all" % host if host else "gpu.all"
    if device == "gpu":
        return "gpu"
    if device.startswith("gpu:"):
        spec = device[4:]
        index, _, host = spec.partition("@")
        return "gpu.%s.%s" % (host or socket.gethostname(), index)
    if device == "auto":
        if conn is not None and any(isinstance(w.get("gpu"), int) for w in list_workers(conn)):
            return "gpu"
        return "cpu"
    return "default"


DEFAULT_JOB_TIMEOUT_S = 30 * 24 * 3600
"""RQ job timeout in seconds: training runs for days (RQ's own default is 180 s)."""


def submit(conn, store, job, job_timeout=DEFAULT_JOB_TIMEOUT_S):
    """Put `job` (already in job.json, state queued) on its RQ queue."""
    from rq.job import Job as RQJob

    depends = []
    for dep_id in job.depends_on:
        try:
            dep = store.get(dep_id)
        except Exception:
            continue
        if not dep.state.finished:
            try:
                RQJob.fetch(dep_id, connection=conn, serializer=_serializer())
                depends.append(dep_id)
            except Exception:
                pass  # its RQ job expired; it will be re-queued by recovery
    queue = get_queue(conn, job.queue)
    queue.enqueue(
        TASK_FUNCTION,
        args=(job.id, store.jobs_dir),
        job_id=job.id,
        job_timeout=int(job_timeout),
        result_ttl=7 * 24 * 3600,
        failure_ttl=7 * 24 * 3600,
        depends_on=depends or None,
        description="%s %s" % (job.kind, job.name),
    )


def _serializer():
    from rq.serializers import JSONSerializer

    return JSONSerializer


def rq_status(conn, job_id):
    """RQ's status string for a job id, or None when Redis no longer knows it."""
    from rq.job import Job as RQJob
    from rq.exceptions import NoSuchJobError

    try:
        return RQJob.fetch(job_id, connection=conn, serializer=_serializer()).get_status(refresh=True)
    except NoSuchJobError:
        return None


def abort(conn, store, job_id):
    """Abort a queued job at once, or ask a running job to stop (escalated by `escalate_aborts`)."""
    job = store.get(job_id)
    state = job.state
    if state.finished:
        raise ConflictError("job %s is already %s" % (job.name, state.value))
    if state == JobState.QUEUED:
        from rq.job import Job as RQJob
        from rq.exceptions import NoSuchJobError

        if conn is not None:
            try:
                RQJob.fetch(job_id, connection=conn, serializer=_serializer()).cancel()
            except NoSuchJobError:
                pass
        return _mark_aborted(store, job_id, only_if={JobState.QUEUED})
    store.request_abort(job_id)
    store.append_log(job_id, "Abort requested.")
    return store.get(job_id)


def _mark_aborted(store, job_id, only_if):
    def change(job):
        if job.state not in only_if:
            return False
        job.set_state(JobState.ABORTED, "aborted by the user")
        job.progress["eta_s"] = None
    return store.update(job_id, change)


def escalate_aborts(conn, store, now=None, grace_s=ABORT_GRACE_S):
    """Kill (RQ stop-job command) running jobs that ignored an abort request for `grace_s`."""
    from rq.command import send_stop_job_command

    now = now or time.time()
    for job in store.list():
        if job.state != JobState.RUNNING or not store.abort_requested(job.id):
            continue
        requested = os.path.getmtime(os.path.join(store.job_dir(job.id), "abort.requested"))
        if now - requested < grace_s:
            continue
        try:
            send_stop_job_command(conn, job.id, serializer=_serializer())
        except Exception:
            pass  # not running in any worker any more
        _mark_aborted(store, job.id, only_if={JobState.RUNNING})
        store.append_log(job.id, "The job did not stop by itself within %d s; its worker killed it." % grace_s)


def recover(conn, store, heartbeat_s=10, startup=False, now=None):
    """Fix jobs whose worker died and re-queue queued jobs Redis lost; return changed ids.

    A running job whose task has not beaten its heartbeat for 6 intervals is marked
    `error` ("worker stopped unexpectedly"). At start-up, queued jobs that Redis no
    longer knows (e.g. an embedded Redis whose data was lost) are enqueued again.
    """
    now = now or time.time()
    changed = []
    limit = 6 * heartbeat_s
    for job in store.list():
        state = job.state
        if state == JobState.RUNNING:
            age = store.heartbeat_age(job.id, now)
            if age is None:
                age = now - job.state_since
            if age > limit:
                msg = "worker stopped unexpectedly (no heartbeat for %d s)" % int(age)
                if store.abort_requested(job.id):
                    _mark_aborted(store, job.id, only_if={JobState.RUNNING})
                else:
                    mark_worker_lost(store, job.id, msg)
                changed.append(job.id)
        elif state == JobState.QUEUED and (startup or now - job.state_since > limit):
            status = rq_status(conn, job.id)
            if status is None or (startup and status in ("started",)):
                submit(conn, store, job)
                store.append_log(job.id, "Re-queued: the queue had lost this job.")
                changed.append(job.id)
    return changed


def mark_worker_lost(store, job_id, message):
    def change(job):
        if job.state != JobState.RUNNING:
            return False
        job.set_state(JobState.ERROR, message)
        job.error = {"message": message,
                     "detail": "The worker running this job died (killed, out of memory, or the machine "
                               "stopped). Resume continues from the last snapshot where there is one."}
        job.progress["eta_s"] = None
    store.update(job_id, change)
    store.append_log(job_id, "Error: " + message)


# -- worker information advertised in Redis -----------------------------------------------
def advertise_worker(conn, name, info):
    conn.set(WORKER_KEY_PREFIX + name, json.dumps(info), ex=WORKER_INFO_TTL_S)


def list_workers(conn):
    """Workers that refreshed their info recently: [{name, host, gpu, gpu_name, memory_mb, busy_job}]."""
    workers = []
    try:
        keys = list(conn.scan_iter(WORKER_KEY_PREFIX + "*"))
        values = conn.mget(keys) if keys else []
    except Exception:
        return workers
    for value in values:
        if value:
            try:
                workers.append(json.loads(value))
            except ValueError:
                continue
    return sorted(workers, key=lambda w: (w.get("host", ""), str(w.get("gpu")), w.get("name", "")))
