"""The bundled model store: in sync with the standard networks, readable, importable offline."""

import os
import subprocess
import sys

from digits_seg.config import load_settings, repo_root
from digits_seg.networks.prototxt import parse
from digits_seg.store import importer, index
from digits_seg.store.assemble import guess_num_classes

STORE = os.path.join(repo_root(), "model_store")


def test_bundled_store_matches_the_standard_networks():
    proc = subprocess.run([sys.executable, os.path.join(STORE, "build.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bundled_store_lists_every_architecture():
    listing = index.list_store(index.bundled_store())
    assert listing["warnings"] == []
    models = {m["architecture"]: m for m in listing["models"]}
    assert {"fcn-alexnet", "fcn-8s", "unet", "deeplab-v3", "fc-densenet"} <= set(models)
    for m in listing["models"]:
        assert m["license"] and m["source"]["url"] and m["classes"]
        net = [f for f in m["files"] if f["role"] == "network"]
        assert len(net) == 1 and len(net[0]["sha256"]) == 64
    fcn8 = models["fcn-8s"]
    assert fcn8["needs_internet"] and fcn8["num_classes"] == 21
    (weights,) = [f for f in fcn8["files"] if f["role"] == "weights"]
    assert weights["url"].startswith("http://dl.caffe.berkeleyvision.org/")
    assert weights["other_hashes"]["sha1"] == "c449ea74dd7d83751d1357d6a8c323fcf4038962"


def test_network_descriptions_parse_with_their_class_count():
    for m in index.list_store(index.bundled_store())["models"]:
        (net,) = [f for f in m["files"] if f["role"] == "network"]
        with open(net["location"], encoding="utf-8") as fh:
            msg = parse(fh.read(), source=net["location"])
        assert guess_num_classes(msg) == m["num_classes"], m["id"]


def test_network_only_entry_imports_offline(tmp_path):
    settings = load_settings({"jobs_dir": str(tmp_path)}, environ={})
    job = tmp_path / "job"
    job.mkdir()
    params = importer.validate_params({"store": index.bundled_store(), "model": "unet"}, settings)
    result = importer.import_model(str(job), params, on_progress=lambda f, m: None, should_stop=lambda: False,
                                   log=lambda t: None, settings=settings)
    assert result["has_weights"] is False and result["architecture"] == "unet"
    assert (job / "labels.txt").read_text() == "background\nforeground\n"


AUTHORS_DECONVS = {"fcn-alexnet-voc": {"upscore": 63}, "fcn-8s-voc": {"upscore2": 4, "upscore_pool4": 4, "upscore8": 16}}
"""The FCN authors' upsampling layers (voc-fcn-alexnet/net.py, voc-fcn8s/net.py) and their kernel sizes."""


def test_fcn_entries_feed_the_authors_input_and_take_their_upsampling_weights():
    import numpy as np

    from digits_seg.store.blob_fit import group_diagonal_blobs, network_blob_shapes

    rng = np.random.default_rng(0)
    for model, deconvs in AUTHORS_DECONVS.items():
        entry = index.read_entry(STORE, model)
        pre = entry["preprocess"]
        assert (pre["channel_order"], pre["mean_subtraction"], pre["scale"]) == ("BGR", "pixel", 1.0), model
        assert pre["mean_pixel"] == [104.00699, 116.66877, 122.67892], model  # B, G, R as the authors' data layer
        (net,) = [f for f in entry["files"] if f["role"] == "network"]
        with open(net["location"], encoding="utf-8") as fh:
            text = fh.read()
        layers = parse(text).get_all("layer")
        assert "Power" not in [l.get("type") for l in layers], model  # no "- 116" on top of the mean
        assert layers[0].get("type") == "Convolution" and layers[0].get_all("bottom") == ["data"], model
        # the authors' C×C×k×k deconvolutions (bilinear on the diagonal, zero across classes) fit our grouped ones
        kernels = {name: rng.random((k, k)).astype(np.float32) for name, k in deconvs.items()}
        blobs = {name: [np.eye(21, dtype=np.float32)[:, :, None, None] * kern] for name, kern in kernels.items()}
        blobs["not_diagonal"] = [np.ones((21, 21, 4, 4), np.float32)]
        fitted = group_diagonal_blobs(blobs, text, lambda _line: None)
        shapes = network_blob_shapes(text)
        for name, kern in kernels.items():
            assert fitted[name][0].shape == shapes[name][0] == (21, 1) + kern.shape, (model, name)
            assert all(np.array_equal(fitted[name][0][c, 0], kern) for c in range(21)), (model, name)
        assert fitted["not_diagonal"][0] is blobs["not_diagonal"][0]
        unchanged = {"not_diagonal": blobs["not_diagonal"]}
        assert group_diagonal_blobs(unchanged, text, lambda _line: None) is unchanged  # a verified file is kept
