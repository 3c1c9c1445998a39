"""Pages name records by their file stem (explorer, validation previews, test one), and by "#k" without records.json."""

import html.parser
import io
import os
import re

import numpy as np
import pytest
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets.names import NAMES_FILE
from digits_seg.fsutil import read_json
from digits_seg.inference.batch import infer_many
from digits_seg.web.app import create_app
from tests.conftest import synthcity_dataset_job, train_tiny_model


class Explorer(html.parser.HTMLParser):
    """The explorer's figures: [{index, title, name, image url}]."""

    def __init__(self, text):
        super().__init__()
        self.items, self._name = [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure" and "explorer-item" in a.get("class", ""):
            self.items.append({"index": int(a["data-index"]), "title": a.get("title"), "name": None, "image": None,
                               "selected": "selected" in a["class"].split()})
        elif tag == "img" and self.items and self.items[-1]["image"] is None:
            self.items[-1]["image"] = a["src"]
        elif tag == "span" and a.get("data-role") == "record-name":
            self._name = True

    def handle_data(self, data):
        if self._name:
            self.items[-1]["name"], self._name = data.strip(), False


@pytest.fixture
def served(tmp_path):
    """(client, store, settings, source folder, dataset id, model id): 8 scenes, 2 for validation, a tiny model."""
    data = tmp_path / "data"
    data.mkdir()
    settings = load_settings({"jobs_dir": str(tmp_path / "jobs"), "data_roots": str(data), "onnx_inference": "0"},
                             environ={})
    app = create_app(settings)
    app.config["TESTING"] = True
    store = app.extensions["digits_seg"].store
    src = str(data / "city")
    dataset_id = synthcity_dataset_job(settings, src, 8, (32, 32), seed=4, val_pct=25)
    model_id = train_tiny_model(store, dataset_id, epochs=1, val_previews=2)
    return app.test_client(), store, settings, src, dataset_id, model_id


def explorer(client, dataset_id, split, record=""):
    r = client.get("/datasets/%s?split=%s&record=%s" % (dataset_id, split, record))
    assert r.status_code == 200
    return Explorer(r.get_data(as_text=True)).items


def selected(client, url):
    """The explorer item a link (e.g. a preview's record_url) selects: its name."""
    items = Explorer(client.get(url).get_data(as_text=True)).items
    return [it["name"] for it in items if it["selected"]]


def test_pages_name_records_by_file_and_fall_back_to_numbers(served):
    client, store, settings, src, dataset_id, model_id = served
    files = sorted(os.listdir(os.path.join(src, "images")))
    val = explorer(client, dataset_id, "val")
    assert [it["index"] for it in val] == [0, 1]
    for it in val:  # the caption names the file whose pixels the explorer shows
        assert it["name"] + ".png" in files
        shown = np.asarray(Image.open(io.BytesIO(client.get(it["image"] + "?full=1").data)))
        assert np.array_equal(shown, np.asarray(Image.open(os.path.join(src, "images", it["name"] + ".png"))))
        assert os.path.join(src, "images", it["name"] + ".png") in it["title"]
        assert os.path.join(src, "labels", it["name"] + ".png") in it["title"]
    assert len({it["name"] for it in explorer(client, dataset_id, "train")} | {it["name"] for it in val}) == 8

    previews = client.get("/models/%s.json" % model_id).get_json()["model"]["previews"]
    assert [p["name"] for p in previews] == [val[0]["name"], val[1]["name"]]  # strips 0.png, 1.png: val records 0, 1
    assert os.path.join(src, "images", val[0]["name"] + ".png") in previews[0]["caption"]
    assert selected(client, previews[1]["record_url"]) == [val[1]["name"]]  # the preview links to its record
    train = explorer(client, dataset_id, "train")
    found = client.get("/datasets/%s/explore.json?split=val&record=%s" % (dataset_id, train[3]["name"])).get_json()
    assert found["split"] == "train" and found["selected"] == 3  # a stem from any split, found by name
    missing = client.get("/datasets/%s?split=val&record=nosuch" % dataset_id).get_data(as_text=True)
    assert 'data-role="record-missing"' in missing and "no record nosuch" in missing
    form = client.get("/models/%s/infer" % model_id).get_data(as_text=True)  # test one offers them by name
    assert re.findall(r'<option value="(\d+)" label="([^"]+)">', form) == [("0", val[0]["name"]), ("1", val[1]["name"])]
    one = client.post("/models/%s/infer.json" % model_id, json={"val_index": 1, "encode": "url"}).get_json()
    assert val[1]["name"] in one["source"]
    out = os.path.join(os.path.dirname(settings.jobs_dir), "many")
    os.makedirs(out)
    infer_many(out, {"source": "val"}, on_progress=lambda f, m: None, should_stop=lambda: False, log=lambda t: None,
               model_dir=store.job_dir(model_id), settings=settings)
    entries = read_json(os.path.join(out, "results.json"))["images"]
    assert sorted(e["name"] for e in entries) == sorted(it["name"] for it in val)  # test many names them too
    assert all(os.path.isfile(os.path.join(out, "masks", e["name"] + ".png")) for e in entries)
    assert sorted(e["source"] for e in entries) == ["val[0]", "val[1]"]  # API clients read the record number

    os.unlink(os.path.join(store.job_dir(dataset_id), NAMES_FILE))  # as a dataset made before records.json
    old = explorer(client, dataset_id, "val")
    assert [it["name"] for it in old] == ["#0", "#1"] and old[0]["title"] is None
    previews = client.get("/models/%s.json" % model_id).get_json()["model"]["previews"]
    assert [p["name"] for p in previews] == ["validation image #0", "validation image #1"]
    assert selected(client, previews[1]["record_url"]) == ["#1"]  # record numbers still find it
