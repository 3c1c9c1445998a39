"""Model pages and API with the Flask client; a real worker trains, is SIGKILLed, resumes and is aborted."""

import json
import os
import signal

import pytest

from digits_seg.jobs.job import JobState
from digits_seg.jobs.store import JobStore
from digits_seg.training.metrics_log import read_metrics
from digits_seg.training.snapshots import list_snapshots
from tests.conftest import synthcity_dataset_job, wait_for

JSON = {"Accept": "application/json"}


def make_dataset(settings, count=40, size=64):
    """A finished dataset job (SynthCity through the real create_dataset)."""
    src = os.path.join(settings.resolved_data_roots[0], "src")
    return synthcity_dataset_job(settings, src, count, (size, size), seed=2)


def test_form_create_sweep_preview_and_validate(settings, client):
    ds = make_dataset(settings, count=12, size=32)
    page = client.get("/models/new?dataset=%s" % ds)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="tiny-fcn"' in html and 'id="lr-preview"' in html and ds in html

    r = client.post("/models.json", json={"dataset_id": ds, "network": "tiny-fcn", "base_lr": "0.01, 0.001",
                                          "batch_size": "2,4", "epochs": 1, "device": "cpu"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert len(body["jobs"]) == 4
    job = client.get(body["url"] + ".json").get_json()
    assert job["kind"] == "model" and job["params"]["dataset_id"] == ds and job["queue"] == "cpu"
    assert job["model"]["curves"]["train"]["loss"] == [] and job["model"]["snapshots"] == []

    bad = client.post("/models.json", json={"dataset_id": ds, "network": "tiny-fcn", "base_lr": "-3"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "base_lr"
    form = client.post("/models", data={"dataset_id": ds, "network_kind": "standard", "network": "tiny-fcn",
                                        "epochs": "zero"}, headers={"X-Requested-With": "digits-seg"})
    assert form.status_code == 400 and "Epochs must be a whole number, got &#39;zero&#39;" in form.get_data(as_text=True)

    prev = client.get("/models/lr-preview.json?lr_policy=step&lr_step_size=50&lr_gamma=0.1&base_lr=0.1&epochs=10")
    d = prev.get_json()
    assert d["epoch"][0] == 0 and d["epoch"][-1] == 10 and d["lr"][0] == 0.1 and abs(d["lr"][-2] - 0.01) < 1e-12

    from digits_seg.networks.standard import standard_prototxt

    ok = client.post("/models/validate-network.json", json={"prototxt": standard_prototxt("tiny-fcn", 10),
                                                            "dataset_id": ds}).get_json()
    assert ok["ok"] and ok["input_shape"] == [3, 32, 32] and ok["total_params"] > 0
    assert [r["name"] for r in ok["layers"]][:2] == ["data", "label"]
    shipped = client.get("/models/standard/tiny-fcn.prototxt?dataset_id=%s" % ds)
    assert shipped.status_code == 200 and shipped.get_data(as_text=True) == standard_prototxt("tiny-fcn", 10)
    assert client.get("/models/standard/no-such-net.prototxt").status_code == 404
    broken = client.post("/models/validate-network.json",
                         json={"prototxt": "layer {\n name: 'a'\n type: 'Convolution'\n bottom: 'data'\n top: 'a' \n"})
    err = broken.get_json()["error"]
    assert err["message"] and err["field"] == "custom_network"


    # Submitting the same broken text is refused under the text box, not queued as a job that fails later.
    queued_before = len(client.get("/index.json").get_json()["models"])
    refused = client.post("/models.json", json={"dataset_id": ds, "network_kind": "custom", "epochs": 1,
                                                "custom_network": "layer {\n name: 'a'\n type: 'Convolution'\n"})
    assert refused.status_code == 400 and refused.get_json()["error"]["field"] == "custom_network"
    assert "line" in refused.get_json()["error"]["message"]
    assert len(client.get("/index.json").get_json()["models"]) == queued_before

    # The form posts both model selects; with "pretrained" chosen the previous-model select must not win:
    # the pretrained choice is the one checked (and a model job is not a pretrained model: refused at submit).
    fake_pretrained = body["jobs"][0]["id"]
    chose = client.post("/models.json", json={"dataset_id": ds, "network_kind": "pretrained", "epochs": 1,
                                              "previous_job": body["jobs"][1]["id"],
                                              "pretrained_job": fake_pretrained, "device": "cpu"})
    assert chose.status_code == 400, chose.get_json()
    err = chose.get_json()["error"]
    assert err["field"] == "pretrained_job" and "is a model job, not a pretrained model" in err["message"]
    assert len(client.get("/index.json").get_json()["models"]) == queued_before


@pytest.mark.slow
def test_worker_trains_survives_sigkill_resumes_and_aborts(settings, client, start_worker):
    ds = make_dataset(settings)
    r = client.post("/models.json", json={"dataset_id": ds, "network": "tiny-fcn", "epochs": 60, "batch_size": 4,
                                          "device": "cpu", "loader_workers": 0, "seed": 1, "log_interval": 2})
    assert r.status_code == 201, r.get_json()
    job_id, url = r.get_json()["id"], r.get_json()["url"]
    store = JobStore(settings.jobs_dir)
    job_dir = store.job_dir(job_id)
    worker = start_worker()
    wait_for(lambda: len(list_snapshots(job_dir)) >= 2, 120, message="two snapshots")
    worker.kill(signal.SIGKILL)
    wait_for(lambda: store.get(job_id).state == JobState.ERROR, 60, message="the job to be marked as lost")
    before = max(s["iteration"] for s in list_snapshots(job_dir))

    twin = client.get(url + ".json").get_json()
    curves = twin["model"]["curves"]
    assert curves["train"]["iteration"] and curves["val"]["mean_iou"]
    assert twin["model"]["snapshots"] and twin["model"]["per_class"]
    dl = client.get(twin["model"]["snapshots"][0]["caffemodel_url"])
    assert dl.status_code == 200 and len(dl.data) > 100
    assert client.get(twin["model"]["previews"][0]["url"]).status_code == 200

    assert client.post("/jobs/%s/resume.json" % job_id, json={}).status_code == 200
    start_worker()
    wait_for(lambda: max((s["iteration"] for s in list_snapshots(job_dir)), default=0) > before, 120,
             message="a snapshot after the resume")
    log = store.read_log(job_id)[0]
    assert "Resumed from snapshot_iter_" in log
    its = [p["iteration"] for p in read_metrics(job_dir, "train")]
    assert its == sorted(its) and len(its) == len(set(its)), "iterations restarted or repeated after resume"
    client.post("/jobs/%s/abort.json" % job_id, json={})
    wait_for(lambda: store.get(job_id).state == JobState.ABORTED, 60, message="the abort")
    assert list_snapshots(job_dir)
    page = client.get(url)
    assert page.status_code == 200 and b"chart-loss" in page.data
    assert json.loads(client.get(url + ".json").data)["state"] == "aborted"
