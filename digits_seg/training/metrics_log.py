"""metrics.jsonl: one JSON object per logged point, appended while training runs.

Readers (the web page, the CLI) may read while the trainer writes, so a partial last line
is expected and skipped. On resume the file is cut back to the snapshot's iteration so the
curves continue from where the weights are, with no points from the lost work.
"""

import json
import os

from ..fsutil import write_bytes_atomic

METRICS_FILE = "metrics.jsonl"
"""Name of the metrics log inside a model job folder."""


def metrics_path(job_dir):
    return os.path.join(job_dir, METRICS_FILE)


def append_metrics(job_dir, record):
    """Append one record as a single line and flush it (one write call, so lines do not interleave)."""
    line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
    with open(metrics_path(job_dir), "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()


def read_metrics(job_dir, kind=None):
    """Every complete record (optionally only `type == kind`); a partial or corrupt last line is skipped."""
    path = metrics_path(job_dir)
    if not os.path.exists(path):
        return []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    out = []
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            # A partial last line (writer mid-write) or a line cut by a killed worker.
            continue
        if isinstance(rec, dict) and (kind is None or rec.get("type") == kind):
            out.append(rec)
    return out


def truncate_metrics(job_dir, max_iteration):
    """Keep only records up to `max_iteration` (resume from a snapshot), rewriting the file atomically."""
    path = metrics_path(job_dir)
    if not os.path.exists(path):
        return 0
    kept = [r for r in read_metrics(job_dir) if int(r.get("iteration", 0)) <= max_iteration]
    data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept)
    write_bytes_atomic(path, data.encode("utf-8"))
    return len(kept)


def curves(records):
    """Columns for charts: {"train": {"iteration": [...], "loss": [...], ...}, "val": {...}}."""
    out = {"train": {}, "val": {}}
    keys = {
        "train": ("iteration", "epoch", "loss", "lr", "images_per_s"),
        "val": ("iteration", "epoch", "loss", "pixel_acc", "mean_acc", "mean_iou", "fw_iou"),
    }
    for kind, names in keys.items():
        rows = [r for r in records if r.get("type") == kind]
        for name in names:
            out[kind][name] = [r.get(name) for r in rows]
    return out
