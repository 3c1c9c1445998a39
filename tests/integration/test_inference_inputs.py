"""Test images reach the network as training images did, and oversized ones are refused from the header.

A dataset of 12-bit greyscale PNGs (`I;16`, values 0..4095, as microscopy and industrial
cameras write them) is created with the real `create_dataset` and a `tiny-fcn` trained on it
in-process (module fixture). Dataset creation with `--sixteen-bit full` stores a 16-bit image as value >> 8; Test one
image (upload and server path), `digits-seg infer` and Test many must feed the network that
same array, which each test computes with numpy. Pillow's `convert("L")` clips at 255
instead: a 12-bit image became almost all white.

The pixel limit: a PNG whose header says 20000×20000 (99 bytes: the header is read first) is
refused with the upload's message when given as a server path, and by Test many and the CLI
with the job limit, before anything is decoded or written.
"""

import base64
import io
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from digits_seg.cli import main as cli_main
from digits_seg.config import load_settings
from digits_seg.datasets.params import validate_params as dataset_params
from digits_seg.datasets.reader import SegmentationLMDB
from digits_seg.fsutil import read_json
from digits_seg.inference.batch import RESULTS_FILE, infer_many
from digits_seg.inference.predictor import Predictor
from digits_seg.jobs.job import JobState
from digits_seg.jobs.store import JobStore
from digits_seg.web.app import create_app
from tests.conftest import build_dataset, train_tiny_model

API = {"X-Requested-With": "digits-seg"}
SIZE = 32


def twelve_bit_cells(root, count=8, seed=3):
    """12-bit greyscale cell images (`I;16` PNG) with class-index labels (0 background, 1 cell), CamVid-style names."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "labels"):
        os.makedirs(os.path.join(root, sub))
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(count):
        cy, cx, r = rng.integers(9, SIZE - 9), rng.integers(9, SIZE - 9), rng.integers(4, 8)
        cell = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img = (600 + 3000 * cell + rng.normal(0, 150, cell.shape)).clip(0, 4095).astype(np.uint16)
        Image.fromarray(img).save(os.path.join(root, "images", "cell_%03d.png" % i))
        Image.fromarray(cell.astype(np.uint8), "L").save(os.path.join(root, "labels", "cell_%03d_L.png" % i))
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("background\ncell\n")


def huge_png(width=20000, height=20000):
    """A valid PNG signature and IHDR claiming width×height, with a token IDAT: 99 bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("twelve")
    src = str(root / "src")
    twelve_bit_cells(src)
    jobs = str(root / "jobs")
    settings = load_settings({"jobs_dir": jobs, "data_roots": str(root)}, environ={})
    params = dataset_params({"images": os.path.join(src, "images"), "labels": os.path.join(src, "labels"),
                             "classes_file": os.path.join(src, "classes.txt"), "channels": "keep",
                             "val_pct": 25, "sixteen_bit": "full"}, settings)  # the ÷ 256 scale (bits: test_sixteen_bit)
    store = JobStore(jobs)
    ds = store.create("dataset", "cells", params)
    build_dataset(settings, store.job_dir(ds.id), params)
    for state in (JobState.RUNNING, JobState.DONE):
        store.set_state(ds.id, state)
    model = train_tiny_model(store, ds.id, epochs=2)
    return {"jobs": jobs, "dataset": ds.id, "model": model, "src": src}


@pytest.fixture
def model(trained, settings):
    for key in ("dataset", "model"):
        shutil.copytree(os.path.join(trained["jobs"], trained[key]), os.path.join(settings.jobs_dir, trained[key]))
    data = os.path.join(settings.resolved_data_roots[0], "cells")
    shutil.copytree(os.path.join(trained["src"], "images"), data)
    return {"id": trained["model"], "dir": os.path.join(settings.jobs_dir, trained["model"]),
            "dataset_dir": os.path.join(settings.jobs_dir, trained["dataset"]), "data": data}


def expected_input(path):
    """What dataset creation stores for a 16-bit greyscale image: its value divided by 256, as uint8."""
    raw = np.asarray(Image.open(path)).astype(np.uint32)
    assert raw.max() > 255  # really 12-bit
    return (raw // 256).astype(np.uint8)


def _ids(body):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["ids_png"]))))


