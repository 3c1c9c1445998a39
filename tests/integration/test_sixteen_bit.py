"""12-bit microscopy images keep their detail from dataset creation to every way of testing a model.

Fixture: a time-lapse named as microscopes export it (`t000_ch00.png`, masks `t000_ch00_mask.png`),
12-bit data in 16-bit greyscale PNGs (`I;16`, values up to 3962), built with the real
`create_dataset` and a `tiny-fcn` trained on it (20 epochs of 6 frames: enough for masks that tell the scales apart). Expected values are
computed here with numpy: 12 significant bits stored in 8 means value // 16 (value // 256, what
creation did before, keeps 16 grey levels). Test one (upload, path), Test many and
`digits-seg infer` must feed the network that same array; a 14-bit test image is refused, not
clipped; a model folder without the record keeps the old ÷ 256.
"""

import base64
import io
import json
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from digits_seg.cli import main as cli_main
from digits_seg.config import load_settings
from digits_seg.datasets.check import check_folders
from digits_seg.datasets.params import validate_params as dataset_params
from digits_seg.datasets.reader import SegmentationLMDB
from digits_seg.fsutil import read_json
from digits_seg.inference.batch import RESULTS_FILE, infer_many
from digits_seg.inference.predictor import Predictor
from digits_seg.inference.sources import read_image
from digits_seg.jobs.job import JobState
from digits_seg.jobs.store import JobStore
from tests.conftest import build_dataset, train_tiny_model

API = {"X-Requested-With": "digits-seg"}
SIZE = 32
TOP = 3962
"""The brightest pixel of the time-lapse: 12-bit data (0..4095)."""


def nuclei(rng, top):
    """(image uint16, mask uint8): two bright nuclei on a dim background, values ≤ `top`."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    mask = np.zeros((SIZE, SIZE), bool)
    for _ in range(2):
        cy, cx, r = rng.integers(6, SIZE - 6), rng.integers(6, SIZE - 6), rng.integers(3, 6)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    img = (top * 0.15 + top * 0.7 * mask + rng.normal(0, top * 0.04, mask.shape)).clip(0, top).astype(np.uint16)
    return img, mask.astype(np.uint8)


def time_lapse(root, frames=8, top=TOP, sbit=None, seed=5):
    """`images/tNNN_ch00.png` (16-bit) and `masks/tNNN_ch00_mask.png`; the first frame reaches `top` exactly."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for t in range(frames):
        img, mask = nuclei(rng, top)
        if t == 0:
            img[0, 0] = top
        info = None
        if sbit:
            info = PngImagePlugin.PngInfo()
            info.add(b"sBIT", bytes([sbit]))
        Image.fromarray(img).save(os.path.join(root, "images", "t%03d_ch00.png" % t), pnginfo=info)
        Image.fromarray(mask, "L").save(os.path.join(root, "masks", "t%03d_ch00_mask.png" % t))
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("background\nnucleus\n")


def raw(path):
    a = np.asarray(Image.open(path))
    assert Image.open(path).mode.startswith("I;16") and a.max() > 255
    return a.astype(np.int64)


def stored_images(dataset_dir):
    return [img[:, :, 0] for split in ("train_db", "val_db")
            for img, _ in SegmentationLMDB(os.path.join(dataset_dir, split))]


def matches(stored, expected):
    """Every stored record equals exactly one expected array (records are shuffled into splits)."""
    return len(stored) == len(expected) and all(any(np.array_equal(s, e) for e in expected) for s in stored)


def _params(src, settings, **extra):
    raw_form = {"images": os.path.join(src, "images"), "labels": os.path.join(src, "masks"),
                "classes_file": os.path.join(src, "classes.txt"), "channels": "keep", "val_pct": 25}
    raw_form.update(extra)
    return dataset_params(raw_form, settings)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lapse")
    src = str(root / "src")
    time_lapse(src)
    jobs = str(root / "jobs")
    settings = load_settings({"jobs_dir": jobs, "data_roots": str(root)}, environ={})
    params = _params(src, settings)  # the default 16-bit option
    store = JobStore(jobs)
    ds = store.create("dataset", "lapse", params)
    build_dataset(settings, store.job_dir(ds.id), params)
    for state in (JobState.RUNNING, JobState.DONE):
        store.set_state(ds.id, state)
    model = train_tiny_model(store, ds.id, epochs=20)
    return {"jobs": jobs, "dataset": ds.id, "model": model, "src": src, "settings": settings}


