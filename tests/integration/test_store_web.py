"""Store pages through the Flask app (real embedded Redis, real worker): list, import, pretrained page, upload."""

import io
import json
import os
import socket

import numpy as np
import pytest

from digits_seg.networks.weights import save_h5
from digits_seg.store.publish import add_entry
from digits_seg.web.app import create_app
from tests.conftest import wait_for

API = {"X-Requested-With": "digits-seg"}
NET = """name: "tiny"
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score" convolution_param { num_output: 3 kernel_size: 1 } }
"""


def _weights(path):
    save_h5({"conv1": [np.ones((4, 3, 3, 3), np.float32), np.zeros(4, np.float32)],
             "score": [np.ones((3, 4, 1, 1), np.float32), np.zeros(3, np.float32)]}, path)
    return path


@pytest.fixture
def team_store(tmp_path):
    folder = str(tmp_path / "team")
    add_entry(folder, "tiny", {"name": "Tiny <script>alert(1)</script>", "classes": ["sky", "road", "car"],
                               "architecture": "tiny-fcn", "license": "CC0-1.0", "trained_on": "SynthCity",
                               "metrics": {"val_mean_iou": 0.5}, "source": {"url": "javascript:alert(1)"}},
              {"network.prototxt": ("network", NET.encode()), "weights.h5": ("weights", _weights(str(tmp_path / "w.h5")))})
    return folder


@pytest.fixture
def hung_store():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield "http://127.0.0.1:%d/" % s.getsockname()[1]
    s.close()


@pytest.fixture
def store_app(settings, team_store, hung_store):
    app = create_app(settings.replace(store_urls=(team_store, hung_store)))
    app.config["TESTING"] = True
    return app


def test_store_page_renders_while_a_store_hangs_and_escapes_store_text(store_app, team_store, hung_store):
    client = store_app.test_client()
    first = client.get("/store.json").get_json()
    assert {s["url"]: s["status"] for s in first["stores"]}[hung_store] == "checking"
    data = wait_for(lambda: (lambda d: d if {s["url"] for s in d["stores"] if s["status"] == "reachable"}
                             >= {team_store} else None)(client.get("/store.json").get_json()),
                    timeout=30, message="team store listed")
    (tiny,) = [m for s in data["stores"] if s["url"] == team_store for m in s["models"]]
    assert tiny["name"].startswith("Tiny <script>") and tiny["imported"] == []
    html = client.get("/store").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "Tiny &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:alert" not in html  # non-http source links are not rendered
    assert 'id="store-filter"' in html and 'data-action="import"' in html


def test_import_creates_a_pretrained_job_that_a_worker_completes(store_app, team_store, start_worker):
    client = store_app.test_client()
    start_worker()
    r = client.post("/store/import.json", json={"store": team_store, "model": "tiny"})
    assert r.status_code == 201, r.get_json()
    job_id = r.get_json()["id"]
    assert r.get_json()["url"] == "/pretrained_models/%s" % job_id
    done = wait_for(lambda: (lambda d: d if d["state"] in ("done", "error") else None)(
        client.get("/pretrained_models/%s.json" % job_id).get_json()), timeout=60, message="import finished")
    assert done["state"] == "done", done.get("error")
    assert done["manifest"]["num_classes"] == 3 and done["manifest"]["has_weights"]
    page = client.get("/pretrained_models/%s" % job_id).get_data(as_text=True)
    assert "weights.h5" in page and "sky" in page
    f = client.get("/pretrained_models/%s/files/labels.txt" % job_id)
    assert f.status_code == 200 and f.data == b"sky\nroad\ncar\n"
    assert client.get("/pretrained_models/%s/files/job.json" % job_id).status_code == 404
    listing = client.get("/store.json").get_json()
    (tiny,) = [m for s in listing["stores"] if s["url"] == team_store for m in s["models"]]
    assert [j["id"] for j in tiny["imported"]] == [job_id]
    home = client.get("/index.json").get_json()
    assert [j["id"] for j in home["pretrained_models"]] == [job_id]


def test_import_errors_are_json_with_field(store_app, team_store):
    client = store_app.test_client()
    r = client.post("/store/import.json", json={"store": "http://169.254.169.254/", "model": "x"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "store"
    r = client.post("/store/import.json", json={"store": team_store, "model": "../etc"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "model"
    assert client.get("/pretrained_models/nope.json").status_code == 404


def test_upload_form_stages_files_and_queues_an_import(store_app, settings, tmp_path):
    client = store_app.test_client()
    assert client.get("/pretrained_models/new").status_code == 200
    w = open(_weights(str(tmp_path / "u.h5")), "rb").read()
    r = client.post("/pretrained_models/new", headers=API, content_type="multipart/form-data",
                    data={"name": "Uploaded", "network": (io.BytesIO(NET.encode()), "deploy.prototxt"),
                          "weights": (io.BytesIO(w), "net.h5")})
    assert r.status_code == 302, r.get_data(as_text=True)
    job_id = r.headers["Location"].rsplit("/", 1)[-1]
    job = json.load(open(os.path.join(settings.jobs_dir, job_id, "job.json")))
    staged = job["params"]["upload_dir"]
    assert sorted(os.listdir(staged)) == ["network-deploy.prototxt", "weights-net.h5"]
    # a form without files is re-rendered with the message, and nothing is left staged
    r = client.post("/pretrained_models/new", headers=API, data={"name": "x"})
    assert r.status_code == 400 and "choose a DIGITS model archive" in r.get_data(as_text=True)
    assert os.listdir(os.path.join(settings.jobs_dir, ".uploads")) == [os.path.basename(staged)]


def test_store_json_gives_null_for_sizes_a_store_does_not_publish(store_app):
    from digits_seg.store.index import bundled_store

    client = store_app.test_client()
    bundled = wait_for(lambda: next((s for s in client.get("/store.json").get_json()["stores"]
                                     if s["url"] == bundled_store() and s["status"] == "reachable"), None),
                       timeout=30, message="bundled store listed")
    models = {m["folder"]: m for m in bundled["models"]}
    fcn = models["fcn-alexnet-voc"]
    assert fcn["size_bytes"] is None and fcn["size_unknown_files"] == ["fcn-alexnet-pascal.caffemodel"]
    assert [f["size"] for f in fcn["files"] if f["role"] == "weights"] == [None]
    unet = models["unet"]  # network only: the few KB of its files, not 0
    assert unet["size_bytes"] == sum(os.path.getsize(os.path.join(bundled_store(), "unet", f["name"]))
                                     for f in unet["files"]) > 1000
