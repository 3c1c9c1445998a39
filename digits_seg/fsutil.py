"""Atomic file writes: readers never see a half-written file."""

import json
import os
import tempfile


def _default_mode():
    """0666 minus the umask: what open() would give (mkstemp's files are 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes_atomic(path, data):
    """Write `data` to `path` via a temp file in the same folder, then rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=folder)
    try:
        os.fchmod(fd, _default_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path, obj):
    """Serialise `obj` as indented JSON and write it atomically."""
    write_bytes_atomic(path, json.dumps(obj, indent=2, sort_keys=False).encode("utf-8"))


def read_json(path):
    """Read a JSON file written by `write_json_atomic`."""
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def temp_path_for(path):
    """Return a sibling temp name for building `path` (file or folder) before a rename."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, ".partial-%s-%d" % (name, os.getpid()))
