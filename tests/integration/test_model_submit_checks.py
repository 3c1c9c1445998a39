"""POST /models.json: every problem in one answer, limits of issue 13, and nothing written when refused."""

import os
import socket

from digits_seg.jobs.queue import advertise_worker, connect
from tests.conftest import synthcity_dataset_job


def job_folders(settings):
    return sorted(n for n in os.listdir(settings.jobs_dir) if not n.startswith("."))


def test_refusals_list_every_problem_and_write_nothing(settings, client):
    r = client.post("/models.json", json={"name": "x" * 201, "epochs": True, "batch_size": 10**9, "crop_size": 16384,
                                          "base_lr": "0.1,x", "network": "tiny-fcn"})
    assert r.status_code == 400
    err = r.get_json()["error"]
    fields = [e["field"] for e in err["errors"]]
    assert set(fields) == {"dataset_id", "name", "epochs", "batch_size", "crop_size", "base_lr"}
    assert (err["field"], err["message"]) == (fields[0], err["errors"][0]["message"])
    by_field = {e["field"]: e for e in err["errors"]}
    assert by_field["batch_size"] == {"field": "batch_size", "label": "Batch size",
                                      "message": "Batch size must be at most 1024, got 1000000000"}
    assert job_folders(settings) == []
    # a lone surrogate in a name is refused (at the request's edge or by the declaration), nothing written
    r = client.post("/models.json", json={"name": "\ud800", "network": "tiny-fcn"})
    assert r.status_code == 400 and "surrogate" in r.get_json()["error"]["message"]
    assert job_folders(settings) == []
    assert client.get("/").status_code == 200


def test_sources_devices_and_sweeps_are_checked_at_submit(settings, client):
    ds = synthcity_dataset_job(settings, os.path.join(settings.resolved_data_roots[0], "src"), 6, (32, 32), seed=1)
    before = job_folders(settings)
    base = {"dataset_id": ds, "network": "tiny-fcn", "epochs": 1}
    conn = connect(settings.redis_url)
    host = socket.gethostname()
    advertise_worker(conn, "%s.cpu.1" % host, {"name": "%s.cpu.1" % host, "host": host, "pid": 1, "gpu": None})

    r = client.post("/models.json", json=dict(base, network_kind="previous", previous_job=ds, device="cuda:99"))
    assert r.status_code == 400
    by_field = {e["field"]: e["message"] for e in r.get_json()["error"]["errors"]}
    assert "%s is a dataset job, not a trained model" % ds in by_field["previous_job"]
    assert "no worker has GPU 99" in by_field["device"] and "CPU on %s" % host in by_field["device"]
    r = client.post("/models.json", json=dict(base, network_kind="pretrained", pretrained_job="20990101-000000-abcd"))
    assert "does not exist" in r.get_json()["error"]["errors"][0]["message"]
    # a previous model's snapshot that does not exist: refused now, not when the job starts
    from digits_seg.jobs.job import JobState
    from digits_seg.jobs.store import JobStore

    store = JobStore(settings.jobs_dir)
    old = store.create("model", "old run", {"dataset_id": ds}).id
    store.set_state(old, JobState.DONE)
    open(os.path.join(store.job_dir(old), "snapshot_iter_14.h5"), "wb").close()  # listed even when unreadable
    before = job_folders(settings)
    r = client.post("/models.json", json=dict(base, network_kind="previous", previous_job=old, previous_snapshot="999"))
    err = r.get_json()["error"]
    assert r.status_code == 400 and err["field"] == "previous_snapshot" and "(choose best, last or an iteration: 14)" \
        in err["message"]
    lrs = ",".join("%g" % (0.001 * (i + 1)) for i in range(200))
    r = client.post("/models.json", json=dict(base, base_lr=lrs, batch_size="1,2,3,4,5"))
    assert r.status_code == 400 and "1000 jobs" in r.get_json()["error"]["message"]
    assert job_folders(settings) == before

    # a GPU job on a CPU-only server is queued, with a warning saying why it will wait
    r = client.post("/models.json", json=dict(base, device="gpu"))
    assert r.status_code == 201 and "No GPU worker is running" in r.get_json()["warnings"][0]
