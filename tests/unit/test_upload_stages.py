"""Abandoned upload stages are pruned; stages a job still names, and fresh ones, are kept."""

import os
import time

from digits_seg.jobs.store import JobStore
from digits_seg.uploads import STAGES, prune_stages


def test_only_old_stages_no_job_names_are_removed(tmp_path):
    store = JobStore(str(tmp_path))
    root = tmp_path / STAGES
    for name in ("named", "orphan", "fresh"):
        (root / name / "data").mkdir(parents=True)
        (root / name / "data" / "a.png").write_bytes(b"x")
    store.create("dataset", "queued with an upload", {"upload_dir": str(root / "named")})
    old = time.time() - 3 * 24 * 3600
    for name in ("named", "orphan"):
        os.utime(root / name, (old, old))
    removed = prune_stages(store, max_age_s=24 * 3600)
    assert removed == [str(root / "orphan")]
    assert sorted(os.listdir(root)) == ["fresh", "named"]
    assert prune_stages(store, max_age_s=24 * 3600) == []


def test_no_stage_folder_is_fine(tmp_path):
    assert prune_stages(JobStore(str(tmp_path))) == []
