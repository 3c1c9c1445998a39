"""Model stores over real loopback HTTP (store/server.py) and folders: list, import, train, infer, failures."""

import http.server
import io
import json
import os
import socket
import threading
import zipfile

import numpy as np
import pytest

from digits_seg.config import load_settings
from digits_seg.errors import ValidationError
from digits_seg.networks.caffemodel import write_caffemodel
from digits_seg.networks.weights import read_blobs, save_h5
from digits_seg.store import importer, index
from digits_seg.store.cache import StoreCache
from digits_seg.store.download import DownloadError, download
from digits_seg.store.publish import add_entry
from digits_seg.store.server import StoreRequestHandler, serve_in_thread
from tests.conftest import synthcity_dataset

NET = """name: "tiny"
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" loss_param { ignore_label: 255 } }
"""


def _blobs(seed):
    rng = np.random.default_rng(seed)
    return {"conv1": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32), np.zeros(4, np.float32)],
            "score": [rng.standard_normal((3, 4, 1, 1)).astype(np.float32), np.zeros(3, np.float32)]}


def _noop_kwargs(settings, progress=None):
    return {"on_progress": (lambda f, m: progress.append(f)) if progress is not None else (lambda f, m: None),
            "should_stop": lambda: False, "log": lambda t: None, "settings": settings}


@pytest.fixture
def served(tmp_path):
    """A store folder with our format, served over HTTP on loopback."""
    folder = str(tmp_path / "team-store")
    w = str(tmp_path / "w.h5")
    save_h5(_blobs(0), w)
    add_entry(folder, "tiny", {"name": "Tiny", "classes": ["sky", "road", "car"], "architecture": "tiny"},
              {"network.prototxt": ("network", NET.encode()), "weights.h5": ("weights", w)})
    server, url = serve_in_thread(folder)
    yield folder, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def digits_store(tmp_path):
    """A DIGITS-style store: master.json + info.json + the files, nothing of ours."""
    folder = tmp_path / "digits-store"
    entry = folder / "fcn_digits"
    entry.mkdir(parents=True)
    (folder / "master.json").write_text(json.dumps({"msg": "DIGITS store", "children": ["fcn_digits"]}))
    (entry / "info.json").write_text(json.dumps({"name": "FCN from DIGITS", "framework": "caffe",
                                                 "snapshot file": "snapshot_iter_5.caffemodel",
                                                 "model file": "deploy.prototxt", "labels file": "labels.txt"}))
    (entry / "deploy.prototxt").write_text(NET)
    (entry / "labels.txt").write_text("a\nb\nc\n")
    write_caffemodel(_blobs(7), str(entry / "snapshot_iter_5.caffemodel"))
    server, url = serve_in_thread(str(folder))
    yield str(folder), url
    server.shutdown()
    server.server_close()


