"""Integration: train a tiny model for real, then test one / test many through the HTTP API.

A SynthCity dataset is created with `create_dataset` and a `tiny-fcn` model trained
in-process (module fixture, a few seconds); each test copies both job folders into the
test's jobs dir, so the app (real embedded Redis) and a real worker see ordinary jobs.
Masks returned by the API are compared with a direct forward pass of the same snapshot.
"""

import base64
import io
import os
import re
import shutil
import zipfile

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets.reader import SegmentationLMDB
from digits_seg.inference.batch import infer_many
from digits_seg.inference.predictor import Predictor
from digits_seg.jobs.store import JobStore
from digits_seg.training.metrics_log import read_metrics
from tests.conftest import synthcity_dataset_job, train_tiny_model, wait_for

API = {"X-Requested-With": "digits-seg"}


def build_jobs(root, mean_subtraction="pixel"):
    """Jobs dir with a finished dataset job and a finished tiny-fcn model job trained on it."""
    jobs = str(root / "jobs")
    store = JobStore(jobs)
    settings = load_settings({"jobs_dir": jobs, "data_roots": str(root)}, environ={})
    ds = store.get(synthcity_dataset_job(settings, str(root / "src"), 24, (64, 48), seed=11, val_pct=25))
    model_id = train_tiny_model(store, ds.id, mean_subtraction=mean_subtraction)
    return {"jobs": jobs, "dataset": ds.id, "model": model_id, "src": str(root / "src"),
            "dir": store.job_dir(model_id), "dataset_dir": store.job_dir(ds.id)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return build_jobs(tmp_path_factory.mktemp("trained"))


@pytest.fixture
def model(trained, settings):
    for key in ("dataset", "model"):
        shutil.copytree(os.path.join(trained["jobs"], trained[key]), os.path.join(settings.jobs_dir, trained[key]))
    return {"id": trained["model"], "dir": os.path.join(settings.jobs_dir, trained["model"]),
            "dataset_dir": os.path.join(settings.jobs_dir, trained["dataset"]), "src": trained["src"]}


def _png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _decode(b64):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_val_split_metrics_match_training(model, tmp_path):
    """infer_many on the validation split reproduces the trainer's best validation mean IoU."""
    job = tmp_path / "job"
    job.mkdir()
    summary = infer_many(str(job), {"source": "val", "snapshot": "best"}, on_progress=lambda f, m: None,
                         should_stop=lambda: False, log=lambda t: None, model_dir=model["dir"], settings=None)
    val = read_metrics(model["dir"], "val")
    best = max(r["mean_iou"] for r in val)
    assert summary["with_gt"] == len(SegmentationLMDB(os.path.join(model["dataset_dir"], "val_db")))
    assert summary["mean_iou"] == pytest.approx(best, abs=1e-4)
    assert summary["pixel_acc"] > 0.2


def test_mean_image_model_metrics_match_training(tmp_path):
    """A model trained with the dataset's mean image: inference subtracts the same image."""
    jobs = build_jobs(tmp_path / "m", mean_subtraction="image")
    pre = Predictor.from_model_dir(jobs["dir"]).preprocess
    assert pre.mean_image is not None and pre.mean_image.shape == (48, 64, 3)
    job = tmp_path / "job"
    job.mkdir()
    summary = infer_many(str(job), {"source": "val"}, on_progress=lambda f, m: None, should_stop=lambda: False,
                         log=lambda t: None, model_dir=jobs["dir"], settings=None)
    best = max(r["mean_iou"] for r in read_metrics(jobs["dir"], "val"))
    assert summary["mean_iou"] == pytest.approx(best, abs=1e-4)


def test_infer_json_upload_matches_direct_forward(client, model):
    img = np.asarray(Image.open(os.path.join(model["src"], "images", sorted(os.listdir(
        os.path.join(model["src"], "images")))[0])).convert("RGB"))
    resp = client.post("/models/%s/infer.json" % model["id"], headers=API,
                       data={"image": (io.BytesIO(_png(img)), "scene.png")}, content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    want = Predictor.from_model_dir(model["dir"]).predict(img)
    mask = _decode(body["mask_png"])
    assert (mask == want).all() and (_decode(body["ids_png"]) == want).all()
    assert body["width"] == 64 and body["height"] == 48
    assert sum(body["pixel_counts"].values()) == 64 * 48
    assert {r["name"] for r in body["histogram"] if r["pixels"]} == {
        body["classes"][i] for i in np.unique(want)}
    assert body["timing"]["server_s"] >= body["timing"]["predict_s"] > 0
    # downloads by URL: palette mask, cut-out keeping one class
    r = client.get(body["urls"]["mask"])
    png = Image.open(io.BytesIO(r.data))
    assert png.mode == "P" and (np.asarray(png) == want).all()
    keep = int(np.bincount(want.ravel()).argmax())
    cut = np.asarray(Image.open(io.BytesIO(client.get(body["urls"]["cutout"] + "?keep=%d" % keep).data)))
    assert cut.shape == (48, 64, 4) and ((cut[..., 3] == 255) == (want == keep)).all()
    assert client.get(body["urls"]["overlay"]).status_code == 200
    assert "error" not in body["urls"]


def test_infer_json_val_pick_has_ground_truth_and_errors_are_json(client, model, settings):
    resp = client.post("/models/%s/infer.json" % model["id"], json={"val_index": 1, "encode": "url"})
    body = resp.get_json()
    assert resp.status_code == 200, body
    image, label = SegmentationLMDB(os.path.join(model["dataset_dir"], "val_db"))[1]
    assert body["scores"]["pixel_acc"] == pytest.approx(
        float((Predictor.from_model_dir(model["dir"]).predict(image) == label)[label != 255].mean()))
    assert "mask_png" not in body and client.get(body["urls"]["error"]).status_code == 200
    bad = client.post("/models/%s/infer.json" % model["id"], json={"path": "/etc/hostname"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "path"
    gone = client.post("/models/%s/infer.json" % model["id"], json={"path": settings.data_roots[0] + "/no_such.png"})
    assert gone.status_code == 400 and gone.get_json()["error"]["message"].endswith("no_such.png does not exist")
    missing = client.post("/models/%s/infer.json" % model["id"], json={"snapshot": "999", "val_index": 0})
    assert missing.status_code == 404 and missing.get_json()["error"]["field"] == "snapshot"
    page = client.get("/models/%s/infer" % model["id"])
    assert page.status_code == 200 and b'id="infer-form"' in page.data and b"viewer.js" in page.data
    # the form without JavaScript: an HTML page with the viewer filled in
    html = client.post("/models/%s/infer" % model["id"], data={"val_index": "2"}, headers=API)
    assert html.status_code == 200 and b"data-viewer=" in html.data and b"data:image/png;base64" in html.data


def test_export_downloads(client, model, tmp_path):
    page = client.get("/models/%s" % model["id"]).get_data(as_text=True)  # the README's "model page's buttons"
    assert 'action="/models/%s/export/onnx"' % model["id"] in page and "/export/torchscript" in page
    table = page[page.index('id="snapshot-table"'):]
    assert "(best val mIoU)" in table and not re.search(r"<td>\d+\.0</td>", table[:table.index("</table>")])  # 3, not 3.0
    # The button: POST builds the file once into the model folder, then the GET downloads that copy.
    built = client.post("/models/%s/export/onnx" % model["id"], headers=API)
    assert built.status_code == 303 and built.headers["Location"].endswith("/export/onnx?snapshot=best")
    kept = os.listdir(os.path.join(model["dir"], "exports"))
    assert [n for n in kept if n.endswith(".onnx") and not n.endswith(".net.onnx")] == \
        ["best-%d.onnx" % int(os.stat(os.path.join(model["dir"], "best.h5")).st_mtime)]
    r = client.get("/models/%s/export/onnx" % model["id"])
    assert r.status_code == 200
    path = tmp_path / "m.onnx"
    path.write_bytes(r.data)
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    direct = Predictor.from_model_dir(model["dir"], backend="torch")
    for seed, (h, w) in enumerate(((33, 47), (48, 64), (71, 52))):  # three sizes, odd ones included
        img = np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)
        scores = sess.run(None, {"image": img.transpose(2, 0, 1)[None].astype(np.float32)})[0]
        assert scores.shape[-2:] == (h, w)
        assert (scores.argmax(1)[0] == direct.predict(img, tile=0)).all()
    assert client.get("/models/%s/export/torchscript" % model["id"]).status_code == 200  # built on the fly
    assert client.get("/models/%s/export/tflite" % model["id"]).status_code == 404


def test_test_many_job_through_api_and_worker(client, model, settings, start_worker):
    resp = client.post("/inference.json", json={"model_id": model["id"], "source": "val"})
    assert resp.status_code == 201, resp.get_json()
    job_id = resp.get_json()["id"]
    start_worker()
    wait_for(lambda: client.get("/jobs/%s/status.json" % job_id).get_json()["state"] in ("done", "error"),
             timeout=120, message="inference job to finish")
    data = client.get("/inference/%s.json?sort=worst&per_page=3" % job_id).get_json()
    assert data["state"] == "done", data.get("error")
    res = data["results"]
    assert res["complete"] and res["with_gt"] == res["count"] and res["aggregate"]["mean_iou"] is not None
    ious = [e["scores"]["mean_iou"] for e in data["images"]]
    assert ious == sorted(ious) and len(ious) == 3 and data["pages"] >= 2
    zf = zipfile.ZipFile(io.BytesIO(client.get(data["zip_url"]).data))
    assert "results.json" in zf.namelist() and any(n.startswith("masks/") for n in zf.namelist())
    first = data["images"][0]
    mask = np.asarray(Image.open(io.BytesIO(client.get(first["mask_url"]).data)))
    image, _ = SegmentationLMDB(os.path.join(model["dataset_dir"], "val_db"))[int(first["source"][4:-1])]
    assert (mask == Predictor.from_model_dir(model["dir"]).predict(image)).all()
    view = client.get(first["view_url"])
    assert view.status_code == 200 and b"data-viewer=" in view.data
    # previous / next walk the job's images in order
    order = [e["index"] for e in client.get("/inference/%s.json?per_page=200" % job_id).get_json()["images"]]
    nav = client.get("/inference/%s/view/%d.json" % (job_id, order[1])).get_json()["nav"]
    assert nav["previous"].endswith("/view/%d" % order[0]) and nav["next"].endswith("/view/%d" % order[2])
    assert nav["position"] == 2 and nav["count"] == len(order)
    assert client.get("/inference/%s/view/%d.json" % (job_id, order[0])).get_json()["nav"]["previous"] is None
    cut = client.get("/inference/%s/render/%d/cutout.png?keep=0" % (job_id, first["index"]))
    assert Image.open(io.BytesIO(cut.data)).mode == "RGBA"
    html = client.get("/inference/%s?sort=worst" % job_id)
    assert html.status_code == 200 and b'id="results-grid"' in html.data
    assert client.get("/inference/%s/files/../job.json" % job_id).status_code == 404
    bad = client.post("/inference.json", json={"model_id": model["id"], "source": "folder", "folder": "/etc"})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "folder"
    # an uploaded list of server paths (under the data roots) creates a job too
    img_dir = os.path.join(settings.data_roots[0], "imgs")
    os.makedirs(img_dir)
    shutil.copy(os.path.join(model["src"], "images", sorted(os.listdir(os.path.join(model["src"], "images")))[0]),
                os.path.join(img_dir, "a.png"))
    listed = client.post("/inference.json", headers=API, content_type="multipart/form-data", data={
        "model_id": model["id"], "list_file": (io.BytesIO(os.path.join(img_dir, "a.png").encode()), "list.txt")})
    assert listed.status_code == 201, listed.get_json()
    wait_for(lambda: client.get("/jobs/%s/status.json" % listed.get_json()["id"]).get_json()["state"] == "done",
             timeout=60, message="list job to finish")
    assert client.get("/inference/%s.json" % listed.get_json()["id"]).get_json()["results"]["count"] == 1
