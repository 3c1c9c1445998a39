"""store.publish: a trained model folder becomes a store entry that imports back identically."""

import json
import os
import threading

import h5py
import numpy as np
import pytest

from digits_seg.config import load_settings
from digits_seg.errors import ConflictError, NotFoundError, ValidationError
from digits_seg.networks.weights import read_blobs, save_h5
from digits_seg.store import importer, index
from digits_seg.store.publish import publish, slugify

NET = 'name: "tiny"\nlayer { name: "score" type: "Convolution" bottom: "data" top: "score" convolution_param { num_output: 2 kernel_size: 1 } }\n'


PREPROCESS = {"channels": 3, "channel_order": "BGR", "mean_subtraction": "pixel", "mean_pixel": [104.0, 117.0, 123.0],
              "scale": 1.0, "input_size": [32, 32], "resize": [32, 32], "resize_mode": "squash"}
"""What the trainer recorded for the model job below (preprocess.json)."""


def _model_job(root, job_id="20260101-000000-abcd"):
    """A model job folder as the trainer leaves it (snapshots with solver state, metrics, labels)."""
    d = os.path.join(root, job_id)
    os.makedirs(d)
    blobs = {"score": [np.full((2, 3, 1, 1), 0.5, np.float32), np.zeros(2, np.float32)]}

    def solver(h5):
        h5.create_group("solver").create_dataset("momentum", data=np.zeros(1000, np.float32))

    save_h5(blobs, os.path.join(d, "snapshot_iter_10.h5"), extra=solver)
    blobs["score"][1][:] = 1.0
    save_h5(blobs, os.path.join(d, "best.h5"), extra=solver)
    save_h5({"score": [np.zeros((2, 3, 1, 1), np.float32), np.zeros(2, np.float32)]},
            os.path.join(d, "snapshot_iter_20.h5"))
    with open(os.path.join(d, "network.prototxt"), "w") as f:
        f.write(NET)
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("background\nthing\n")
    with open(os.path.join(d, "colormap.json"), "w") as f:
        json.dump([[0, 0, 0], [10, 20, 30]], f)
    with open(os.path.join(d, "preprocess.json"), "w") as f:
        json.dump(PREPROCESS, f)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        f.write('{"type": "val", "iteration": 10, "epoch": 1, "mean_iou": 0.61, "pixel_acc": 0.9}\n'
                '{"type": "val", "iteration": 20, "epoch": 2, "mean_iou": 0.55, "pixel_acc": 0.88}\n'
                '{"type": "train", "iteration": 20, "loss": 0.3}\n{"type": "va')
    ds = os.path.join(root, "20251231-000000-dddd")
    os.makedirs(ds)
    with open(os.path.join(ds, "job.json"), "w") as f:
        json.dump({"id": "20251231-000000-dddd", "kind": "dataset", "name": "SynthCity 64"}, f)
    with open(os.path.join(ds, "dataset.json"), "w") as f:
        json.dump({"num_classes": 3, "splits": {"train": {"count": 1200, "size": [64, 48]}, "val": {"count": 300}}}, f)
    with open(os.path.join(d, "job.json"), "w") as f:
        json.dump({"id": job_id, "kind": "model", "name": "My FCN",
                   "params": {"dataset_id": "20251231-000000-dddd", "network": {"kind": "standard", "name": "tiny-fcn"}}}, f)
    return d


