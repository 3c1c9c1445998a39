"""Shared pieces of the reliability suite: raw HTTP, a disk snapshot, and fabricated job folders.

Raw HTTP (http.client) because the bad inputs must reach the server unchanged: no client
library may normalise `..`, re-encode a NUL or fix a Host header on our behalf.
"""

import http.client
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

IGNORED_TOP = {".redis", ".serve.json", ".serve.lock", ".secret_key"}
"""Entries of a jobs dir that change by themselves (the queue's dump, serve's own files)."""


def call(url, method, path, body=None, headers=None, timeout=30):
    """Send one raw request; return (status, headers, text)."""
    host = url.split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=bool(headers and "Host" in headers), skip_accept_encoding=True)
        hdrs = {"Accept": "application/json"}
        hdrs.update(headers or {})
        if body is not None:
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def json_body(text):
    return text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text


def multipart(fields=(), files=()):
    """(body, content type) of a multipart form: fields [(name, value)], files [(field, filename, bytes)]."""
    boundary = "----digitsseg7MA4YWxkTrZu0gW"
    out = io.BytesIO()
    for name, value in fields:
        out.write(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (boundary, name)).encode())
        out.write(value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value)
        out.write(b"\r\n")
    for field, filename, data in files:
        out.write(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                   "Content-Type: application/octet-stream\r\n\r\n" % (boundary, field, filename))
                  .encode("utf-8", "surrogatepass"))
        out.write(data)
        out.write(b"\r\n")
    out.write(("--%s--\r\n" % boundary).encode())
    return out.getvalue(), "multipart/form-data; boundary=" + boundary


def disk_state(jobs_dir):
    """{relative path: (size, mtime_ns)} of everything under `jobs_dir` but the queue's own files."""
    state = {}
    for root, dirs, files in os.walk(jobs_dir):
        rel_root = os.path.relpath(root, jobs_dir)
        if rel_root == ".":
            dirs[:] = [d for d in dirs if d not in IGNORED_TOP]
        for name in dirs + files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if rel in IGNORED_TOP or rel == ".uploads" or name == ".heartbeat":
                continue
            st = os.lstat(os.path.join(root, name))
            state[rel] = (st.st_size, st.st_mtime_ns) if name in files else (0, 0)
    return state


def png_bytes(array, **save):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **save)
    return buf.getvalue()


def write_job(store, kind, name, params=None, state="done"):
    """A job folder as a worker leaves it (job.json only; callers add files)."""
    from digits_seg.jobs.job import JobState

    job = store.create(kind, name, params or {})
    if state != "queued":
        store.set_state(job.id, JobState.RUNNING)
        store.set_state(job.id, JobState(state))
    return job


def build_tiny_model(root):
    """A jobs dir with a finished SynthCity dataset (8 pairs, 32x32) and a tiny-fcn trained one epoch on it."""
    from digits_seg.config import load_settings
    from digits_seg.datasets.info import DatasetInfo
    from digits_seg.jobs.job import JobState
    from digits_seg.jobs.store import JobStore
    from digits_seg.training.params import validate_params
    from digits_seg.training.trainer import train
    from tests.conftest import synthcity_dataset_job

    jobs = str(root / "jobs")
    store = JobStore(jobs)
    settings = load_settings({"jobs_dir": jobs, "data_roots": str(root)}, environ={})
    ds = store.get(synthcity_dataset_job(settings, str(root / "src"), 8, (32, 32), seed=3, val_pct=25))
    params = validate_params({"dataset_id": ds.id, "network": "tiny-fcn", "network_kind": "standard", "epochs": 1,
                              "batch_size": 2, "base_lr": 0.01, "solver_type": "Adam", "lr_policy": "fixed",
                              "loader_workers": 0, "seed": 1, "device": "cpu"},
                             None, DatasetInfo.load(store.job_dir(ds.id)))
    model = store.create("model", "tiny", params)
    train(store.job_dir(model.id), params, on_progress=lambda f, m: None, should_stop=lambda: False,
          log=lambda t: None, dataset_dir=store.job_dir(ds.id), resume=False, pretrained_dir=None, previous_dir=None)
    store.set_state(model.id, JobState.RUNNING)
    store.set_state(model.id, JobState.DONE)
    return {"jobs": jobs, "dataset": ds.id, "model": model.id}


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """Built once per session; modules copy its jobs dir."""
    return build_tiny_model(tmp_path_factory.mktemp("reliability-trained"))


def fabricate_extras(jobs_dir):
    """Add an inference job (with result files), a pretrained job and a model with a hostile symlink."""
    from digits_seg.jobs.store import JobStore

    store = JobStore(jobs_dir)
    inf = write_job(store, "inference", "test many", {"source": "upload"})
    d = store.job_dir(inf.id)
    os.makedirs(os.path.join(d, "images"))
    with open(os.path.join(d, "images", "0.png"), "wb") as f:
        f.write(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump({"images": [], "complete": True}, f)
    pre = write_job(store, "pretrained", "imported")
    with open(os.path.join(store.job_dir(pre.id), "labels.txt"), "w") as f:
        f.write("a\nb\n")
    hostile = write_job(store, "model", "with a link")
    prev = os.path.join(store.job_dir(hostile.id), "val_previews")
    os.makedirs(prev)
    os.symlink("/etc/passwd", os.path.join(prev, "leak.png"))
    os.symlink(store.job_dir(inf.id), os.path.join(prev, "other"))
    return {"inference": inf.id, "pretrained": pre.id, "hostile": hostile.id}
