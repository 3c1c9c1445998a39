"""store.importer: store entries and uploads become complete pretrained job folders, or nothing."""

import io
import json
import os
import shutil
import tarfile
import zipfile

import numpy as np
import pytest

from digits_seg.config import load_settings
from digits_seg.errors import ValidationError
from digits_seg.networks.caffemodel import write_caffemodel
from digits_seg.networks.weights import read_blobs, save_h5
from digits_seg.networks.wire import MessageWriter
from digits_seg.store import importer
from digits_seg.store.download import DownloadError
from digits_seg.store.publish import add_entry

NET = """name: "tiny"
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" loss_param { ignore_label: 255 } }
"""


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    return {"conv1": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)],
            "score": [rng.standard_normal((3, 4, 1, 1)).astype(np.float32), np.zeros(3, np.float32)]}


class Recorder:
    """Collects what a task reports through its callbacks."""

    def __init__(self, stop_after=None):
        self.progress, self.lines, self.stop_after = [], [], stop_after

    def on_progress(self, fraction, message):
        self.progress.append((fraction, message))

    def log(self, text):
        self.lines.append(text)

    def should_stop(self):
        return self.stop_after is not None and len(self.progress) >= self.stop_after

    def kwargs(self, settings):
        return {"on_progress": self.on_progress, "should_stop": self.should_stop, "log": self.log,
                "settings": settings}


@pytest.fixture
def store(tmp_path):
    folder = str(tmp_path / "store")
    w = str(tmp_path / "w.h5")
    save_h5(_blobs(), w)
    add_entry(folder, "tiny-h5", {"name": "Tiny H5", "architecture": "tiny", "classes": ["sky", "road", "car"],
                                  "trained_on": "SynthCity", "metrics": {"val_mean_iou": 0.42}},
              {"network.prototxt": ("network", NET.encode()), "weights.h5": ("weights", w)})
    cm = str(tmp_path / "w.caffemodel")
    write_caffemodel(_blobs(1), cm, name="tiny")
    add_entry(folder, "tiny-caffe", {"name": "Tiny Caffe", "classes": ["a", "b", "c"]},
              {"network.prototxt": ("network", NET.encode()), "tiny.caffemodel": ("weights", cm)})
    add_entry(folder, "net-only", {"name": "Network only"}, {"network.prototxt": ("network", NET.encode())})
    return folder


@pytest.fixture
def settings(store, tmp_path):
    return load_settings({"store_urls": store, "jobs_dir": str(tmp_path / "jobs")}, environ={})


def _job_dir(tmp_path, name="job"):
    d = tmp_path / "jobs" / name
    d.mkdir(parents=True)
    (d / "job.json").write_text("{}")
    return str(d)