def test_publish_writes_entry_and_master(tmp_path):
    job = _model_job(str(tmp_path / "jobs"))
    store = str(tmp_path / "store")
    man = publish(job, store, license="CC-BY-4.0")
    entry = os.path.join(store, "my-fcn")
    assert sorted(os.listdir(entry)) == ["colormap.json", "info.json", "labels.txt", "manifest.json",
                                         "network.prototxt", "weights.h5"]
    with h5py.File(os.path.join(entry, "weights.h5"), "r") as f:
        assert list(f) == ["data"]  # solver state dropped
    np.testing.assert_array_equal(read_blobs(os.path.join(entry, "weights.h5"))["score"][1], [1.0, 1.0])
    assert man["metrics"] == {"val_mean_iou": 0.61, "val_pixel_acc": 0.9, "epoch": 1}
    # in words: a dataset job id means nothing to a reader on another server
    assert man["trained_on"] == "SynthCity 64: 1,200 training (64×48) and 300 validation images, 3 classes"
    assert man["architecture"] == "tiny-fcn"
    assert man["classes"][1] == {"name": "thing", "color": [10, 20, 30]}
    assert json.load(open(os.path.join(store, "master.json")))["children"] == ["my-fcn"]
    info = json.load(open(os.path.join(entry, "info.json")))
    assert info["snapshot file"] == "weights.h5" and info["model file"] == "network.prototxt"
    assert not [n for n in os.listdir(store) if n.startswith(".partial") or n.startswith(".weights")]
    with pytest.raises(ConflictError, match="already exists"):
        publish(job, store)


def test_published_entry_imports_back(tmp_path):
    job = _model_job(str(tmp_path / "jobs"))
    store = str(tmp_path / "store")
    publish(job, store, snapshot=10, name="Iter ten")
    settings = load_settings({"store_urls": store}, environ={})
    target = tmp_path / "jobs" / "pre"
    target.mkdir()
    params = importer.validate_params({"store": store, "model": "iter-ten"}, settings)
    importer.import_model(str(target), params, on_progress=lambda f, m: None, should_stop=lambda: False,
                          log=lambda t: None, settings=settings)
    np.testing.assert_array_equal(read_blobs(str(target / "weights.h5"))["score"][1], [0.0, 0.0])
    assert (target / "labels.txt").read_text() == "background\nthing\n"


def test_snapshot_choices(tmp_path):
    job = _model_job(str(tmp_path / "jobs"))
    store = str(tmp_path / "store")
    publish(job, store, snapshot="last", entry_id="last")
    np.testing.assert_array_equal(read_blobs(os.path.join(store, "last", "weights.h5"))["score"][0],
                                  np.zeros((2, 3, 1, 1)))
    with pytest.raises(NotFoundError, match="available: 10, 20"):
        publish(job, store, snapshot=15, entry_id="x")
    with pytest.raises(NotFoundError, match="not a model folder"):
        publish(str(tmp_path), store)


def test_concurrent_publishers_keep_every_entry(tmp_path):
    job = _model_job(str(tmp_path / "jobs"))
    store = str(tmp_path / "store")
    errors = []

    def one(i):
        try:
            publish(job, store, entry_id="e%d" % i)
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(json.load(open(os.path.join(store, "master.json")))["children"]) == ["e%d" % i for i in range(6)]
    assert len(index.list_store(store)["models"]) == 6


def test_slugify():
    assert slugify("FCN-8s on VOC!") == "fcn-8s-on-voc"
    assert slugify("../..") == "model"


def test_make_pretrained_from_a_model_job(tmp_path):
    jobs = str(tmp_path / "jobs")
    job = _model_job(jobs)
    settings = load_settings({"jobs_dir": jobs}, environ={})
    params = importer.validate_params({"source": "model", "model_id": os.path.basename(job)}, settings)
    target = os.path.join(jobs, "pre")
    os.makedirs(target)
    result = importer.import_model(target, params, on_progress=lambda f, m: None, should_stop=lambda: False,
                                   log=lambda t: None, settings=settings)
    assert result["name"] == "My FCN" and result["num_classes"] == 2
    assert sorted(os.listdir(target)) == ["colormap.json", "labels.txt", "manifest.json", "network.prototxt",
                                          "preprocess.json", "weights.h5"]
    # the model's preprocessing travels with it: training from the pretrained copy and inference use it
    assert json.load(open(os.path.join(target, "preprocess.json"))) == PREPROCESS
    man = json.load(open(os.path.join(target, "manifest.json")))
    assert man["metrics"]["val_mean_iou"] == 0.61 and man["imported_from"]["model_job"] == os.path.basename(job)
    np.testing.assert_array_equal(read_blobs(os.path.join(target, "weights.h5"))["score"][1], [1.0, 1.0])
    with pytest.raises(ValidationError) as e:
        importer.validate_params({"source": "model", "model_id": "../x"}, settings)
    assert e.value.field == "model_id"