def test_stored_training_images_keep_twelve_bits(trained):
    images = os.path.join(trained["src"], "images")
    expected = [(raw(os.path.join(images, n)) // 16).astype(np.uint8) for n in sorted(os.listdir(images))]
    dataset_dir = os.path.join(trained["jobs"], trained["dataset"])
    stored = stored_images(dataset_dir)
    assert max(int(s.max()) for s in stored) == TOP // 16 == 247  # old: 15 (value // 256, 16 grey levels)
    assert matches(stored, expected)
    record = read_json(os.path.join(dataset_dir, "dataset.json"))["sixteen_bit"]
    assert record["option"] == "bits" and record["significant_bits"] == 12 and record["max_value"] == TOP
    assert "values up to 3962 (no sBIT chunk)" in record["text"] and "value ÷ 16" in record["text"]
    recipe = read_json(os.path.join(trained["jobs"], trained["model"], "preprocess.json"))
    assert recipe["significant_bits"] == 12  # travels with the model


def test_check_says_what_happens_and_warns_when_full_crushes(trained, tmp_path):
    settings = trained["settings"]
    full = check_folders(_params(trained["src"], settings, sixteen_bit="full"), settings, workers=1)
    warning = [w for w in full.warnings if w["code"] == "sixteen_bit"]
    assert len(warning) == 1 and warning[0]["count"] == 8
    assert warning[0]["message"].startswith("8 image(s) are 16-bit with values up to 3962: stored as 0–15 with `full` "
                                            "(16 grey levels of the 4096 of 12-bit data); choose `bits`")
    assert "keep 248 levels" in warning[0]["message"]  # 3962 // 16 + 1
    bits = check_folders(_params(trained["src"], settings), settings, workers=1)
    assert bits.ok and not [w for w in bits.warnings if w["code"] == "sixteen_bit"]
    assert bits.summary["sixteen_bit"]["significant_bits"] == 12 and bits.summary["sixteen_bit"]["levels"] == 248
    # a fixed depth the data exceed is an error naming the file, before anything is built
    ten = check_folders(_params(trained["src"], settings, sixteen_bit="10"), settings, workers=1)
    assert [e["code"] for e in ten.errors] == ["image_range"]
    assert "above the 10-bit range (0–1023)" in ten.errors[0]["message"]


def test_sbit_chunk_sets_the_depth(tmp_path):
    """Dim frames (values ≤ 900 need 10 bits) whose files declare 12 significant bits: stored as 12-bit data."""
    src = str(tmp_path / "dim")
    time_lapse(src, frames=4, top=900, sbit=12, seed=9)
    settings = load_settings({"jobs_dir": str(tmp_path / "jobs"), "data_roots": str(tmp_path)}, environ={})
    params = _params(src, settings, val_pct=0)
    report = check_folders(params, settings, workers=1)
    assert "sBIT declares 12 bits" in report.summary["sixteen_bit"]["text"]
    out = build_dataset(settings, str(tmp_path / "ds"), params)
    images = os.path.join(src, "images")
    expected = [(raw(os.path.join(images, n)) // 16).astype(np.uint8) for n in sorted(os.listdir(images))]
    assert matches(stored_images(out), expected)  # not // 4 (10 bits from the values), not // 256
    assert read_json(os.path.join(out, "dataset.json"))["sixteen_bit"]["significant_bits"] == 12


def rgb48_png(path, rgb):
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    h, w, _ = rgb.shape
    rows = b"".join(b"\0" + rgb[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_sixteen_bit_colour_images_are_reported(tmp_path):
    """16-bit colour PNGs reach us as their high bytes (Pillow): the check says so instead of staying silent."""
    src = str(tmp_path / "rgb")
    time_lapse(src, frames=2)
    rng = np.random.default_rng(1)
    rgb48_png(os.path.join(src, "images", "t000_ch00.png"), rng.integers(0, 4096, (SIZE, SIZE, 3)))
    settings = load_settings({"jobs_dir": str(tmp_path / "jobs"), "data_roots": str(tmp_path)}, environ={})
    report = check_folders(_params(src, settings, channels="rgb", val_pct=0), settings, workers=1)
    notes = [w for w in report.warnings if "16-bit colour PNG" in w["message"]]
    assert len(notes) == 1 and notes[0]["files"] == [os.path.join(src, "images", "t000_ch00.png")]
    assert report.summary["sixteen_bit"]["images"] == 1  # the greyscale frame


@pytest.fixture
def model(trained, settings):
    for key in ("dataset", "model"):
        shutil.copytree(os.path.join(trained["jobs"], trained[key]), os.path.join(settings.jobs_dir, trained[key]))
    data = os.path.join(settings.resolved_data_roots[0], "lapse")
    os.makedirs(data)
    rng = np.random.default_rng(77)
    img, _ = nuclei(rng, 4095)
    Image.fromarray(img).save(os.path.join(data, "t100_ch00.png"))  # a new frame, 12-bit
    return {"id": trained["model"], "dir": os.path.join(settings.jobs_dir, trained["model"]), "data": data,
            "image": os.path.join(data, "t100_ch00.png")}


def _input_seen(client, resp):
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    return np.asarray(Image.open(io.BytesIO(client.get(body["urls"]["input"]).data)))[:, :, 0], body


def test_test_images_reach_the_network_as_training_images_were_stored(client, model, settings, tmp_path,
                                                                        monkeypatch, capsys):
    path = model["image"]
    want = (raw(path) // 16).astype(np.uint8)
    predictor = Predictor.from_model_dir(model["dir"])
    assert predictor.preprocess.significant_bits == 12
    mask = predictor.predict(want)
    # the masks below can tell the scales apart: the input as creation stored it before gives another one
    assert not np.array_equal(mask, predictor.predict((raw(path) // 256).astype(np.uint8)))
    url = "/models/%s/infer.json" % model["id"]
    with open(path, "rb") as f:
        data = f.read()
    up = client.post(url, headers=API, content_type="multipart/form-data",
                     data={"image": (io.BytesIO(data), "t100_ch00.png")})
    for resp in (up, client.post(url, json={"path": path})):
        seen, body = _input_seen(client, resp)
        assert np.array_equal(seen, want)  # old: value // 256
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(body["ids_png"])))),
                              mask)

    job = tmp_path / "many"
    job.mkdir()
    infer_many(str(job), {"source": "folder", "folder": model["data"]}, on_progress=lambda f, m: None,
               should_stop=lambda: False, log=lambda t: None, model_dir=model["dir"], settings=settings)
    entry = read_json(str(job / RESULTS_FILE))["images"][0]
    assert np.array_equal(np.asarray(Image.open(job / entry["mask"])), mask)

    monkeypatch.setenv("DIGITS_SEG_JOBS_DIR", settings.jobs_dir)
    out = tmp_path / "out"
    assert cli_main(["infer", "--model", model["id"], path, "--out", str(out), "--backend", "torch"]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "t100_ch00_mask.png")), mask)

    # a 14-bit frame does not fit the model's 12-bit range: refused with why, never clipped to 255
    brighter = os.path.join(model["data"], "t101_ch00.png")
    Image.fromarray(np.full((SIZE, SIZE), 9000, np.uint16)).save(brighter)
    r = client.post(url, json={"path": brighter})
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["message"].startswith(
        brighter + " has values up to 9000, above the 12-bit range (0–4095); the model's training images were 12-bit")
    assert r.get_json()["error"]["field"] == "path"
    refused = tmp_path / "refused"  # the CLI reads every 16-bit range before it writes anything
    assert cli_main(["infer", "--model", model["id"], model["data"], "--out", str(refused), "--backend", "torch"]) == 2
    assert "t101_ch00.png has values up to 9000, above the 12-bit range (0–4095)" in capsys.readouterr().err
    assert not refused.exists() or not os.listdir(refused)

    # a model folder from before the record (no significant_bits): 16-bit images keep value // 256
    recipe_path = os.path.join(model["dir"], "preprocess.json")
    recipe = read_json(recipe_path)
    del recipe["significant_bits"]
    with open(recipe_path, "w") as f:
        json.dump(recipe, f)
    legacy = Predictor.from_model_dir(model["dir"])
    assert legacy.preprocess.significant_bits == 16
    assert np.array_equal(read_image(path, bits=legacy.preprocess.significant_bits), (raw(path) // 256).astype(np.uint8))
