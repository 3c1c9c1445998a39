"""LMDB writing and reading with zero-padded keys (`%09d`, as DIGITS wrote them)."""

import os
import shutil
import threading

import lmdb

KEY_FORMAT = "%09d"
"""Record keys: zero-padded index so byte order equals numeric order."""

DEFAULT_MAP_SIZE = 1 << 30
"""Initial LMDB map size in bytes; doubled whenever it fills up."""

COMMIT_BYTES = 8 << 20
"""Commit a write transaction after roughly this many bytes (bounds the memory of pending records)."""


def key_for(index):
    return (KEY_FORMAT % index).encode("ascii")


class LMDBWriter:
    """Add records to an LMDB, committing in batches and growing the map when full.

    Several processes may write one database at once (dataset workers do): LMDB serialises
    their transactions, and a map grown by one is adopted by the others.
    """

    def __init__(self, path, map_size=None):
        os.makedirs(path, exist_ok=True)
        self.path = path
        # no fsync per commit: a database being built is flushed once at the end (`close`, or
        # `fsync_database` when several processes wrote it) before anything marks it complete
        self.env = lmdb.open(path, map_size=map_size or DEFAULT_MAP_SIZE, subdir=True, lock=True, readahead=False,
                             meminit=False, sync=False)
        self._pending = []
        self._pending_bytes = 0

    def put(self, key, value):
        self._pending.append((key, value))
        self._pending_bytes += len(value)
        if self._pending_bytes >= COMMIT_BYTES:
            self.flush()

    def flush(self):
        if not self._pending:
            return
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for k, v in self._pending:
                        txn.put(k, v)
                break
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
            except lmdb.MapResizedError:  # another process grew the map: adopt its size
                self.env.set_mapsize(0)
        self._pending = []
        self._pending_bytes = 0

    def close(self, sync=True):
        """Commit what is pending and close; `sync=False` leaves flushing to disk to the caller
        (`fsync_database`), e.g. when several processes wrote the same database."""
        self.flush()
        if sync:
            self.env.sync(True)
        self.env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self.env.close()


def fsync_database(path):
    """Force an LMDB's data file to disk (after writers closed it with `sync=False`)."""
    fd = os.open(os.path.join(path, "data.mdb"), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def renumber(path):
    """Rewrite the LMDB at `path` with keys 0, 1, 2, ... in the order of its current keys.

    Dataset workers write each record under its position in the split; skipped bad pairs
    leave gaps that readers (and DIGITS) would not expect.
    """
    tmp = path + ".renumber"
    src = lmdb.open(path, readonly=True, lock=False, subdir=True)
    try:
        with LMDBWriter(tmp) as dst, src.begin() as txn:
            for n, (_, value) in enumerate(txn.cursor()):
                dst.put(key_for(n), value)
    finally:
        src.close()
    old = path + ".old"
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old)


def open_readonly(path):
    """Open an LMDB read-only without locking (safe for many reader processes)."""
    return lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, subdir=os.path.isdir(path),
                     max_readers=512)


class ReaderEnvs:
    """Read-only environments shared within one process, keyed by real path.

    py-lmdb refuses to open one environment twice in a process, yet a web process shows a
    dataset that a loader in the same process also reads; so readers share handles. One
    instance per process (created lazily by `shared_readonly`); forked children start fresh.
    """

    def __init__(self):
        self.pid = os.getpid()
        self.envs = {}
        self.lock = threading.Lock()  # web server threads open the same split at the same moment

    def get(self, path):
        key = os.path.realpath(path)
        with self.lock:
            env = self.envs.get(key)
            if env is None:
                env = self.envs[key] = open_readonly(key)
            return env

    def forget(self, folder):
        """Close the handles under `folder` (before deleting or replacing it)."""
        root = os.path.realpath(folder).rstrip(os.sep) + os.sep
        with self.lock:
            for key in [k for k in self.envs if (k + os.sep).startswith(root)]:
                self.envs.pop(key).close()


_PROCESS_ENVS = [None]  # the per-process ReaderEnvs; a list so no `global` statement is needed
_PROCESS_ENVS_LOCK = threading.Lock()


def shared_readonly(path):
    """This process's shared read-only handle on the LMDB at `path` (thread-safe)."""
    with _PROCESS_ENVS_LOCK:
        envs = _PROCESS_ENVS[0]
        if envs is None or envs.pid != os.getpid():
            if envs is not None:
                # Forked from a process that had these open (a DataLoader worker): py-lmdb's
                # registry still lists them, so close the inherited handles before reopening.
                for env in envs.envs.values():
                    try:
                        env.close()
                    except lmdb.Error:
                        pass
            envs = _PROCESS_ENVS[0] = ReaderEnvs()
    return envs.get(path)


def forget_readers(folder):
    """Close shared handles under `folder`; call before deleting a dataset in a long-lived process."""
    envs = _PROCESS_ENVS[0]
    if envs is not None and envs.pid == os.getpid():
        envs.forget(folder)


def read_keys(env):
    """All keys of an LMDB in order."""
    with env.begin() as txn:
        return list(txn.cursor().iternext(keys=True, values=False))
