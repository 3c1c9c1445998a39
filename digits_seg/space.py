"""Free space of the jobs folder's disk: refuse work up front instead of failing half-way.

A full disk used to surface as "Internal error (OSError)" with an empty job folder left
behind, or as an LMDB "Input/output error" with a traceback. Submissions and uploads now
check the free space first (`min_free_mb`), and a write that still hits ENOSPC is
reported with the same sentence.
"""

import errno
import shutil

from .errors import DigitsSegError


class DiskFullError(DigitsSegError):
    """The jobs folder's disk has too little free space; nothing was written."""

    status = 507


def free_mb(path):
    """Free space, in MiB, of the filesystem holding `path` (for an unprivileged user)."""
    return shutil.disk_usage(path).free // 2 ** 20


def disk_full_message(jobs_dir):
    try:
        free = "%d MB free" % free_mb(jobs_dir)
    except OSError:
        free = "free space unknown"
    return ("the jobs folder's disk is full (%s); nothing was written. Delete old jobs or give the jobs "
            "folder more space (setting DIGITS_SEG_MIN_FREE_MB)" % free)


def ensure_space(jobs_dir, min_free_mb):
    """Raise DiskFullError when the jobs folder's disk has less than `min_free_mb` MiB free."""
    try:
        free = free_mb(jobs_dir)
    except FileNotFoundError:
        return
    if free < min_free_mb:
        raise DiskFullError(disk_full_message(jobs_dir))


def is_disk_full(exc):
    """True for an OSError (or an LMDB error) that means the disk is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text
