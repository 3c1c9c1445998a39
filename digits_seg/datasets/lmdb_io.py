"""LMDB writing and reading with zero-padded keys (`%09d`, as DIGITS wrote them)."""

import os

import lmdb

KEY_FORMAT = "%09d"
"""Record keys: zero-padded index so byte order equals numeric order."""

DEFAULT_MAP_SIZE = 1 << 30
"""Initial LMDB map size in bytes; doubled whenever it fills up."""

COMMIT_BYTES = 32 << 20
"""Commit a write transaction after roughly this many bytes."""


def key_for(index):
    return (KEY_FORMAT % index).encode("ascii")


class LMDBWriter:
    """Append records to a new LMDB, committing in batches and growing the map when full."""

    def __init__(self, path, map_size=DEFAULT_MAP_SIZE):
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.env = lmdb.open(path, map_size=map_size, subdir=True, lock=True, readahead=False,
                             meminit=False, map_async=True)
        self._pending = []
        self._pending_bytes = 0
        self.count = 0

    def put(self, key, value):
        self._pending.append((key, value))
        self._pending_bytes += len(value)
        self.count += 1
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
        self._pending = []
        self._pending_bytes = 0

    def close(self):
        self.flush()
        self.env.sync(True)
        self.env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self.env.close()


def open_readonly(path):
    """Open an LMDB read-only without locking (safe for many reader processes)."""
    return lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, subdir=os.path.isdir(path))


def read_keys(env):
    """All keys of an LMDB in order."""
    with env.begin() as txn:
        return list(txn.cursor().iternext(keys=True, values=False))
