"""Compile the real Caffe/FCN/DIGITS prototxts in ../shared/data/caffe and compare tables."""

import glob
import os

import numpy as np
import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.shapes import layer_table, total_params
from digits_seg.networks.standard import standard_prototxt

# file -> (phase, input C×H×W, expected parameter count or None)
EXPECTED = {
    "bvlc/bvlc_alexnet_deploy.prototxt": ("deploy", None, 60965224),
    "bvlc/bvlc_reference_caffenet_train_val.prototxt": ("train", (3, 227, 227), 60965224),
    "bvlc/mnist_lenet_train_test.prototxt": ("val", (1, 28, 28), 431080),
    "digits/fcn_alexnet.prototxt": ("val", (3, 375, 500), 57037610),
    "fcn/voc-fcn-alexnet_train.prototxt": ("train", (3, 375, 500), None),
    "fcn/voc-fcn-alexnet_val.prototxt": ("val", (3, 375, 500), None),
    "fcn/voc-fcn16s_val.prototxt": ("val", (3, 375, 500), None),
    "fcn/voc-fcn32s_train.prototxt": ("train", (3, 375, 500), None),
    "fcn/voc-fcn32s_val.prototxt": ("val", (3, 375, 500), None),
    "fcn/voc-fcn8s_deploy.prototxt": ("deploy", (3, 375, 500), 134489759),
    "fcn/voc-fcn8s_train.prototxt": ("train", (3, 375, 500), 134489759),
    "fcn/voc-fcn8s_val.prototxt": ("val", (3, 375, 500), 134489759),
    "lenet/lenet.prototxt": ("deploy", None, 431080),
}
UNSUPPORTED = {
    # Its Python data layer yields three blobs (image, semantic and geometric labels).
    "fcn/siftflow-fcn8s_test.prototxt": "bottom 'geo' is the extra top of data layer 'data' \\(Python SIFTFlowSegDataLayer",
}


def _read(shared_data, rel):
    with open(os.path.join(shared_data, "caffe", rel), encoding="utf-8") as fh:
        return fh.read()


def test_every_real_prototxt_is_covered(shared_data):
    found = {os.path.relpath(p, os.path.join(shared_data, "caffe"))
             for p in glob.glob(os.path.join(shared_data, "caffe", "*", "*.prototxt"))
             if "solver" not in p}
    assert found == set(EXPECTED) | set(UNSUPPORTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_real_prototxt_compiles(shared_data, rel):
    phase, shape, params = EXPECTED[rel]
    rows = layer_table(_read(shared_data, rel), phase, input_shape=shape, source=rel)
    if params is not None:
        assert total_params(rows) == params
    if "fcn" in rel and shape is not None:
        score = next(r for r in rows if r["name"] == "score")
        assert score["shapes"] == [[21, 375, 500]]


@pytest.mark.parametrize("rel", sorted(UNSUPPORTED))
def test_unsupported_real_prototxt_fails_clearly(shared_data, rel):
    with pytest.raises(ValidationError, match=UNSUPPORTED[rel]):
        compile_net(_read(shared_data, rel), "val", device="meta", source=rel)


def _by_name(rows):
    return {r["name"]: r for r in rows}


def test_our_fcn_alexnet_matches_digits(shared_data):
    ours = _by_name(layer_table(standard_prototxt("fcn-alexnet", 21), "val", input_shape=(3, 375, 500)))
    ref = _by_name(layer_table(_read(shared_data, "digits/fcn_alexnet.prototxt"), "val",
                               input_shape=(3, 375, 500)))
    common = set(ours) & set(ref)
    assert {"conv1", "pool5", "fc6", "fc7", "score_fr", "upscore", "score"} <= common
    for name in common:
        assert ours[name]["shapes"] == ref[name]["shapes"], name
        assert ours[name]["params"] == ref[name]["params"], name
    assert total_params(ours.values()) == total_params(ref.values())


def test_our_fcn8s_matches_fcn_repo(shared_data):
    ours = _by_name(layer_table(standard_prototxt("fcn-8s", 21), "deploy", input_shape=(3, 375, 500)))
    ref = _by_name(layer_table(_read(shared_data, "fcn/voc-fcn8s_deploy.prototxt"), "deploy",
                               input_shape=(3, 375, 500)))
    common = set(ours) & set(ref)
    assert {"conv1_1", "pool3", "pool4", "fc6", "score_pool4c", "score_pool3c", "upscore8", "score"} <= common
    for name in common:
        assert ours[name]["shapes"] == ref[name]["shapes"], name
        if ours[name]["type"] != "Deconvolution":
            assert ours[name]["params"] == ref[name]["params"], name
        else:   # FCN's upsampling is 21x21 with a diagonal bilinear kernel; ours is grouped.
            assert ref[name]["params"] == 21 * ours[name]["params"], name


FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"]


def _digit_images():
    """Render 0-9 white on black, centred in 28x28 like MNIST, in every font available."""
    from PIL import Image, ImageDraw, ImageFont
    fonts = [ImageFont.load_default(size=20)] + [ImageFont.truetype(f, 24) for f in FONTS
                                                 if os.path.exists(f)]
    images, digits = [], []
    for font in fonts:
        for d in range(10):
            img = Image.new("L", (28, 28), 0)
            draw = ImageDraw.Draw(img)
            box = draw.textbbox((0, 0), str(d), font=font)
            w, h = box[2] - box[0], box[3] - box[1]
            draw.text(((28 - w) / 2 - box[0], (28 - h) / 2 - box[1]), str(d), fill=255, font=font)
            images.append(np.asarray(img, dtype=np.float32))
            digits.append(d)
    return torch.from_numpy(np.stack(images)[:, None]), digits


def test_real_lenet_weights_classify_rendered_digits(shared_data):
    from digits_seg.networks.weights import load_weights
    net = compile_net(_read(shared_data, "lenet/lenet.prototxt"), "deploy")
    report = load_weights(net, os.path.join(shared_data, "caffe", "lenet", "lenet_iter_10000.caffemodel"))
    assert report.by_status("copied") == ["conv1", "conv2", "ip1", "ip2"]
    conv1 = net.layer_blobs()["conv1"][0].detach().flatten()[:3].tolist()
    assert conv1 == pytest.approx([0.048347, 0.182091, 0.02909], abs=1e-5)
    with torch.no_grad():
        images, digits = _digit_images()
        prob = net(images * 0.00390625)["prob"]
    predicted = prob.argmax(1).tolist()
    correct = sum(p == d for d, p in zip(digits, predicted))
    assert correct >= 0.75 * len(digits), list(zip(digits, predicted))
