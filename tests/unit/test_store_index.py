"""store.index / store.manifest: reading folder stores in our format and DIGITS' format."""

import json
import os

import pytest

from digits_seg.errors import NotFoundError, ValidationError
from digits_seg.store import index
from digits_seg.store import manifest as mf
from digits_seg.store.publish import add_entry, rebuild_master

NET = 'name: "tiny"\nlayer { name: "score" type: "Convolution" bottom: "data" top: "score" convolution_param { num_output: 3 kernel_size: 1 } }\n'


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(data if isinstance(data, str) else json.dumps(data))


def test_our_entry_round_trips_through_the_index(tmp_path):
    store = str(tmp_path / "store")
    add_entry(store, "tiny", {"name": "Tiny", "architecture": "tiny-fcn", "classes": [
        "sky", {"name": "road", "color": [128, 64, 128]}, "car"], "input_size": [32, 32],
        "license": "BSD-2-Clause", "trained_on": "SynthCity 64 images", "metrics": {"val_mean_iou": 0.5}},
        {"network.prototxt": ("network", NET.encode())},
        remote_files=[{"role": "weights", "name": "w.caffemodel", "url": "http://example.org/w.caffemodel",
                       "sha1": "c449ea74dd7d83751d1357d6a8c323fcf4038962"}])
    listing = index.list_store(store)
    assert listing["warnings"] == []
    (m,) = listing["models"]
    assert m["name"] == "Tiny" and m["architecture"] == "tiny-fcn" and m["format"] == "manifest"
    assert [c["name"] for c in m["classes"]] == ["sky", "road", "car"]
    assert m["classes"][1]["color"] == [128, 64, 128]
    assert m["classes"][0]["color"] == mf.default_colormap(3)[0]
    assert m["input_size"] == [32, 32] and m["metrics"] == {"val_mean_iou": 0.5}
    assert m["needs_internet"] and m["has_weights"]
    roles = {f["role"]: f for f in m["files"]}
    assert roles["network"]["sha256"] and roles["network"]["size"] == len(NET.encode())
    assert roles["weights"]["other_hashes"] == {"sha1": "c449ea74dd7d83751d1357d6a8c323fcf4038962"}
    assert roles["network"]["location"] == os.path.join(store, "tiny", "network.prototxt")
    assert json.load(open(os.path.join(store, "master.json")))["children"] == ["tiny"]


def test_digits_style_store_with_only_info_json(tmp_path):
    store = tmp_path / "digits"
    _write(str(store / "master.json"), {"msg": "Welcome to the store", "children": ["alexnet_seg"]})
    _write(str(store / "alexnet_seg" / "info.json"), {
        "name": "FCN-AlexNet (DIGITS)", "framework": "caffe", "snapshot file": "snapshot_iter_100.caffemodel",
        "model file": "deploy.prototxt", "train_val file": "train_val.prototxt", "labels file": "labels.txt",
        "mean file": "mean.binaryproto", "image dimensions": [256, 320, 3]})
    _write(str(store / "alexnet_seg" / "aux.json"), {"license": "BSD-3-Clause"})
    _write(str(store / "alexnet_seg" / "labels.txt"), "background\nperson\n")
    listing = index.list_store(str(store))
    assert listing["msg"] == "Welcome to the store"
    (m,) = listing["models"]
    assert m["format"] == "digits" and m["name"] == "FCN-AlexNet (DIGITS)"
    assert m["input_size"] == [320, 256] and m["license"] == "BSD-3-Clause"
    assert [c["name"] for c in m["classes"]] == ["background", "person"]
    roles = {f["role"]: f["name"] for f in m["files"]}
    # train_val is preferred over deploy: a trainer needs the loss layer
    assert roles == {"weights": "snapshot_iter_100.caffemodel", "network": "train_val.prototxt",
                     "labels": "labels.txt", "mean": "mean.binaryproto"}


def test_folder_without_master_json_falls_back_to_subfolders(tmp_path):
    store = tmp_path / "s"
    _write(str(store / "b" / "info.json"), {"name": "B", "framework": "caffe"})
    _write(str(store / "a" / "info.json"), {"name": "A", "framework": "caffe"})
    os.makedirs(str(store / "empty"))
    listing = index.list_store(str(store))
    assert [m["name"] for m in listing["models"]] == ["A", "B"]
    assert any("empty" in w for w in listing["warnings"])


def test_hostile_entry_values_are_dropped(tmp_path):
    store = tmp_path / "s"
    _write(str(store / "master.json"), {"msg": "x", "children": ["../etc", "evil", "/abs"]})
    _write(str(store / "evil" / "manifest.json"), {
        "name": "<script>alert(1)</script>", "classes": "not a list", "input_size": [-1, 5],
        "files": [{"role": "weights", "name": "../../w.h5"}, {"role": "weights", "name": "w", "url": "file:///etc/passwd"},
                  {"role": "network", "name": "net.prototxt", "sha256": "zz"}],
        "metrics": {"miou": "high", "acc": 0.9}})
    (m,) = index.list_store(str(store))["models"]
    # text is kept as text (templates escape it); unsafe paths and schemes are dropped
    assert m["name"] == "<script>alert(1)</script>"
    assert m["classes"] is None and m["input_size"] is None and m["metrics"] == {"acc": 0.9}
    assert [f["name"] for f in m["files"]] == ["net.prototxt"]
    assert m["files"][0]["sha256"] == "invalid"
    assert len(m["warnings"]) == 3


def test_malformed_master_json_is_a_store_error(tmp_path):
    _write(str(tmp_path / "master.json"), "{not json")
    with pytest.raises(index.StoreError, match="not valid JSON"):
        index.list_store(str(tmp_path))
    _write(str(tmp_path / "master.json"), {"children": "a"})
    with pytest.raises(index.StoreError, match="children"):
        index.list_store(str(tmp_path))
    with pytest.raises(index.StoreError, match="does not exist"):
        index.list_store(str(tmp_path / "missing"))


def test_read_entry_errors(tmp_path):
    with pytest.raises(ValidationError, match="plain folder name"):
        index.read_entry(str(tmp_path), "../x")
    os.makedirs(str(tmp_path / "x"))
    with pytest.raises(NotFoundError, match="neither manifest.json nor info.json"):
        index.read_entry(str(tmp_path), "x")


def test_normalize_store_url():
    assert index.normalize_store_url("http://h:1/store") == "http://h:1/store/"
    assert index.normalize_store_url("file:///tmp/s") == "/tmp/s"
    with pytest.raises(ValidationError, match="unsupported scheme"):
        index.normalize_store_url("ftp://h/s")


def test_directory_listing_parser_keeps_only_child_folders():
    p = index._LinkParser()
    p.feed('<a href="../">up</a><a href="model_a/">a</a><a href="/abs/">x</a><a href="http://o/x/">o</a>'
           '<a href="file.txt">f</a><a href="model%20b/">b</a><a href="?C=M">s</a><a href=".hidden/">h</a>')
    assert p.children == ["model_a"]


def test_rebuild_master_lists_present_entries(tmp_path):
    store = str(tmp_path)
    add_entry(store, "one", {"name": "One"}, {"network.prototxt": ("network", NET.encode())})
    _write(os.path.join(store, "two", "info.json"), {"name": "Two"})
    _write(os.path.join(store, "master.json"), {"msg": "m", "children": ["gone", "one"]})
    assert rebuild_master(store)["children"] == ["one", "two"]


def test_default_colormap_matches_voc():
    assert mf.default_colormap(4) == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