@pytest.fixture
def black_hole():
    """A TCP port that accepts connections (kernel backlog) but never answers: a hung store."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield "http://127.0.0.1:%d/" % s.getsockname()[1]
    s.close()


def _job(tmp_path, name):
    d = tmp_path / "jobs" / name
    d.mkdir(parents=True)
    (d / "job.json").write_text("{}")
    return str(d)


def test_http_store_import_with_progress(tmp_path, served):
    folder, url = served
    settings = load_settings({"store_urls": url}, environ={})
    listing = index.list_store(url)
    (m,) = listing["models"]
    assert m["files"][0]["location"].startswith(url)
    job = _job(tmp_path, "pre")
    progress = []
    params = importer.validate_params({"store": url, "model": "tiny"}, settings)
    result = importer.import_model(job, params, **_noop_kwargs(settings, progress))
    assert result["num_classes"] == 3 and result["has_weights"]
    assert progress[0] == 0.0 and progress[-1] == 1.0 and any(0 < p < 0.9 for p in progress)
    np.testing.assert_array_equal(read_blobs(os.path.join(job, "weights.h5"))["score"][0], _blobs(0)["score"][0])


def test_digits_style_store_over_http(tmp_path, digits_store):
    _folder, url = digits_store
    settings = load_settings({"store_urls": url}, environ={})
    listing = index.list_store(url)
    assert listing["msg"] == "DIGITS store"
    (m,) = listing["models"]
    assert m["format"] == "digits" and [c["name"] for c in m["classes"]] == ["a", "b", "c"]
    job = _job(tmp_path, "d")
    params = importer.validate_params({"store": url, "model": "fcn_digits"}, settings)
    importer.import_model(job, params, **_noop_kwargs(settings))
    np.testing.assert_array_equal(read_blobs(os.path.join(job, "weights.h5"))["conv1"][0], _blobs(7)["conv1"][0])


def test_directory_listing_fallback_over_http(digits_store):
    folder, url = digits_store
    os.unlink(os.path.join(folder, "master.json"))
    listing = index.list_store(url)
    assert [m["name"] for m in listing["models"]] == ["FCN from DIGITS"]


def test_dead_store_beside_a_working_one(tmp_path, served, black_hole):
    folder, url = served
    settings = load_settings({"store_urls": ",".join([url, black_hole, "http://127.0.0.1:1/", folder])}, environ={})
    cache = StoreCache(settings, timeout_s=2.0)
    first = cache.snapshot()  # returns at once; the hung store has not answered yet
    statuses = {r["url"]: r["status"] for r in first}
    assert statuses[black_hole] == "checking"
    final = {r["url"]: r for r in cache.wait(60)}
    assert final[url]["status"] == "reachable" and [m["folder"] for m in final[url]["models"]] == ["tiny"]
    assert final[folder]["status"] == "reachable"
    assert final[index.bundled_store()]["status"] == "reachable"
    assert final[black_hole]["status"].startswith("unreachable:") and "timed out" in final[black_hole]["status"]
    assert "refused" in final["http://127.0.0.1:1/"]["status"]
    assert cache.find(url, "tiny")["name"] == "Tiny"


def test_corrupt_download_over_http_keeps_nothing(tmp_path, served):
    folder, url = served
    with open(os.path.join(folder, "tiny", "weights.h5"), "r+b") as f:
        f.seek(-8, os.SEEK_END)
        f.write(b"tampered")  # same size, different bytes: only the hash can tell
    settings = load_settings({"store_urls": url}, environ={})
    job = _job(tmp_path, "bad")
    params = importer.validate_params({"store": url, "model": "tiny"}, settings)
    with pytest.raises(DownloadError, match="mismatch"):
        importer.import_model(job, params, **_noop_kwargs(settings))
    assert os.listdir(job) == ["job.json"]


class _FlakyHandler(StoreRequestHandler):
    """Cuts the first full (non-Range) response in half, then behaves; counts requests."""

    requests = []

    def do_GET(self):
        type(self).requests.append(self.headers.get("Range"))
        if self.headers.get("Range") or len(type(self).requests) > 1:
            return super().do_GET()
        path = self.translate_path(self.path)
        data = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


class _RedirectHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", "file:///etc/passwd" if self.path == "/file" else "ftp://127.0.0.1/x")
        self.end_headers()

    def log_message(self, *a):
        pass


def _serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d/" % server.server_address[1]


def test_interrupted_download_resumes_with_range(tmp_path):
    data = os.urandom(400_000)
    (tmp_path / "big.bin").write_bytes(data)
    folder = str(tmp_path)

    class Handler(_FlakyHandler):
        requests = []

        def __init__(self, *a, **kw):
            super().__init__(*a, directory=folder, **kw)

    server, url = _serve(Handler)
    try:
        import hashlib
        r = download(url + "big.bin", str(tmp_path / "out.bin"), max_bytes=10 ** 6,
                     sha256=hashlib.sha256(data).hexdigest())
    finally:
        server.shutdown()
        server.server_close()
    assert r["resumed"] == 1 and Handler.requests == [None, "bytes=%d-" % (len(data) // 2)]
    assert (tmp_path / "out.bin").read_bytes() == data


def test_redirect_to_file_scheme_refused_and_size_limit(tmp_path, served):
    server, url = _serve(_RedirectHandler)
    try:
        for path in ("file", "ftp"):
            with pytest.raises(DownloadError, match="refusing redirect.*only http"):
                download(url + path, str(tmp_path / "x"), max_bytes=10 ** 6)
    finally:
        server.shutdown()
        server.server_close()
    _folder, store_url = served
    with pytest.raises(DownloadError, match="download limit"):
        download(store_url + "tiny/weights.h5", str(tmp_path / "w"), max_bytes=100)
    assert sorted(os.listdir(tmp_path)) == ["team-store", "w.h5"]  # no x, no w, no .part


def test_server_refuses_paths_outside_and_hidden_files(tmp_path, served):
    import urllib.error
    import urllib.request

    folder, url = served
    os.symlink("/etc", os.path.join(folder, "etc-link"))
    for path in ["../../etc/passwd", "etc-link/passwd", ".master.lock"]:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + path, timeout=10)
        assert e.value.code == 404, path
    req = urllib.request.Request(url + "master.json", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405


def test_zip_slip_model_archive_from_a_store_is_rejected(tmp_path, served):
    folder, url = served
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("info.json", json.dumps({"name": "x", "framework": "caffe"}))
        zf.writestr("../../../outside.txt", "pwned")
    (tmp_path / "team-store" / "evil.zip").write_bytes(buf.getvalue())
    settings = load_settings({}, environ={})
    job = _job(tmp_path, "up")
    path = importer.upload_path(job, "archive", "evil.zip")
    download(url + "evil.zip", path, max_bytes=10 ** 6)
    params = importer.validate_params({"files": {"archive": os.path.relpath(path, job)}}, settings)
    with pytest.raises(ValidationError, match="'..'"):
        importer.import_model(job, params, **_noop_kwargs(settings))
    assert os.listdir(job) == ["job.json"]
    assert not list(tmp_path.rglob("outside.txt"))


@pytest.mark.slow
def test_import_then_fine_tune_then_infer(tmp_path):
    """The whole path on a machine without internet: store → pretrained job → 1 epoch → predict."""
    from digits_seg.datasets.info import DatasetInfo
    from digits_seg.inference.predictor import Predictor
    from digits_seg.networks.compiler import compile_net
    from digits_seg.networks.standard import standard_prototxt
    from digits_seg.training.params import validate_params as train_params
    from digits_seg.training.trainer import train

    # a pretrained tiny-fcn for 4 classes, weights generated here, published in an HTTP store
    text = standard_prototxt("tiny-fcn", 4)
    net = compile_net(text, phase="train")
    w = str(tmp_path / "w.h5")
    save_h5(net, w)
    store = str(tmp_path / "store")
    add_entry(store, "tiny-synth", {"name": "tiny on 4 classes", "classes": ["a", "b", "c", "d"],
                                    "architecture": "tiny-fcn"},
              {"network.prototxt": ("network", text.encode()), "weights.h5": ("weights", w)})
    server, url = serve_in_thread(store)
    try:
        root = str(tmp_path / "data")
        settings = load_settings({"jobs_dir": str(tmp_path / "jobs"), "data_roots": root, "store_urls": url},
                                 environ={})
        pre = _job(tmp_path, "pretrained")
        params = importer.validate_params({"store": url, "model": "tiny-synth"}, settings)
        importer.import_model(pre, params, **_noop_kwargs(settings))
    finally:
        server.shutdown()
        server.server_close()

    ds = synthcity_dataset(settings, os.path.join(root, "src"), os.path.join(root, "dataset"), 12, (32, 32), seed=2,
                           val_pct=25)
    info = DatasetInfo.load(ds)
    assert info.num_classes != 4  # the class-count mismatch path
    model = _job(tmp_path, "model")
    tparams = train_params({"network_kind": "pretrained", "pretrained_job": "pretrained", "epochs": 1,
                            "batch_size": 4, "base_lr": 0.001, "solver_type": "Adam", "loader_workers": 0},
                           settings, info)
    logs = []
    train(model, tparams, on_progress=lambda f, m: None, should_stop=lambda: False, log=logs.append,
          dataset_dir=ds, pretrained_dir=pre)
    assert any("Class count 4 -> %d" % info.num_classes in line for line in logs), logs
    predictor = Predictor.from_model_dir(model)
    out = predictor.predict(np.zeros((32, 32, 3), np.uint8))
    assert out.shape == (32, 32) and int(out.max()) < info.num_classes