def test_twelve_bit_image_reaches_the_network_as_training_stored_it(client, model, settings, tmp_path, monkeypatch):
    names = sorted(os.listdir(model["data"]))
    want = {n: expected_input(os.path.join(model["data"], n)) for n in names}
    # what training was fed: every stored record is one of the numpy-scaled images, exactly
    stored = [img[:, :, 0] for split in ("train_db", "val_db")
              for img, _ in SegmentationLMDB(os.path.join(model["dataset_dir"], split))]
    assert len(stored) == len(names)
    assert all(any(np.array_equal(s, w) for w in want.values()) for s in stored)

    name = names[0]
    path = os.path.join(model["data"], name)
    predictor = Predictor.from_model_dir(model["dir"])
    assert predictor.preprocess.channels == 1
    mask = predictor.predict(want[name])
    with open(path, "rb") as f:
        data = f.read()
    up = client.post("/models/%s/infer.json" % model["id"], headers=API, content_type="multipart/form-data",
                     data={"image": (io.BytesIO(data), name)})
    by_path = client.post("/models/%s/infer.json" % model["id"], json={"path": path})
    for resp in (up, by_path):
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        seen = np.asarray(Image.open(io.BytesIO(client.get(body["urls"]["input"]).data)))
        assert np.array_equal(seen[:, :, 0], want[name])  # the input as the network saw it (old: clipped, 94% = 255)
        assert np.array_equal(_ids(body), mask)

    monkeypatch.setenv("DIGITS_SEG_JOBS_DIR", settings.jobs_dir)
    out = tmp_path / "out"
    assert cli_main(["infer", "--model", model["id"], path, "--out", str(out), "--backend", "torch"]) == 0
    assert np.array_equal(np.asarray(Image.open(out / (name[:-4] + "_mask.png"))), mask)


def test_server_path_images_are_refused_from_the_header(client, model, settings, tmp_path, monkeypatch, capsys):
    root = settings.resolved_data_roots[0]
    huge = os.path.join(root, "huge.png")
    with open(huge, "wb") as f:
        f.write(huge_png())
    url = "/models/%s/infer.json" % model["id"]
    upload = client.post(url, headers=API, content_type="multipart/form-data",
                         data={"image": (io.BytesIO(huge_png()), "huge.png")})
    by_path = client.post(url, json={"path": huge})
    assert upload.status_code == by_path.status_code == 400
    up_msg, path_msg = upload.get_json()["error"]["message"], by_path.get_json()["error"]["message"]
    assert up_msg.startswith("huge.png is 20000×20000 pixels (400.0 Mpx); images above 4.2 Mpx")
    assert path_msg == huge + up_msg[len("huge.png"):]  # the same words, the same setting
    assert by_path.get_json()["error"]["field"] == "path"

    # an image Pillow would decode happily (48×48) over a lowered limit: refused by path too, not predicted
    small = os.path.join(root, "small.png")
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(small)
    low = create_app(settings.replace(max_image_pixels=32 * 32)).test_client()
    r = low.post(url, json={"path": small})
    assert r.status_code == 400 and "48×48" in r.get_json()["error"]["message"]
    assert "DIGITS_SEG_MAX_IMAGE_PIXELS" in r.get_json()["error"]["message"]

    # test many over a folder: the huge image is one refused entry, the others are predicted
    folder = os.path.join(root, "mixed")
    os.makedirs(folder)
    shutil.copy(huge, folder)
    shutil.copy(os.path.join(model["data"], sorted(os.listdir(model["data"]))[0]), folder)
    job = tmp_path / "job"
    job.mkdir()
    summary = infer_many(str(job), {"source": "folder", "folder": folder}, on_progress=lambda f, m: None,
                         should_stop=lambda: False, log=lambda t: None, model_dir=model["dir"], settings=settings)
    assert summary["predicted"] == 1 and summary["errors"] == 1
    entry = next(e for e in read_json(str(job / RESULTS_FILE))["images"] if e.get("error"))
    assert entry["error"].startswith(os.path.join(folder, "huge.png") + " is 20000×20000 pixels")
    assert "DIGITS_SEG_MAX_JOB_IMAGE_PIXELS" in entry["error"]

    # the CLI checks every header before predicting: nothing is written for the good image either
    monkeypatch.setenv("DIGITS_SEG_JOBS_DIR", settings.jobs_dir)
    out = tmp_path / "out"
    assert cli_main(["infer", "--model", model["id"], folder, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "huge.png is 20000×20000 pixels" in err and "DIGITS_SEG_MAX_JOB_IMAGE_PIXELS" in err
    assert not out.exists() or not os.listdir(out)


def test_float_test_image_is_refused_not_clipped(client, model):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).random((32, 32)).astype(np.float32), "F").save(buf, "TIFF")
    r = client.post("/models/%s/infer.json" % model["id"], headers=API, content_type="multipart/form-data",
                    data={"image": (io.BytesIO(buf.getvalue()), "cells.tif")})
    err = r.get_json()["error"]
    assert r.status_code == 400 and "cells.tif is a 32-bit floating-point image" in err["message"], err
