"""Integration: a model trained on a resized dataset predicts new images at the training scale.

A SynthCity dataset of 96×72 scenes is created with `resize 48x36` (squash), a tiny-fcn is
trained on it in-process, and a 96×72 source image is predicted through the CLI, the web
one-image API and a test-many job. Each must equal what a user would do by hand: resize the
image bilinearly to 48×36 (Pillow, as creation does), run the net, upsample the class ids
back to 96×72 with nearest neighbour — computed here with the compiled net and Pillow, not
with the predictor.
"""

import base64
import io
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from digits_seg.cli import main as cli_main
from digits_seg.config import load_settings
from digits_seg.inference.batch import infer_many
from digits_seg.inference.batch import validate_params as infer_params
from digits_seg.inference.predictor import Predictor
from digits_seg.jobs.job import JobState
from digits_seg.jobs.store import JobStore
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.weights import load_weights
from tests.conftest import build_dataset, train_tiny_model

SOURCE = (96, 72)
TRAINED = (48, 36)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from digits_seg.datasets import synthcity
    from digits_seg.datasets.params import validate_params as dataset_params

    root = tmp_path_factory.mktemp("geometry")
    jobs = str(root / "jobs")
    store = JobStore(jobs)
    settings = load_settings({"jobs_dir": jobs, "data_roots": str(root)}, environ={})
    src = str(root / "src")
    synthcity.generate(src, 16, size=SOURCE, seed=21)
    params = dataset_params({"images": os.path.join(src, "images"), "labels": os.path.join(src, "labels"),
                             "classes_file": os.path.join(src, "classes.txt"), "val_pct": 25,
                             "resize": "%dx%d" % TRAINED, "resize_mode": "squash"}, settings)
    ds = store.create("dataset", "resized", params)
    store.set_state(ds.id, JobState.RUNNING)
    build_dataset(settings, store.job_dir(ds.id), params)
    store.set_state(ds.id, JobState.DONE)
    model_id = train_tiny_model(store, ds.id, "tiny on resized", epochs=2, mean_subtraction="none")
    image = sorted(os.listdir(os.path.join(src, "images")))[0]
    return {"jobs": jobs, "dataset": ds.id, "model": model_id, "dir": store.job_dir(model_id),
            "image": os.path.join(src, "images", image), "root": str(root)}


def by_hand(model_dir, path):
    """Resize → forward → argmax → nearest upsample, with the compiled net and Pillow only."""
    with open(os.path.join(model_dir, "network.prototxt")) as f:
        net = compile_net(f.read(), phase="deploy", include_loss=False, input_shape=(3, TRAINED[1], TRAINED[0])).eval()
    load_weights(net, os.path.join(model_dir, "best.h5"))
    small = np.asarray(Image.open(path).convert("RGB").resize(TRAINED, Image.BILINEAR))
    x = torch.from_numpy(small.astype(np.float32).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        ids = net(x)[net.score_blob].argmax(1)[0].numpy().astype(np.uint8)
    return np.asarray(Image.fromarray(ids).resize(SOURCE, Image.NEAREST))


def test_training_records_the_dataset_resize(trained):
    with open(os.path.join(trained["dir"], "preprocess.json")) as f:
        rec = json.load(f)
    assert rec["resize"] == list(TRAINED) and rec["resize_mode"] == "squash"


def test_cli_infer_predicts_at_the_training_scale(trained, tmp_path, capsys):
    want = by_hand(trained["dir"], trained["image"])
    assert len(np.unique(want)) > 1, "the model should predict several classes (else the test proves little)"
    out = tmp_path / "out"
    assert cli_main(["infer", "--jobs-dir", trained["jobs"], "--model", trained["model"], trained["image"],
                     "--out", str(out)]) == 0
    stem = os.path.splitext(os.path.basename(trained["image"]))[0]
    got = np.asarray(Image.open(out / (stem + "_mask.png")))
    assert got.shape == (SOURCE[1], SOURCE[0])
    assert (got == want).all()
    summary = json.loads((out / "summary.json").read_text())
    assert "scaled to 48×36" in summary["images"][0]["fit"]
    # Native size in tiles stays available, and says so.
    assert cli_main(["infer", "--jobs-dir", trained["jobs"], "--model", trained["model"], trained["image"],
                     "--out", str(tmp_path / "tiles"), "--fit", "tiles"]) == 0
    tiles = json.loads((tmp_path / "tiles" / "summary.json").read_text())
    assert "sliding tiles of 48×36" in tiles["images"][0]["fit"]


def test_model_without_resize_record_reads_its_dataset(trained, tmp_path):
    """Models trained before preprocess.json carried `resize` find it in their dataset's dataset.json."""
    jobs = tmp_path / "jobs"
    for key in ("dataset", "model"):
        shutil.copytree(os.path.join(trained["jobs"], trained[key]), jobs / trained[key])
    pre = jobs / trained["model"] / "preprocess.json"
    rec = json.loads(pre.read_text())
    del rec["resize"], rec["resize_mode"]
    pre.write_text(json.dumps(rec))
    p = Predictor.from_model_dir(str(jobs / trained["model"]))
    image = np.asarray(Image.open(trained["image"]).convert("RGB"))
    mask, fit = p.run(image)
    assert fit.mode == "dataset" and tuple(fit.scaled) == TRAINED
    assert (mask == by_hand(trained["dir"], trained["image"])).all()
    whole, fit = p.run(image, fit="whole")
    assert fit.mode == "whole" and whole.shape == mask.shape


def test_web_one_image_and_test_many_use_the_training_scale(trained, settings, client):
    for key in ("dataset", "model"):
        shutil.copytree(os.path.join(trained["jobs"], trained[key]), os.path.join(settings.jobs_dir, trained[key]))
    want = by_hand(trained["dir"], trained["image"])
    with open(trained["image"], "rb") as f:
        resp = client.post("/models/%s/infer.json" % trained["model"], headers={"X-Requested-With": "digits-seg"},
                           content_type="multipart/form-data", data={"image": (io.BytesIO(f.read()), "scene.png")})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["fit"]["mode"] == "dataset" and "scaled to 48×36" in body["fit"]["text"]
    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["ids_png"]))))
    assert (got == want).all()

    job_dir = os.path.join(settings.jobs_dir, "many")
    os.makedirs(job_dir)
    params = infer_params({"source": "paths", "paths": trained["image"]},
                          load_settings({"jobs_dir": settings.jobs_dir, "data_roots": trained["root"]}, environ={}))
    infer_many(job_dir, params, on_progress=lambda f, m: None, should_stop=lambda: False, log=lambda t: None,
               model_dir=os.path.join(settings.jobs_dir, trained["model"]))
    with open(os.path.join(job_dir, "results.json")) as f:
        results = json.load(f)
    entry = results["images"][0]
    assert "scaled to 48×36" in entry["fit"] and results["dataset_resize"]["size"] == list(TRAINED)
    mask = np.asarray(Image.open(os.path.join(job_dir, entry["mask"])))
    assert (mask == want).all()


