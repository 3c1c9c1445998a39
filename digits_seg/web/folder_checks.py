"""Pre-flight folder checks that run beside the web server, with progress the form polls.

A check decodes every pair (about 500 pairs/s here), so a large folder takes minutes: too
long for one HTTP request, yet too short-lived and too interactive for a queued job (it
writes nothing, and the answer belongs to the form that asked). So each check runs on a
thread of the web process (its decoding in the usual worker processes), keeps its progress
in memory, and is cancelled when nobody has polled it for a while: a closed tab stops
burning CPU.
"""

import secrets
import threading
import time

from ..datasets.layouts.checking import check_dataset
from ..errors import ConflictError, DigitsSegError, JobAborted, NotFoundError

MAX_RUNNING = 2
"""Checks running at once; more would only share the same cores."""

ABANDONED_S = 30.0
"""A running check nobody polled for this long is cancelled (its page was closed)."""

KEEP_S = 600.0
"""Finished checks stay readable this long."""


class FolderCheck:
    """One check: progress while it runs, then the report (or the error)."""

    def __init__(self, params, settings, abandoned_s=ABANDONED_S):
        self.id = secrets.token_hex(8)
        self.params, self.settings, self.abandoned_s = params, settings, abandoned_s
        self.started = self.polled = time.monotonic()
        self.finished = None
        self.progress, self.message = 0.0, "listing the folders"
        self.report = self.error = None
        self.cancelled = threading.Event()
        self.thread = threading.Thread(target=self._run, name="folder-check-" + self.id, daemon=True)

    @property
    def state(self):
        if self.finished is None:
            return "running"
        if self.report is not None:
            return "done"
        return "cancelled" if self.cancelled.is_set() else "error"

    def _run(self):
        try:
            report = check_dataset(self.params, self.settings, on_progress=self._on_progress,
                                   should_stop=self._should_stop)
            self.report = report.to_dict()
        except JobAborted:
            pass
        except DigitsSegError as e:
            self.error = {"message": e.message, "field": e.field}
        except Exception as e:  # noqa: BLE001 - shown to the user instead of a stack trace
            self.error = {"message": "the check failed: %s: %s" % (type(e).__name__, e), "field": None}
        finally:
            self.finished = time.monotonic()

    def _should_stop(self):
        if time.monotonic() - self.polled > self.abandoned_s:
            self.cancelled.set()
        return self.cancelled.is_set()

    def _on_progress(self, fraction, message):
        self.progress, self.message = fraction, message

    def eta_s(self):
        if self.finished is not None or self.progress <= 0:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed * (1 - self.progress) / self.progress

    def to_dict(self):
        return {"id": self.id, "state": self.state, "progress": self.progress, "message": self.message,
                "eta_s": self.eta_s(), "report": self.report, "error": self.error}


class FolderChecks:
    """The checks of one web app (kept in its `AppState`, not in a module global)."""

    def __init__(self, max_running=MAX_RUNNING, abandoned_s=ABANDONED_S, keep_s=KEEP_S):
        self.max_running, self.abandoned_s, self.keep_s = max_running, abandoned_s, keep_s
        self._checks = {}
        self._lock = threading.Lock()

    def start(self, params, settings):
        with self._lock:
            self._prune()
            if sum(c.finished is None for c in self._checks.values()) >= self.max_running:
                raise ConflictError("%d folder checks are already running; wait for one to finish"
                                    % self.max_running)
            check = FolderCheck(params, settings, self.abandoned_s)
            self._checks[check.id] = check
        check.thread.start()
        return check

    def get(self, check_id):
        with self._lock:
            self._prune()
            check = self._checks.get(check_id)
        if check is None:
            raise NotFoundError("no folder check %r (finished checks are kept %d minutes)"
                                % (check_id, self.keep_s // 60))
        check.polled = time.monotonic()
        return check

    def passed(self, check_id, params):
        """The finished check `check_id` if it found no problem in exactly `params`, else None.

        Create then need not decode every pair a second time right after the form's check (a
        large folder takes minutes); the job still validates every pair as it builds.
        """
        with self._lock:
            check = self._checks.get(check_id) if isinstance(check_id, str) else None
        if check is None or check.state != "done" or not check.report.get("ok") or check.params != params:
            return None
        return check

    def cancel(self, check_id):
        check = self.get(check_id)
        check.cancelled.set()
        return check

    def _prune(self):
        now = time.monotonic()
        for cid, c in list(self._checks.items()):
            if c.finished is not None and now - c.finished > self.keep_s:
                del self._checks[cid]
