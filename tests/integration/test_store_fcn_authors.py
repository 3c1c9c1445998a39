"""The bundled FCN-AlexNet entry feeds the FCN authors' weights what they were trained on: BGR minus their mean.

No download: a caffemodel with random weights in the authors' layer names and blob shapes
(voc-fcn-alexnet/net.py: no groups on the upsampling deconvolution, whose weights are
bilinear kernels on the diagonal) is served from a local copy of the bundled entry, with
its size and sha256 in the manifest as any store would publish them.
"""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from digits_seg.config import load_settings
from digits_seg.inference.predictor import Predictor
from digits_seg.networks.caffemodel import write_caffemodel
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.prototxt import parse
from digits_seg.networks.weights import read_blobs
from digits_seg.store import importer
from digits_seg.store.assemble import sha256_of
from digits_seg.store.index import bundled_store
from digits_seg.store.publish import rebuild_master
from digits_seg.training.augment import to_input
from digits_seg.training.input_recipe import input_tensors, resolve_recipe

pytestmark = pytest.mark.slow  # 228 MB of FCN-AlexNet weights written, imported and run (about 15 s)

AUTHORS_MEAN_BGR = np.array([104.00699, 116.66877, 122.67892], np.float32)
"""The mean the authors' data layers subtracted (voc-fcn-alexnet/net.py), in B, G, R order."""

ALEXNET_SHAPES = {
    "conv1": [(96, 3, 11, 11), (96,)], "conv2": [(256, 48, 5, 5), (256,)], "conv3": [(384, 256, 3, 3), (384,)],
    "conv4": [(384, 192, 3, 3), (384,)], "conv5": [(256, 192, 3, 3), (256,)], "fc6": [(4096, 256, 6, 6), (4096,)],
    "fc7": [(4096, 4096, 1, 1), (4096,)], "score_fr": [(21, 4096, 1, 1), (21,)],
}


def bilinear_diagonal(classes, k):
    """C×C×k×k deconvolution weights: a bilinear kernel from each class to itself, zero across classes."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    ramp = 1 - np.abs(np.arange(k) - center) / factor
    w = np.zeros((classes, classes, k, k), np.float32)
    w[np.arange(classes), np.arange(classes)] = np.outer(ramp, ramp)
    return w


class Info:
    """What the recipe needs of a dataset: here one whose own mean must not be used."""

    channels = 3
    mean_pixel = [50.0, 60.0, 70.0]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("fcn")
    store = root / "store"
    entry = store / "fcn-alexnet-voc"
    shutil.copytree(os.path.join(bundled_store(), "fcn-alexnet-voc"), entry)
    rng = np.random.default_rng(0)
    blobs = {k: [rng.standard_normal(s, dtype=np.float32) * 0.01 for s in shapes]
             for k, shapes in ALEXNET_SHAPES.items()}
    blobs["upscore"] = [bilinear_diagonal(21, 63)]
    weights = entry / "fcn-alexnet-pascal.caffemodel"
    write_caffemodel(blobs, str(weights), name="FCN-AlexNet")
    manifest = json.loads((entry / "manifest.json").read_text())
    (wfile,) = [f for f in manifest["files"] if f["role"] == "weights"]
    wfile.pop("url")
    wfile.update(size=os.path.getsize(weights), sha256=sha256_of(str(weights)))
    (entry / "manifest.json").write_text(json.dumps(manifest))
    rebuild_master(str(store), msg="local copy")

    settings = load_settings({"store_urls": str(store), "jobs_dir": str(root / "jobs")}, environ={})
    job = root / "jobs" / "pretrained"
    job.mkdir(parents=True)
    lines = []
    params = importer.validate_params({"store": str(store), "model": "fcn-alexnet-voc"}, settings)
    importer.import_model(str(job), params, on_progress=lambda f, m: None, should_stop=lambda: False,
                          log=lines.append, settings=settings)
    return str(job), blobs, lines


def _image():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    img[:8, :, 0], img[:8, :, 2] = 250, 5  # a red band: swapping R and B cannot go unnoticed
    return img


def _expected(img):
    return (img[:, :, ::-1].astype(np.float32) - AUTHORS_MEAN_BGR).transpose(2, 0, 1)


def _conv1_input(net, data):
    """The tensor the net's first convolution receives for `data`."""
    seen = []
    conv1 = dict(zip(net.layer_names, net.layers))["conv1"]
    handle = conv1.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        with torch.no_grad():
            net(data)
    finally:
        handle.remove()
    return seen[0][0].numpy()


def test_import_records_bgr_minus_the_authors_mean_and_no_mean_layer(imported):
    job, blobs, lines = imported
    with open(os.path.join(job, "preprocess.json")) as f:
        pre = json.load(f)
    assert pre["channel_order"] == "BGR" and pre["mean_subtraction"] == "pixel"
    np.testing.assert_allclose(pre["mean_pixel"], AUTHORS_MEAN_BGR, rtol=0, atol=1e-4)
    assert pre["scale"] == 1.0
    with open(os.path.join(job, "network.prototxt")) as f:
        layers = parse(f.read()).get_all("layer")
    assert [l.get("type") for l in layers].count("Power") == 0
    assert layers[0].get("name") == "conv1" and layers[0].get_all("bottom") == ["data"]
    got = read_blobs(os.path.join(job, "weights.h5"))
    np.testing.assert_array_equal(got["conv1"][0], blobs["conv1"][0])
    assert got["upscore"][0].shape == (21, 1, 63, 63)  # the authors' diagonal, as our grouped layer
    np.testing.assert_array_equal(got["upscore"][0][:, 0], blobs["upscore"][0][np.arange(21), np.arange(21)])
    assert any("upscore 21x21x63x63" in line for line in lines)


def test_inference_feeds_conv1_bgr_minus_the_authors_mean(imported):
    job, _blobs, _lines = imported
    predictor = Predictor.from_model_dir(job, backend="torch")
    assert predictor.load_report.by_status("mismatch") == []
    img = _image()
    got = _conv1_input(predictor.net, predictor.to_tensor(img))
    np.testing.assert_allclose(got, _expected(img), rtol=0, atol=1e-4)
    assert predictor.predict(img, tile=0).shape == (40, 48)


def test_fine_tuning_feeds_conv1_the_same(imported):
    job, _blobs, _lines = imported
    log = []
    rec = resolve_recipe({"mean_subtraction": "model"}, Info(), None, job, log.append)
    mean, bgr, scale = input_tensors(rec, Info(), "cpu")
    img = _image()
    data = to_input(torch.from_numpy(img.transpose(2, 0, 1).copy())[None], mean, bgr=bgr, scale=scale)
    with open(os.path.join(job, "network.prototxt")) as f:
        net = compile_net(f.read(), phase="train", include_loss=False, input_shape=(3, 40, 48)).eval()
    np.testing.assert_allclose(_conv1_input(net, data), _expected(img), rtol=0, atol=1e-4)
