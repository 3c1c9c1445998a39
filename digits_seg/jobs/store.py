"""The jobs folder: create, read (cached by mtime), update under a lock, list, delete."""

import fcntl
import os
import shutil
import threading

from ..errors import NotFoundError, ValidationError
from ..fsutil import read_json, write_json_atomic
from .job import Job, JobState, new_job_id

JOB_FILE = "job.json"
LOG_FILE = "log.txt"
ABORT_FILE = "abort.requested"
HEARTBEAT_FILE = ".heartbeat"


class JobStore:
    """Access to `<jobs_dir>/<id>/job.json`; one instance per app or process.

    Listing keeps a cache keyed by each file's (mtime, size) so the home page stats the
    folders but re-reads only job files that changed. Jobs from `get`/`list` share their
    nested dicts with that cache: treat them as read-only and change jobs with `update`.
    """

    def __init__(self, jobs_dir):
        self.jobs_dir = os.path.abspath(jobs_dir)
        os.makedirs(self.jobs_dir, exist_ok=True)
        self._cache = {}
        self._cache_lock = threading.Lock()

    def job_dir(self, job_id):
        if not _valid_id(job_id):
            raise NotFoundError("no job with id %r" % job_id)
        return os.path.join(self.jobs_dir, job_id)

    def create(self, kind, name, params, queue="default", depends_on=()):
        """Create the folder and job.json (state queued) and return the Job."""
        name = (name or "").strip()
        if not name:
            raise ValidationError("Give the job a name.", field="name")
        if len(name) > 200:
            raise ValidationError("The name is too long (200 characters at most).", field="name")
        for _ in range(20):
            job_id = new_job_id()
            path = os.path.join(self.jobs_dir, job_id)
            try:
                os.mkdir(path)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 20 collisions in one second
            raise RuntimeError("could not allocate a job id")
        job = Job(id=job_id, kind=str(kind.value if hasattr(kind, "value") else kind), name=name,
                  created=_now(), params=params, queue=queue, depends_on=list(depends_on))
        job.set_state(JobState.QUEUED)
        try:
            write_json_atomic(os.path.join(path, JOB_FILE), job.to_dict())
        except BaseException:  # e.g. disk full: leave no empty job folder behind
            shutil.rmtree(path, ignore_errors=True)
            raise
        return job

    def get(self, job_id):
        path = os.path.join(self.job_dir(job_id), JOB_FILE)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise NotFoundError("no job with id %r" % job_id)
        return self._read_cached(job_id, path, st)

    def _read_cached(self, job_id, path, st):
        key = (st.st_mtime_ns, st.st_size)
        with self._cache_lock:
            hit = self._cache.get(job_id)
        if hit and hit[0] == key:
            return Job.from_dict(hit[1])
        data = read_json(path)
        with self._cache_lock:
            self._cache[job_id] = (key, data)
        return Job.from_dict(data)

    def list(self, kind=None):
        """All jobs, newest first (ids sort by time)."""
        jobs = []
        try:
            names = os.listdir(self.jobs_dir)
        except FileNotFoundError:
            return jobs
        for name in sorted(names, reverse=True):
            if not _valid_id(name):
                continue
            path = os.path.join(self.jobs_dir, name, JOB_FILE)
            try:
                st = os.stat(path)
                job = self._read_cached(name, path, st)
            except (FileNotFoundError, ValueError):
                continue
            if kind is None or job.kind == kind:
                jobs.append(job)
        # Ids order by the second only (their suffix is random); `created` has milliseconds,
        # so jobs made in the same second (a sweep) still list newest first.
        jobs.sort(key=lambda j: (j.id[:15], j.created or ""), reverse=True)
        return jobs

    def update(self, job_id, change):
        """Apply `change(job)` under the job's lock and write atomically; return the job.

        `change` may return False to skip the write (e.g. a late progress update for a
        job that already finished).
        """
        folder = self.job_dir(job_id)
        lock_path = os.path.join(folder, ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                job = Job.from_dict(read_json(os.path.join(folder, JOB_FILE)))
                if change(job) is not False:
                    write_json_atomic(os.path.join(folder, JOB_FILE), job.to_dict())
                return job
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def set_state(self, job_id, state, message=None, error=None):
        def change(job):
            job.set_state(state, message)
            if error is not None:
                job.error = error
        return self.update(job_id, change)

    def delete(self, job_id):
        folder = self.job_dir(job_id)
        if not os.path.isdir(folder):
            raise NotFoundError("no job with id %r" % job_id)
        # Rename first so a reader never sees a half-deleted job folder.
        trash = os.path.join(self.jobs_dir, ".deleted-" + job_id)
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        with self._cache_lock:
            self._cache.pop(job_id, None)

    # -- files beside job.json ----------------------------------------------------------
    def log_path(self, job_id):
        return os.path.join(self.job_dir(job_id), LOG_FILE)

    def append_log(self, job_id, text):
        from .job import now_iso

        stamp = now_iso()[:19].replace("T", " ")
        with open(self.log_path(job_id), "a", encoding="utf-8") as f:
            for line in str(text).splitlines() or [""]:
                f.write("%s %s\n" % (stamp, line))

    def read_log(self, job_id, max_bytes=200_000):
        """The last `max_bytes` of the log (whole lines) and whether it was cut."""
        path = self.log_path(job_id)
        try:
            size = os.path.getsize(path)
        except FileNotFoundError:
            return "", False
        with open(path, "rb") as f:
            if size > max_bytes:
                f.seek(size - max_bytes)
                data = f.read().split(b"\n", 1)[-1]
                return data.decode("utf-8", "replace"), True
            return f.read().decode("utf-8", "replace"), False

    def request_abort(self, job_id):
        with open(os.path.join(self.job_dir(job_id), ABORT_FILE), "w") as f:
            f.write(_now())

    def abort_requested(self, job_id):
        return os.path.exists(os.path.join(self.job_dir(job_id), ABORT_FILE))

    def clear_abort(self, job_id):
        try:
            os.unlink(os.path.join(self.job_dir(job_id), ABORT_FILE))
        except FileNotFoundError:
            pass

    def touch_heartbeat(self, job_id):
        path = os.path.join(self.job_dir(job_id), HEARTBEAT_FILE)
        with open(path, "w") as f:
            f.write(_now())

    def heartbeat_age(self, job_id, now):
        """Seconds since the task last beat, or None when it never did."""
        try:
            return now - os.path.getmtime(os.path.join(self.job_dir(job_id), HEARTBEAT_FILE))
        except FileNotFoundError:
            return None


def _valid_id(name):
    # YYYYmmdd-HHMMSS-xxxx
    return (len(name) == 20 and name[8] == "-" and name[15] == "-"
            and name[:8].isdigit() and name[9:15].isdigit()
            and all(c in "0123456789abcdef" for c in name[16:]))


def _now():
    from .job import now_iso

    return now_iso()
