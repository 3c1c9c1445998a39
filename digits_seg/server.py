"""`digits-seg serve`: one process that owns Redis (embedded), the workers and the web app.

    Server.run()
      ├─ lock <jobs_dir>/.serve.lock (a second serve on the same jobs dir stops here)
      ├─ EmbeddedRedis (unless REDIS_URL)          ─┐
      ├─ recovery pass (dead running jobs → error)  │ stopped in reverse order on
      ├─ N worker subprocesses (one per GPU / CPU)  │ Ctrl-C / SIGTERM, leaving no
      ├─ Monitor thread (recovery, abort escalation, │ orphan process or socket
      │   restarting crashed workers)                │
      └─ waitress serving create_app(settings)     ─┘
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time

from .config import environ_of
from .errors import DigitsSegError, ValidationError
from .gpus import list_gpus
from .procs import die_with_parent
from .jobs.queue import connect, escalate_aborts, recover
from .uploads import prune_stages
from .jobs.redis_server import EmbeddedRedis
from .jobs.service import SERVE_INFO
from .jobs.store import JobStore

MONITOR_INTERVAL_S = 2.0
"""Seconds between monitor passes (crash recovery, abort escalation, worker restarts)."""
UPLOAD_PRUNE_INTERVAL_S = 3600
"""Seconds between passes removing abandoned upload stages (`digits_seg.uploads`)."""


RQ_DUPLICATE_SIGNAL_S = 1.0
"""Seconds within which an RQ worker ignores a repeated SIGTERM (rq >= 2: taken as a duplicate)."""

WORKER_RESTART_DELAY_S = 10.0
"""Seconds between restarts of a worker process that keeps exiting."""


class AlreadyRunningError(DigitsSegError):
    """Another `serve` holds this jobs dir."""


class Server:
    """Start everything, serve until a signal, stop everything."""

    def __init__(self, settings, out=None):
        self.settings = settings
        self.out = out or sys.stdout
        self.redis = None
        self.workers = []  # [(Popen, gpu)]
        self.stopping = threading.Event()
        self.workers_stopped = threading.Event()
        self._lock_file = None

    def say(self, text):
        print(text, file=self.out, flush=True)

    def _acquire_lock(self):
        os.makedirs(self.settings.jobs_dir, exist_ok=True)
        path = os.path.join(self.settings.jobs_dir, ".serve.lock")
        self._lock_file = open(path, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            info = {}
            try:
                with open(os.path.join(self.settings.jobs_dir, SERVE_INFO)) as f:
                    info = json.load(f)
            except (OSError, ValueError):
                pass
            raise AlreadyRunningError(
                "digits-seg serve is already running for jobs dir %s (pid %s, %s). Stop it first, or use "
                "another --jobs-dir." % (self.settings.jobs_dir, info.get("pid", "?"), info.get("url", "?")))

    def worker_plan(self):
        """GPU indices (None = CPU) of the workers to start."""
        gpus = [g["index"] for g in list_gpus()]
        if self.settings.gpus:
            gpus = [int(g) for g in self.settings.gpus]
        if self.settings.workers not in ("", None):
            n = int(self.settings.workers)
            if gpus:
                return [gpus[i % len(gpus)] for i in range(n)]
            return [None] * n
        return gpus or [None]

    def start_worker(self, redis_url, gpu):
        cmd = [sys.executable, "-m", "digits_seg.cli", "worker", "--jobs-dir", self.settings.jobs_dir,
               "--redis-url", redis_url]
        if gpu is not None:
            cmd += ["--gpu", str(gpu)]
        env = dict(os.environ)
        env.update(environ_of(self.settings.replace(redis_url=redis_url)))  # flags given to serve reach the workers
        env["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)
        if gpu is None and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(cpu_worker_threads(self.settings.worker_cpu_threads))
        # SIGKILL when serve dies: the work horse (own process group) sees its worker gone,
        # marks the job "worker stopped unexpectedly" and exits; nothing is left running.
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=die_with_parent(signal.SIGKILL))

    def run(self):
        from waitress import create_server

        from .web.app import create_app

        self._acquire_lock()
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGINT, _raise_interrupt)
        try:
            redis_url = self.settings.redis_url
            if not redis_url:
                self.redis = EmbeddedRedis(self.settings.jobs_dir).start()
                redis_url = self.redis.url
            conn = connect(redis_url)
            conn.ping()
            store = JobStore(self.settings.jobs_dir)
            fixed = recover(conn, store, heartbeat_s=self.settings.heartbeat_s, startup=True)
            if fixed:
                self.say("recovered %d job(s) left by a previous run" % len(fixed))
            self._prune_uploads(store)
            settings = self.settings.replace(redis_url=redis_url)
            for gpu in self.worker_plan():
                self.workers.append([self.start_worker(redis_url, gpu), gpu, time.time()])
            # The monitor (which restarts workers and Redis) starts before the web side is
            # niced, so what it starts keeps the normal priority.
            monitor = threading.Thread(target=self._monitor, args=(conn, store, redis_url), daemon=True)
            monitor.start()
            lower_web_priority(settings.web_nice)
            app = create_app(settings)
            server = create_server(app, host=settings.host, port=settings.port, threads=settings.web_threads,
                                   channel_timeout=120)
            port = int(server.effective_port)
            host = settings.host if settings.host not in ("0.0.0.0", "") else "localhost"
            url = "http://%s:%d" % (host, port)
            with open(os.path.join(settings.jobs_dir, SERVE_INFO), "w") as f:
                json.dump({"pid": os.getpid(), "url": url, "redis_url": redis_url, "port": port}, f)
            kinds = ", ".join("GPU %d" % g if g is not None else "CPU" for _, g, _ in self.workers)
            self.say("digits-seg serving at %s  (jobs: %s; Redis: %s; workers: %s)"
                     % (url, settings.jobs_dir, "embedded" if self.redis else redis_url, kinds))
            self.say("Press Ctrl-C to stop.")
            try:
                server.run()
            except KeyboardInterrupt:
                pass
            finally:
                self.stopping.set()
                server.close()
            self.say("stopping...")
            return 0
        finally:
            self.stopping.set()
            self._stop_workers()
            self.workers_stopped.set()
            if self.redis:
                self.redis.stop()
            try:
                os.unlink(os.path.join(self.settings.jobs_dir, SERVE_INFO))
            except OSError:
                pass
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._lock_file:
                self._lock_file.close()

    def _prune_uploads(self, store):
        removed = prune_stages(store)
        if removed:
            self.say("removed %d abandoned upload folder(s) from %s" % (len(removed), os.path.dirname(removed[0])))

    def _monitor(self, conn, store, redis_url):
        pruned = time.time()
        while not self.stopping.wait(MONITOR_INTERVAL_S):
            if self.redis is not None and self.redis.died:
                self._restart_redis(conn, store)
            try:
                recover(conn, store, heartbeat_s=self.settings.heartbeat_s)
                escalate_aborts(conn, store)
            except Exception as exc:  # keep monitoring; Redis may be restarting
                self.say("monitor: %s" % exc)
            if time.time() - pruned > UPLOAD_PRUNE_INTERVAL_S:
                pruned = time.time()
                try:
                    self._prune_uploads(store)
                except OSError as exc:
                    self.say("monitor: pruning uploads: %s" % exc)
            for entry in self.workers:
                proc, gpu, last_start = entry
                # Restart crashed workers, at most once per WORKER_RESTART_DELAY_S each.
                if proc.poll() is not None and not self.stopping.is_set() \
                        and time.time() - last_start > WORKER_RESTART_DELAY_S:
                    self.say("worker %s exited (code %s); restarting it" % (proc.pid, proc.returncode))
                    entry[2] = time.time()
                    try:
                        entry[0] = self.start_worker(redis_url, gpu)
                    except OSError as exc:  # keep this thread alive: its workers die with it
                        self.say("monitor: could not restart the worker: %s" % exc)
        # Workers started here get SIGKILL when this thread ends (die_with_parent), so
        # outlive `_stop_workers`, which stops them in order.
        self.workers_stopped.wait(60)

    def _restart_redis(self, conn, store):
        """Start the embedded Redis again (same socket, reloading its dump) and re-queue what it lost."""
        code = self.redis.process.returncode
        self.say("embedded Redis exited (code %s); restarting it" % code)
        try:
            self.redis.restart()
            fixed = recover(conn, store, heartbeat_s=self.settings.heartbeat_s, startup=True)
        except Exception as exc:  # try again at the next pass
            self.say("monitor: could not restart Redis: %s" % exc)
            return
        self.say("embedded Redis restarted; %d queued job(s) re-queued" % len(fixed))

    def _stop_workers(self, timeout=20):
        """SIGTERM twice (RQ: cold shutdown kills the running job), then SIGKILL leftovers."""
        import psutil

        procs = [p for p, _, _ in self.workers if p.poll() is None]
        family = []
        for p in procs:
            try:
                family += psutil.Process(p.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        for p in procs:
            _signal(p.pid, signal.SIGTERM)
        # RQ ignores a second signal that comes within 1 s of the first (it takes it for a
        # duplicate), so wait longer than that before asking for the cold shutdown.
        time.sleep(RQ_DUPLICATE_SIGNAL_S + 0.2)
        for p in procs:
            _signal(p.pid, signal.SIGTERM)
        deadline = time.time() + timeout
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for child in family:
            try:
                if child.is_running():
                    child.kill()
            except psutil.NoSuchProcess:
                pass
        _, survivors = psutil.wait_procs(family, timeout=5)
        gone = {c.pid for c in family} - {c.pid for c in survivors if _alive(c)}
        # Jobs our workers were running can no longer finish: say so now rather than at the
        # next start-up.
        store = JobStore(self.settings.jobs_dir)
        from .jobs.job import JobState
        from .jobs.queue import mark_worker_lost

        for job in store.list():
            if job.state == JobState.RUNNING and (job.worker or {}).get("host") == os.uname().nodename:
                pid = (job.worker or {}).get("pid")
                if pid and (pid in gone or not _pid_alive(pid)):
                    mark_worker_lost(store, job.id, "stopped because the server was shut down; "
                                                   "Resume continues from the last snapshot")


def cpu_worker_threads(setting, cpus=None):
    """PyTorch threads for a CPU worker beside the web app: the setting, else all cores but one."""
    if str(setting or "").strip():
        try:
            n = int(setting)
        except ValueError:
            n = 0
        if n < 1:
            raise ValidationError("DIGITS_SEG_WORKER_CPU_THREADS must be a whole number of at least 1, got %r"
                                  % setting, field="worker_cpu_threads")
        return n
    return max(1, (cpus or os.cpu_count() or 1) - 1)


def lower_web_priority(niceness):
    """Make the calling thread, and every thread and process it starts from now on, `niceness` nicer.

    On Linux a nice value belongs to a thread, and new threads inherit their creator's, so
    calling this on the main thread just before the web server creates its threads
    lowers the web side only: training workers (started earlier, or by the monitor
    thread) keep the CPU when pages are under load.
    """
    if niceness > 0:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness + os.getpriority(os.PRIO_PROCESS, 0))
        except OSError:
            pass


def _alive(proc):
    """True while `proc` runs; a zombie (killed, not yet reaped by its new parent) is gone."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pid_alive(pid):
    import psutil

    try:
        return _alive(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
