"""Job operations shared by the web app and the CLI: submit, abort, delete, resume."""

import json
import os
import time

from ..errors import ConflictError, DigitsSegError, NotFoundError
from .job import JobState
from .queue import abort as queue_abort
from .queue import connect, escalate_aborts, submit
from ..space import ensure_space
from .store import JobStore

SERVE_INFO = ".serve.json"


class QueueUnavailableError(DigitsSegError):
    """Redis cannot be reached (restarting, or down); the request changed nothing."""

    status = 503


def resolve_redis_url(settings):
    """The configured Redis URL, or the embedded one of a `serve` running on this jobs dir."""
    if settings.redis_url:
        return settings.redis_url
    info_path = os.path.join(settings.jobs_dir, SERVE_INFO)
    try:
        with open(info_path) as f:
            info = json.load(f)
        if info.get("redis_url"):
            return info["redis_url"]
    except (OSError, ValueError):
        pass
    raise DigitsSegError("no Redis to talk to: start `digits-seg serve` for jobs dir %s, or set REDIS_URL "
                         "(or DIGITS_SEG_REDIS_URL) to a running Redis." % settings.jobs_dir)


class JobService:
    """What a user can do to jobs; views and CLI commands call these and nothing lower."""

    def __init__(self, settings, conn=None, store=None):
        self.settings = settings
        self.store = store or JobStore(settings.jobs_dir)
        self._conn = conn

    @property
    def conn(self):
        if self._conn is None:
            self._conn = connect(resolve_redis_url(self.settings))
        return self._conn

    def submit(self, kind, name, params, queue="default", depends_on=()):
        """Create the job folder and queue it; when the queue is unreachable, leave nothing behind (503)."""
        self._ping()  # fail before creating a folder when there is no Redis to queue on
        ensure_space(self.settings.jobs_dir, self.settings.min_free_mb)
        job = self.store.create(kind, name, params, queue=queue, depends_on=depends_on)
        try:
            submit(self.conn, self.store, job, job_timeout=self.settings.job_timeout_s)
        except Exception as exc:
            self.store.delete(job.id)
            raise QueueUnavailableError("could not queue the job: %s; nothing was created, try again in a "
                                        "moment" % exc)
        return job

    def _ping(self):
        import redis

        try:
            self.conn.ping()
        except redis.exceptions.RedisError as exc:
            raise QueueUnavailableError("the job queue (Redis) is not reachable (%s); nothing was created. If "
                                        "`digits-seg serve` is running it restarts its Redis within seconds: "
                                        "try again in a moment" % exc)

    def abort(self, job_id):
        conn = None
        try:
            conn = self.conn
        except DigitsSegError:
            if self.store.get(job_id).state != JobState.QUEUED:
                raise
            # No Redis reachable: a queued job can still be marked aborted; the worker
            # skips jobs that are no longer queued when it picks them up.
        return queue_abort(conn, self.store, job_id)

    def abort_and_wait(self, job_id, timeout=30):
        """Abort and wait until the job has left `running` (CLI and delete use this)."""
        job = self.abort(job_id)
        deadline = time.time() + timeout
        while job.state == JobState.RUNNING and time.time() < deadline:
            time.sleep(0.25)
            escalate_aborts(self.conn, self.store)
            job = self.store.get(job_id)
        return job

    def users_of(self, job_id):
        """Jobs (not deleted) that need `job_id`: models trained on a dataset, etc."""
        keys = ("dataset_id", "pretrained_id", "previous_id", "model_id")
        return [j for j in self.store.list() if j.id != job_id
                and (job_id in j.depends_on or any(j.params.get(k) == job_id for k in keys))]

    def delete(self, job_id):
        job = self.store.get(job_id)
        users = self.users_of(job_id)
        if users:
            names = ", ".join("%r" % u.name for u in users)
            raise ConflictError("%s %r is used by %s; delete %s first."
                                % (job.kind, job.name, names, "them" if len(users) > 1 else "it"))
        if job.state == JobState.QUEUED:
            self.abort(job_id)
        elif job.state == JobState.RUNNING:
            job = self.abort_and_wait(job_id)
            if job.state == JobState.RUNNING:
                raise ConflictError("job %r did not stop; try again in a moment" % job.name)
        self.store.delete(job_id)

    def resume(self, job_id):
        """Re-queue a model job that ended in error or was aborted; it continues from its last snapshot."""
        job = self.store.get(job_id)
        if job.kind != "model":
            raise ConflictError("only training jobs can be resumed")
        if job.state not in (JobState.ERROR, JobState.ABORTED):
            raise ConflictError("job %r is %s; only stopped jobs can be resumed" % (job.name, job.state.value))

        def change(j):
            j.set_state(JobState.QUEUED, "resumed by the user")
            j.resume = True
            j.error = None
        job = self.store.update(job_id, change)
        self.store.clear_abort(job_id)
        self.store.append_log(job_id, "Resume requested: continuing from the last snapshot.")
        submit(self.conn, self.store, job, job_timeout=self.settings.job_timeout_s)
        return job

    def get(self, job_id):
        try:
            return self.store.get(job_id)
        except FileNotFoundError:
            raise NotFoundError("no job with id %r" % job_id)
