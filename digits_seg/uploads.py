"""Stage folders for uploads: `<jobs>/.uploads/<name>`, files saved before their job exists.

A web view saves an upload into a stage, then submits a job whose params name the stage
(`upload_dir`); the job moves it into its own folder when it starts. A stage whose job was
never created (the request failed half-way, the server stopped) would stay forever, so the
server prunes stages that are old and that no job names.
"""

import os
import shutil
import tempfile
import time

STAGES = ".uploads"
"""The stage root, inside the jobs folder (so a job can `os.replace` a stage into its folder)."""

STAGE_MAX_AGE_S = 24 * 3600
"""A stage no job names is removed once it is this old (an upload in progress is younger)."""


def new_stage(jobs_dir, prefix="", min_free_mb=0):
    """A fresh, empty stage folder `<jobs>/.uploads/<prefix><random>` for one request's upload.

    Raises DiskFullError (nothing created) when the disk has less than `min_free_mb` MiB free.
    """
    from .space import ensure_space

    ensure_space(jobs_dir, min_free_mb)
    root = os.path.join(jobs_dir, STAGES)
    os.makedirs(root, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=root)


def adopt_stage(stage, dst):
    """Move an upload stage to `dst` inside the job folder, once: a resumed job finds it there.

    Returns True when `dst` holds the upload (moved now or earlier).
    """
    if stage and os.path.isdir(stage) and not os.path.exists(dst):
        os.replace(stage, dst)
    return os.path.isdir(dst)


def prune_stages(store, max_age_s=STAGE_MAX_AGE_S, now=None):
    """Remove old stage folders that no job's params name; return the removed paths."""
    root = os.path.join(store.jobs_dir, STAGES)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    now = time.time() if now is None else now
    named = set()
    for job in store.list():
        stage = (job.params or {}).get("upload_dir")
        if stage:
            named.add(os.path.realpath(stage))
    removed = []
    for name in names:
        path = os.path.join(root, name)
        try:
            age = now - os.lstat(path).st_mtime
        except FileNotFoundError:
            continue
        if age > max_age_s and os.path.realpath(path) not in named:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
            removed.append(path)
    return removed