def test_finished_training_job_prepares_onnx_runtime_inference(trained, tmp_path, monkeypatch):
    """A model job run by the task runner ends with a verified ONNX graph that CPU inference then uses."""
    from digits_seg.jobs.tasks import run_job

    jobs = tmp_path / "jobs"
    shutil.copytree(os.path.join(trained["jobs"], trained["dataset"]), jobs / trained["dataset"])
    store = JobStore(str(jobs))
    with open(os.path.join(trained["dir"], "job.json")) as f:
        params = dict(json.load(f)["params"], epochs=1)
    job = store.create("model", "exported at the end", params)
    monkeypatch.setenv("DIGITS_SEG_ONNX_INFERENCE", "1")
    assert run_job(job.id, str(jobs)) == {"state": "done"}
    model_dir = store.job_dir(job.id)
    with open(os.path.join(model_dir, "log.txt")) as f:
        assert "CPU inference will run in ONNX Runtime" in f.read()
    p = Predictor.from_model_dir(model_dir)
    assert p.engine == "onnxruntime"
    image = np.asarray(Image.open(trained["image"]).convert("RGB"))
    torch_mask = Predictor.from_model_dir(model_dir, backend="torch").predict(image)
    assert (p.predict(image) == torch_mask).mean() > 0.999


def test_onnx_packages_are_installed_by_default():
    """ONNX export and ONNX Runtime inference work after a plain `pip install -e .` (not an extra)."""
    import ast

    with open(os.path.join(os.path.dirname(__file__), "..", "..", "setup.py")) as f:
        tree = ast.parse(f.read())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    kw = {k.arg: k.value for k in call.keywords}
    required = {ast.literal_eval(e).split(">")[0].split("=")[0] for e in kw["install_requires"].elts}
    assert {"onnx", "onnxruntime", "onnxscript"} <= required
    extras = ast.literal_eval(kw["extras_require"])
    assert not any(p.startswith("onnx") for reqs in extras.values() for p in reqs)


def test_train_now_also_prepares_onnx_runtime_inference(trained, tmp_path, monkeypatch, capsys):
    """`train --now` ends like a queued job: with the verified graph CPU inference runs."""
    jobs = tmp_path / "jobs"
    shutil.copytree(os.path.join(trained["jobs"], trained["dataset"]), jobs / trained["dataset"])
    monkeypatch.setenv("DIGITS_SEG_ONNX_INFERENCE", "1")
    assert cli_main(["train", "--jobs-dir", str(jobs), "--dataset", trained["dataset"], "--network", "tiny-fcn",
                     "--epochs", "1", "--batch-size", "4", "--mean", "none", "--now", "--name", "now"]) == 0
    model = next(j for j in JobStore(str(jobs)).list() if j.kind == "model")
    assert Predictor.from_model_dir(JobStore(str(jobs)).job_dir(model.id)).engine == "onnxruntime"
