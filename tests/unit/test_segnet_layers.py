"""caffe-segnet's layers: max-unpooling against numpy, BN's modes and its caffemodel blob layout."""

import numpy as np
import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.networks.caffemodel import read_caffemodel, write_caffemodel
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.weights import load_weights
from digits_seg.networks.wire import MessageWriter

UNPOOL = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 5 dim: 7 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "pool_mask"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "up" type: "Upsample" bottom: "pool" bottom: "pool_mask" top: "up"
  upsample_param { scale: 2 %s } }
layer { name: "keep" type: "Reshape" bottom: "pool" top: "pooled" reshape_param { shape { dim: 0 dim: 0 dim: 0 dim: 0 } } }
layer { name: "keep_mask" type: "Reshape" bottom: "pool_mask" top: "mask" reshape_param { shape { dim: 0 dim: 0 dim: 0 dim: 0 } } }
"""


def numpy_pool_unpool(x, out_h, out_w):
    """Caffe's MAX pooling k2 s2 (ceil: edge windows clipped, first maximum wins) and its unpooling."""
    n, c, h, w = x.shape
    ph, pw = -(-h // 2), -(-w // 2)
    pooled = np.zeros((n, c, ph, pw), np.float32)
    mask = np.zeros((n, c, ph, pw), np.int64)
    up = np.zeros((n, c, out_h, out_w), np.float32)
    for a in range(n):
        for b in range(c):
            for i in range(ph):
                for j in range(pw):
                    best, where = -np.inf, -1
                    for y in range(2 * i, min(2 * i + 2, h)):
                        for xx in range(2 * j, min(2 * j + 2, w)):
                            if x[a, b, y, xx] > best:
                                best, where = x[a, b, y, xx], y * w + xx
                    pooled[a, b, i, j], mask[a, b, i, j] = best, where
                    up[a, b, where // out_w, where % out_w] = best
    return pooled, mask, up


@pytest.mark.parametrize("extra,out", [("pad_out_h: true pad_out_w: true", (5, 7)),
                                       ("upsample_h: 5 upsample_w: 7", (5, 7))])
def test_unpooling_matches_numpy(extra, out):
    net = compile_net(UNPOOL % extra, "deploy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    got = net(torch.from_numpy(x))
    pooled, mask, up = numpy_pool_unpool(x, *out)
    assert np.allclose(got["pooled"].numpy(), pooled)
    assert np.array_equal(got["mask"].numpy(), mask)
    assert got["up"].shape == (2, 3) + out
    assert np.allclose(got["up"].numpy(), up)
    assert [r["shapes"] for r in net.layer_info[:2]] == [[[1, 3, 3, 4], [1, 3, 3, 4]], [[1, 3, out[0], out[1]]]]


def test_unpooling_with_plain_scale_is_one_larger_and_bad_sizes_are_refused():
    net = compile_net(UNPOOL % "", "deploy")
    assert net.layer_info[1]["shapes"] == [[1, 3, 6, 8]]
    with pytest.raises(ValidationError, match="pad_out_h/pad_out_w need scale 2"):
        compile_net(UNPOOL % "pad_out_h: true scale_h: 3 scale_w: 3", "deploy")
    with pytest.raises(ValidationError, match="same shape"):
        compile_net(UNPOOL.replace('bottom: "pool_mask"', 'bottom: "data"') % "", "deploy")
    with pytest.raises(ValidationError, match="mask top needs MAX pooling"):
        compile_net(UNPOOL.replace("pool: MAX", "pool: AVE") % "", "deploy")


def test_unpooling_passes_gradients_to_the_maxima_only():
    net = compile_net(UNPOOL % "pad_out_h: true pad_out_w: true", "train")
    x = torch.randn(2, 3, 5, 7, requires_grad=True)
    net(x)["up"].sum().backward()
    # Each 2x2 window passes the gradient to exactly its maximum: 3 x 4 windows per plane.
    assert x.grad.sum().item() == pytest.approx(2 * 3 * 12)
    assert set(x.grad.unique().tolist()) <= {0.0, 1.0}


BN = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: 5 dim: 6 } } }
layer { name: "bn" type: "BN" bottom: "data" top: "bn"
  bn_param { %s scale_filler { type: "constant" value: 1 } shift_filler { type: "constant" value: 0.001 } } }
