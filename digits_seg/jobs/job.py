"""The `Job` record: plain data kept in `jobs/<id>/job.json`, written atomically."""

import dataclasses
import datetime
import enum
import secrets
import time


class JobState(str, enum.Enum):
    """Lifecycle: queued → running → done | error | aborted (resume: error/aborted → queued)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    ABORTED = "aborted"

    @property
    def finished(self):
        return self in (JobState.DONE, JobState.ERROR, JobState.ABORTED)


class JobKind(str, enum.Enum):
    """What a job produces; each kind has one task function (see tasks.py)."""

    DATASET = "dataset"
    MODEL = "model"
    PRETRAINED = "pretrained"
    INFERENCE = "inference"
    CHECK = "check"


def new_job_id(now=None):
    """Return a time-sortable id `YYYYmmdd-HHMMSS-xxxx` (xxxx: 4 random hex digits)."""
    now = now or datetime.datetime.now()
    return now.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def now_iso():
    """Local time with offset, to the millisecond (status history, log)."""
    return datetime.datetime.now().astimezone().isoformat(timespec="milliseconds")


def parse_iso(text):
    return datetime.datetime.fromisoformat(text).timestamp()


@dataclasses.dataclass
class Job:
    """One job. `params` is the submitted form, kept so `?clone=<id>` can pre-fill it."""

    id: str
    kind: str
    name: str
    created: str
    params: dict
    status_history: list = dataclasses.field(default_factory=list)
    progress: dict = dataclasses.field(default_factory=lambda: {"fraction": 0.0, "eta_s": None, "message": ""})
    error: dict = None
    result: dict = None
    depends_on: list = dataclasses.field(default_factory=list)
    worker: dict = None
    queue: str = "default"
    resume: bool = False
    notes: list = dataclasses.field(default_factory=list)

    @property
    def state(self):
        return JobState(self.status_history[-1]["state"]) if self.status_history else JobState.QUEUED

    @property
    def state_since(self):
        return parse_iso(self.status_history[-1]["time"]) if self.status_history else time.time()

    def set_state(self, state, message=None):
        entry = {"state": JobState(state).value, "time": now_iso()}
        if message:
            entry["message"] = message
        self.status_history.append(entry)

    def running_started(self):
        """Epoch seconds of the latest transition to running, or None."""
        for entry in reversed(self.status_history):
            if entry["state"] == JobState.RUNNING.value:
                return parse_iso(entry["time"])
        return None

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data):
        """Build a Job from job.json data (unknown keys such as the derived `state` are dropped)."""
        return cls(**{k: v for k, v in data.items() if k in _JOB_FIELDS})


_JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))
"""Field names of Job, computed once: `dataclasses.fields` per call dominated listing 2,000 jobs."""