def test_import_h5_entry(tmp_path, store, settings):
    job = _job_dir(tmp_path)
    rec = Recorder()
    params = importer.validate_params({"store": store, "model": "tiny-h5"}, settings)
    result = importer.import_model(job, params, **rec.kwargs(settings))
    assert sorted(os.listdir(job)) == ["colormap.json", "job.json", "labels.txt", "manifest.json",
                                       "network.prototxt", "preprocess.json", "weights.h5"]
    got = read_blobs(os.path.join(job, "weights.h5"))
    for layer, arrays in _blobs().items():
        for a, b in zip(arrays, got[layer]):
            np.testing.assert_array_equal(a, b)
    assert open(os.path.join(job, "labels.txt")).read() == "sky\nroad\ncar\n"
    assert json.load(open(os.path.join(job, "colormap.json"))) == [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    man = json.load(open(os.path.join(job, "manifest.json")))
    assert man["metrics"] == {"val_mean_iou": 0.42} and man["imported_from"]["model"] == "tiny-h5"
    assert {f["name"] for f in man["files"]} == {"network.prototxt", "weights.h5", "labels.txt", "colormap.json"}
    assert result == {"name": "Tiny H5", "num_classes": 3, "has_weights": True,
                      "size_bytes": man["size_bytes"], "architecture": "tiny"}
    assert rec.progress[-1] == (1.0, "done")
    fractions = [p for p, _ in rec.progress]
    assert fractions == sorted(fractions)
    assert any("verified" in line for line in rec.lines)


def _sha256(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_imported_files_are_the_verified_bytes(tmp_path, store, settings):
    # The pretrained page lists manifest["files"]; the import log lists what was downloaded and
    # verified. colormap.json (re-serialised) and weights.h5 (re-saved) used to differ from it.
    job = _job_dir(tmp_path)
    params = importer.validate_params({"store": store, "model": "tiny-h5"}, settings)
    importer.import_model(job, params, **Recorder().kwargs(settings))
    published = {f["name"]: f for f in json.load(open(os.path.join(store, "tiny-h5", "manifest.json")))["files"]}
    kept = {f["name"]: f for f in json.load(open(os.path.join(job, "manifest.json")))["files"]}
    assert set(published) == set(kept) == {"network.prototxt", "weights.h5", "labels.txt", "colormap.json"}
    for name, f in published.items():
        local = os.path.join(job, name)
        assert (os.path.getsize(local), _sha256(local)) == (f["size"], f["sha256"]), name
        assert (kept[name]["size"], kept[name]["sha256"]) == (f["size"], f["sha256"]), name


def test_import_converts_caffemodel(tmp_path, store, settings):
    job = _job_dir(tmp_path)
    params = importer.validate_params({"store": store, "model": "tiny-caffe", "name": "Mine"}, settings)
    assert importer.import_model(job, params, **Recorder().kwargs(settings))["name"] == "Mine"
    got = read_blobs(os.path.join(job, "weights.h5"))
    np.testing.assert_array_equal(got["conv1"][0], _blobs(1)["conv1"][0])


def test_network_only_entry_has_no_weights(tmp_path, store, settings):
    job = _job_dir(tmp_path)
    rec = Recorder()
    params = importer.validate_params({"store": store, "model": "net-only"}, settings)
    result = importer.import_model(job, params, **rec.kwargs(settings))
    assert result["has_weights"] is False and not os.path.exists(os.path.join(job, "weights.h5"))
    # no labels: classes counted from the last convolution
    assert open(os.path.join(job, "labels.txt")).read() == "class_0\nclass_1\nclass_2\n"


def test_corrupt_store_file_keeps_nothing(tmp_path, store, settings):
    with open(os.path.join(store, "tiny-h5", "weights.h5"), "r+b") as f:
        f.seek(200)
        f.write(b"\xff\xfe")
    job = _job_dir(tmp_path)
    params = importer.validate_params({"store": store, "model": "tiny-h5"}, settings)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        importer.import_model(job, params, **Recorder().kwargs(settings))
    assert os.listdir(job) == ["job.json"]


def test_validate_params_refuses_unconfigured_stores_and_bad_names(tmp_path, settings, store):
    with pytest.raises(ValidationError, match="not configured") as e:
        importer.validate_params({"store": "http://169.254.169.254/", "model": "x"}, settings)
    assert e.value.field == "store"
    with pytest.raises(ValidationError) as e:
        importer.validate_params({"store": store, "model": "../x"}, settings)
    assert e.value.field == "model"
    with pytest.raises(ValidationError) as e:
        importer.validate_params({"source": "upload", "files": {"network": "upload/n"}}, settings)
    assert e.value.field == "weights"
    with pytest.raises(ValidationError) as e:
        importer.validate_params({"source": "upload", "files": {"archive": "../../etc/passwd"}}, settings)
    assert e.value.field == "archive"


def _save_upload(job, role, name, data):
    path = importer.upload_path(job, role, name)
    with open(path, "wb") as f:
        f.write(data)
    return os.path.relpath(path, job)


def test_upload_separate_files(tmp_path, settings):
    job = _job_dir(tmp_path)
    cm = str(tmp_path / "w.caffemodel")
    write_caffemodel(_blobs(2), cm)
    files = {"network": _save_upload(job, "network", "deploy.prototxt", NET.encode()),
             "weights": _save_upload(job, "weights", "my net.caffemodel", open(cm, "rb").read()),
             "labels": _save_upload(job, "labels", "labels.txt", b"bg\nfg\nedge\n")}
    params = importer.validate_params({"source": "upload", "files": files, "name": "Uploaded"}, settings)
    result = importer.import_model(job, params, **Recorder().kwargs(settings))
    assert result["name"] == "Uploaded" and result["num_classes"] == 3
    assert "upload" not in os.listdir(job)
    np.testing.assert_array_equal(read_blobs(os.path.join(job, "weights.h5"))["score"][0], _blobs(2)["score"][0])


def _mean_binaryproto(values, h=2, w=2):
    data = np.concatenate([np.full(h * w, v, np.float32) for v in values])
    shape = MessageWriter().packed_varints(1, [1, len(values), h, w])
    return MessageWriter().message(7, shape).packed_float32(5, data).to_bytes()


def _digits_archive(tmp_path, extra=()):
    cm = str(tmp_path / "snap.caffemodel")
    write_caffemodel(_blobs(3), cm)
    info = {"name": "DIGITS FCN", "framework": "caffe", "snapshot file": "snapshot_iter_30.caffemodel",
            "model file": "deploy.prototxt", "labels file": "labels.txt", "mean file": "mean.binaryproto",
            "image dimensions": [32, 48, 3]}
    members = [("info.json", json.dumps(info).encode()), ("deploy.prototxt", NET.encode()),
               ("snapshot_iter_30.caffemodel", open(cm, "rb").read()), ("labels.txt", b"a\nb\nc\n"),
               ("mean.binaryproto", _mean_binaryproto([104.0, 117.0, 123.0]))] + list(extra)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_upload_digits_archive(tmp_path, settings):
    job = _job_dir(tmp_path)
    rel = _save_upload(job, "archive", "20170101-model.tar.gz", _digits_archive(tmp_path))
    params = importer.validate_params({"source": "upload", "files": {"archive": rel}}, settings)
    result = importer.import_model(job, params, **Recorder().kwargs(settings))
    assert result["name"] == "DIGITS FCN"
    man = json.load(open(os.path.join(job, "manifest.json")))
    assert man["mean"] == [104.0, 117.0, 123.0] and man["input_size"] == [48, 32]
    assert man["imported_from"]["format"] == "digits"
    np.testing.assert_array_equal(read_blobs(os.path.join(job, "weights.h5"))["conv1"][1], _blobs(3)["conv1"][1])


def test_zip_slip_upload_rejected_and_nothing_kept(tmp_path, settings):
    job = _job_dir(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("info.json", "{}")
        zf.writestr("../../escaped.txt", "pwned")
    rel = _save_upload(job, "archive", "evil.zip", buf.getvalue())
    params = importer.validate_params({"source": "upload", "files": {"archive": rel}}, settings)
    with pytest.raises(ValidationError, match="'..'"):
        importer.import_model(job, params, **Recorder().kwargs(settings))
    assert os.listdir(job) == ["job.json"]
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "jobs" / "escaped.txt").exists()


def test_archive_missing_named_file_and_bad_network(tmp_path, settings):
    job = _job_dir(tmp_path)
    info = json.dumps({"name": "x", "framework": "caffe", "snapshot file": "gone.caffemodel",
                       "model file": "deploy.prototxt"}).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("m/info.json", info)
        zf.writestr("m/deploy.prototxt", NET)
    rel = _save_upload(job, "archive", "m.zip", buf.getvalue())
    with pytest.raises(ValidationError, match="does not contain it"):
        importer.import_model(job, importer.validate_params({"files": {"archive": rel}}, settings),
                              **Recorder().kwargs(settings))
    job2 = _job_dir(tmp_path, "job2")
    files = {"network": _save_upload(job2, "network", "n.prototxt", b"layer { name: \"a\" type: }"),
             "weights": _save_upload(job2, "weights", "w.h5", b"junk")}
    with pytest.raises(ValidationError, match="n.prototxt line 1"):
        importer.import_model(job2, importer.validate_params({"files": files}, settings),
                              **Recorder().kwargs(settings))
    assert os.listdir(job2) == ["job.json"]


def test_torch_framework_refused(tmp_path, settings):
    job = _job_dir(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("info.json", json.dumps({"name": "lua", "framework": "torch", "model file": "model.lua"}))
        zf.writestr("model.lua", "return nn.Sequential()")
    rel = _save_upload(job, "archive", "t.zip", buf.getvalue())
    with pytest.raises(ValidationError, match="only Caffe models"):
        importer.import_model(job, importer.validate_params({"files": {"archive": rel}}, settings),
                              **Recorder().kwargs(settings))


def test_abort_during_download_keeps_nothing(tmp_path, store, settings):
    from digits_seg.errors import JobAborted

    job = _job_dir(tmp_path)
    params = importer.validate_params({"store": store, "model": "tiny-h5"}, settings)
    with pytest.raises(JobAborted):
        importer.import_model(job, params, **Recorder(stop_after=2).kwargs(settings))
    assert os.listdir(job) == ["job.json"]
    shutil.rmtree(job)


def test_staged_upload_moves_into_the_job(tmp_path, settings):
    stage = importer.new_upload_stage(settings)
    net_path, net_rel = importer.staged_path(stage, "network", "deploy.prototxt")
    w_path, w_rel = importer.staged_path(stage, "weights", "../../w.h5")
    assert os.path.dirname(w_path) == stage and w_rel == "upload/weights-w.h5"
    with open(net_path, "w") as f:
        f.write(NET)
    save_h5(_blobs(4), w_path)
    params = importer.validate_params({"files": {"network": net_rel, "weights": w_rel}, "upload_dir": stage},
                                      settings)
    job = os.path.join(settings.jobs_dir, "staged")
    os.makedirs(job)
    importer.import_model(job, params, **Recorder().kwargs(settings))
    assert not os.path.exists(stage) and os.path.isfile(os.path.join(job, "weights.h5"))
    with pytest.raises(ValidationError) as e:
        importer.validate_params({"files": {"network": net_rel, "weights": w_rel}, "upload_dir": str(tmp_path)},
                                 settings)
    assert e.value.field == "upload_dir"