"""


def test_bn_learn_mode_normalises_with_batch_statistics_then_uses_running_ones():
    net = compile_net(BN % "", "train")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 3, 5, 6)) * 3 + 2).astype(np.float32)
    scale = np.array([0.5, 2.0, -1.0], np.float32)
    shift = np.array([0.1, 0.0, 3.0], np.float32)
    load_weights(net, {"bn": [scale.reshape(1, 3, 1, 1), shift.reshape(1, 3, 1, 1)]})
    y = net(torch.from_numpy(x))["bn"].detach().numpy()
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)            # biased, as caffe-segnet's E(X^2) - E(X)^2
    expect = scale.reshape(1, 3, 1, 1) * (x - mean) / np.sqrt(var + 1e-9) + shift.reshape(1, 3, 1, 1)
    assert np.allclose(y, expect, atol=1e-4)
    blobs = net.layer_blobs()["bn"]
    assert [tuple(b.shape) for b in blobs] == [(1, 3, 1, 1)] * 4
    assert np.allclose(blobs[2].numpy().ravel(), 0.1 * mean.ravel(), atol=1e-5)   # momentum 0.1 from 0
    net.eval()
    run_mean, run_var = blobs[2].numpy(), blobs[3].numpy()
    y_eval = net(torch.from_numpy(x))["bn"].detach().numpy()
    expect_eval = scale.reshape(1, 3, 1, 1) * (x - run_mean) / np.sqrt(run_var + 1e-9) + shift.reshape(1, 3, 1, 1)
    assert np.allclose(y_eval, expect_eval, atol=1e-4)


def _legacy_caffemodel(path, layers):
    """Write a caffemodel the way 2015 Caffe (caffe-segnet) did: legacy num/channels/height/width dims."""
    net = MessageWriter().string(1, "segnet")
    for name, ltype, arrays in layers:
        layer = MessageWriter().string(1, name).string(2, ltype)
        for arr in arrays:
            blob = MessageWriter()
            for field, dim in zip((1, 2, 3, 4), arr.shape):
                blob.varint(field, dim)
            blob.packed_float32(5, arr.ravel())
            layer.message(7, blob)
        net.message(100, layer)
    path.write_bytes(net.to_bytes())
    return path


def test_bn_caffemodel_layout_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    scale = rng.uniform(0.5, 2, (1, 3, 1, 1)).astype(np.float32)
    shift = rng.standard_normal((1, 3, 1, 1)).astype(np.float32)
    src = _legacy_caffemodel(tmp_path / "segnet_inference.caffemodel", [("bn", "BN", [scale, shift])])
    x = rng.standard_normal((4, 3, 5, 6)).astype(np.float32)
    expect = x * scale + shift                      # bn_mode INFERENCE: scale and shift only

    inference = compile_net(BN % "bn_mode: INFERENCE", "deploy")
    report = load_weights(inference, str(src))
    assert report.by_status("copied") == ["bn"]
    assert np.allclose(inference(torch.from_numpy(x))["bn"].detach().numpy(), expect, atol=1e-6)
    out = write_caffemodel(inference, str(tmp_path / "out.caffemodel"))
    back = read_caffemodel(out)
    layer = back.layers[0]
    assert (layer.name, layer.type) == ("bn", "BN")
    assert [b.shape for b in layer.blobs] == [(1, 3, 1, 1), (1, 3, 1, 1)]
    assert np.array_equal(layer.blobs[0], scale) and np.array_equal(layer.blobs[1], shift)

    # The same file into a training (LEARN) net: evaluation then behaves as INFERENCE did.
    learn = compile_net(BN % "", "deploy")
    assert "mean 0, variance 1" in load_weights(learn, str(src)).lines()[1]
    assert np.allclose(learn(torch.from_numpy(x))["bn"].detach().numpy(), expect, atol=1e-5)

    # A LEARN net's four blobs (our snapshot) fold into an INFERENCE net: what compute_bn_statistics does.
    mean = rng.standard_normal((1, 3, 1, 1)).astype(np.float32)
    var = rng.uniform(0.5, 2, (1, 3, 1, 1)).astype(np.float32)
    learn_blobs = {"bn": [scale, shift, mean, var]}
    load_weights(learn, learn_blobs)
    report = load_weights(inference, learn_blobs)
    assert "folded" in report.lines()[1]
    a = learn(torch.from_numpy(x))["bn"].detach().numpy()
    b = inference(torch.from_numpy(x))["bn"].detach().numpy()
    assert np.allclose(a, b, atol=1e-5)
    assert np.allclose(a, scale * (x - mean) / np.sqrt(var + 1e-9) + shift, atol=1e-5)


def test_loss_class_weighting_and_per_class_accuracy():
    text = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 2 dim: 2 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" top: "loss"
  loss_param: { weight_by_label_freqs: true ignore_label: 3 class_weighting: 0.5 class_weighting: 2 class_weighting: 1 } }
layer { name: "accuracy" type: "Accuracy" bottom: "data" bottom: "label" top: "accuracy" top: "per_class_accuracy"
  accuracy_param { ignore_label: 3 } }
"""
    net = compile_net(text, "train")
    assert net.loss_spec["class_weights"] == [0.5, 2.0, 1.0]
    scores = torch.tensor([[[[2.0, 0.0], [0.0, 1.0]], [[0.0, 3.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]]])
    label = torch.tensor([[[[0, 1], [1, 3]]]])
    out = net(scores, label)
    s = scores.numpy()[0]
    logp = s - np.log(np.exp(s).sum(axis=0))
    w = np.array([0.5, 2.0, 1.0])
    terms = [(-w[0] * logp[0, 0, 0]), (-w[1] * logp[1, 0, 1]), (-w[1] * logp[1, 1, 0])]
    assert out["loss"].item() == pytest.approx(sum(terms) / 3, rel=1e-5)   # VALID: over labelled pixels
    # predictions: (0,0)->0 right, (0,1)->1 right, (1,0)->2 wrong (label 1); pixel (1,1) ignored
    assert out["accuracy"].item() == pytest.approx(2 / 3)
    assert out["per_class_accuracy"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    with pytest.raises(ValidationError, match="has 2 class_weighting values for 3 classes"):
        compile_net(text.replace("class_weighting: 1 ", ""), "train")
