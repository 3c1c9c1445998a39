"""Every registered layer runs forward+backward; tricky layers match hand computations."""

import math
import re

import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.fillers import bilinear_kernel, fill
from digits_seg.networks.layers import LAYERS
from digits_seg.networks.layers.pooling import caffe_pool_size
from digits_seg.networks.prototxt import parse

# type -> (extra layer body, bottoms, tops). Bottom "x" is conv'd data (4 channels, so
# gradients reach a parameter), "y" a second 4-channel blob, "label" the label.
SMOKE = {
    "Convolution": ("convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 2 dilation: 2 "
                    "weight_filler { type: \"xavier\" } }", ["x"], 1),
    "Deconvolution": ("convolution_param { num_output: 4 kernel_size: 4 stride: 2 "
                      "weight_filler { type: \"msra\" } }", ["x"], 1),
    "InnerProduct": ("inner_product_param { num_output: 5 weight_filler { type: \"gaussian\" std: 0.1 } }",
                     ["x"], 1),
    "Pooling": ("pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }", ["x"], 1),
    "ReLU": ("relu_param { negative_slope: 0.1 }", ["x"], 1),
    "PReLU": ("", ["x"], 1),
    "ELU": ("elu_param { alpha: 0.5 }", ["x"], 1),
    "Sigmoid": ("", ["x"], 1),
    "TanH": ("", ["x"], 1),
    "AbsVal": ("", ["x"], 1),
    "Power": ("power_param { power: 2 scale: 0.5 shift: 1 }", ["x"], 1),
    "Dropout": ("dropout_param { dropout_ratio: 0.3 }", ["x"], 1),
    "Softmax": ("", ["x"], 1),
    "LRN": ("lrn_param { local_size: 3 alpha: 0.1 beta: 0.75 }", ["x"], 1),
    "BatchNorm": ("", ["x"], 1),
    "Scale": ("scale_param { bias_term: true }", ["x"], 1),
    "Bias": ("", ["x"], 1),
    "Eltwise": ("eltwise_param { operation: SUM coeff: 1 coeff: -0.5 }", ["x", "y"], 1),
    "Concat": ("", ["x", "y"], 1),
    "Slice": ("slice_param { axis: 1 slice_point: 1 }", ["x"], 2),
    "Split": ("", ["x"], 2),
    "Crop": ("crop_param { axis: 2 offset: 2 }", ["x", "small"], 1),
    "Flatten": ("", ["x"], 1),
    "Reshape": ("reshape_param { shape { dim: 0 dim: -1 dim: 4 } }", ["x"], 1),
    "Interp": ("interp_param { zoom_factor: 2 }", ["x"], 1),
    "SoftmaxWithLoss": ("loss_param { ignore_label: 255 }", ["x", "label"], 1),
    "Accuracy": ("accuracy_param { ignore_label: 255 }", ["x", "label"], 1),
    "Silence": ("", ["x"], 0),
    "BN": ("bn_param { scale_filler { type: \"constant\" value: 1 } shift_filler { type: \"constant\" value: 0.1 } }",
           ["x"], 1),
    "Upsample": ("upsample_param { scale: 2 }", ["pooled", "mask"], 1),
}

PRELUDE = """
layer { name: "cx" type: "Convolution" bottom: "data" top: "x"
  convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "cy" type: "Convolution" bottom: "data" top: "y"
  convolution_param { num_output: 4 kernel_size: 1 weight_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "small" type: "Pooling" bottom: "y" top: "small" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "masked" type: "Pooling" bottom: "y" top: "pooled" top: "mask" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""


def _net(type_name, body, bottoms, ntops):
    tops = "".join(' top: "t%d"' % i for i in range(ntops))
    bots = "".join(' bottom: "%s"' % b for b in bottoms)
    return PRELUDE + 'layer { name: "L" type: "%s"%s%s %s }\n' % (type_name, bots, tops, body)


def test_every_registered_layer_has_a_smoke_case():
    assert set(LAYERS) == set(SMOKE)


@pytest.mark.parametrize("type_name", sorted(SMOKE))
def test_layer_forward_backward(type_name):
    torch.manual_seed(0)
    body, bottoms, ntops = SMOKE[type_name]
    net = compile_net(_net(type_name, body, bottoms, ntops), "train", input_shape=(3, 10, 12))
    data = torch.randn(2, 3, 10, 12)
    label = torch.randint(0, 4, (2, 1, 10, 12))
    label[:, :, 0, :] = 255
    out = net(data, label)
    tops = ["t%d" % i for i in range(ntops)]
    for t, expect in zip(tops, net.layer_info[-1]["shapes"]):
        assert list(out[t].shape) == [2] + expect[1:] if expect else out[t].dim() == 0
        assert torch.isfinite(out[t]).all()
    if type_name in ("Silence", "Accuracy"):
        return
    total = sum(out[t].float().sum() for t in tops)
    total.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_pooling_ceil_mode_matches_hand_computation():
    # H=6, k=3, s=2, p=0: ceil((6-3)/2)+1 = 3 windows: rows 0-2, 2-4, 4-5 (clipped).
    assert caffe_pool_size(6, 3, 2, 0) == 3
    # H=5, k=2, s=2, p=1: ceil((5+2-2)/2)+1 = 4, last window starts at 6-1=5 >= H+p? 6>=6 -> 3.
    assert caffe_pool_size(5, 2, 2, 1) == 3
    # AlexNet: 55 -> 27, and FCN conv1 with pad 100: 595 -> 297.
    assert caffe_pool_size(55, 3, 2, 0) == 27
    x = torch.arange(36, dtype=torch.float32).reshape(1, 1, 6, 6)
    net = compile_net('layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
                      "pooling_param { pool: MAX kernel_size: 3 stride: 2 } }", "deploy",
                      input_shape=(1, 6, 6))
    y = net(x)["p"][0, 0]
    assert y.tolist() == [[14, 16, 17], [26, 28, 29], [32, 34, 35]]


def test_ave_pooling_divides_by_window_clipped_to_pad():
    # 3x3 ones, k=2 s=2 p=1 -> windows start at -1, 1 (2 outputs; the 3rd would start at 3 >= H+p=4? no)
    assert caffe_pool_size(3, 2, 2, 1) == 2
    net = compile_net('layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
                      "pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 } }", "deploy",
                      input_shape=(1, 3, 3))
    y = net(torch.ones(1, 1, 3, 3))["p"][0, 0]
    # Window rows [-1,1): one real row of two (pad counts) -> 1/2 per axis; window [1,3): full.
    assert torch.allclose(y, torch.tensor([[0.25, 0.5], [0.5, 1.0]]))


def test_pooling_stride_larger_than_kernel_keeps_caffes_extra_window():
    # H=5, k=1, s=3, p=0: Caffe ceil((5-1)/3)+1 = 3 (no reduction without padding).
    assert caffe_pool_size(5, 1, 3, 0) == 3
    net = compile_net('layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
                      "pooling_param { pool: MAX kernel_size: 1 stride: 3 } }", "deploy",
                      input_shape=(1, 5, 5))
    x = torch.arange(25, dtype=torch.float32).reshape(1, 1, 5, 5)
    y = net(x)["p"][0, 0]
    # Windows start at 0, 3 and 6; the last lies outside the image and Caffe leaves
    # -FLT_MAX there (torch's ceil mode would drop it).
    low = torch.finfo(torch.float32).min
    assert y.tolist() == [[0, 3, low], [15, 18, low], [low, low, low]]


def test_crop_offsets_hand_computed():
    text = ('layer { name: "s" type: "Pooling" bottom: "data" top: "s" '
            'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }'
            'layer { name: "c" type: "Crop" bottom: "data" bottom: "s" top: "c" '
            'crop_param { axis: 2 offset: 1 offset: 2 } }')
    net = compile_net(text, "deploy", input_shape=(1, 8, 8))
    x = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    y = net(x)["c"]
    assert torch.equal(y, x[:, :, 1:5, 2:6])
    bad = text.replace("offset: 2", "offset: 5")
    with pytest.raises(ValidationError, match="offset 5"):
        compile_net(bad, "deploy", input_shape=(1, 8, 8))


def test_bilinear_filler_values():
    k = bilinear_kernel(4)
    row = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert torch.allclose(k, row[:, None] * row[None, :])
    k3 = bilinear_kernel(3)
    assert torch.allclose(k3[1], torch.tensor([0.5, 1.0, 0.5]))
    w = torch.empty(2, 1, 4, 4)
    fill(w, parse('type: "bilinear"'))
    assert torch.allclose(w[1, 0], k)


def test_xavier_and_msra_scale_from_fan_in():
    torch.manual_seed(0)
    w = torch.empty(64, 32, 3, 3)
    fill(w, parse('type: "xavier"'))
    bound = math.sqrt(3.0 / (32 * 9))
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    fill(w, parse('type: "msra" variance_norm: FAN_OUT'))
    assert abs(w.std().item() - math.sqrt(2.0 / (64 * 9))) < 0.01
    fill(w, parse('type: "positive_unitball"'))
    assert torch.allclose(w.view(64, -1).sum(1), torch.ones(64))
    with pytest.raises(ValidationError, match="unknown filler type 'bogus'"):
        fill(w, parse('type: "bogus"'))


def test_batchnorm_uses_scale_factor_and_updates_like_caffe():
    text = 'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" }'
    net = compile_net(text, "deploy", input_shape=(2, 3, 3))
    bn = net.layers[0]
    bn.mean.copy_(torch.tensor([4.0, 8.0]))
    bn.variance.copy_(torch.tensor([8.0, 2.0]))
    bn.scale_factor.fill_(2.0)      # real stats: mean (2, 4), var (4, 1)
    x = torch.tensor([6.0, 5.0]).view(1, 2, 1, 1).expand(1, 2, 3, 3)
    y = net(x)["data"][0, :, 0, 0]
    expect = torch.tensor([(6 - 2) / math.sqrt(4 + 1e-5), (5 - 4) / math.sqrt(1 + 1e-5)])
    assert torch.allclose(y, expect)
    train = compile_net(text, "train", input_shape=(2, 3, 3))
    bn = train.layers[0]
    x = torch.arange(36, dtype=torch.float32).view(2, 2, 3, 3)
    y = train(x)["data"]
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert bn.scale_factor.item() == 1.0
    ch0 = x[:, 0].flatten()
    assert torch.allclose(bn.mean[0], ch0.mean())
    assert torch.allclose(bn.variance[0], ch0.var(unbiased=True))


def _loss(normalization, scores, label, extra=""):
    text = ('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" '
            'top: "loss" loss_param { ignore_label: 255 %s %s } }' % (normalization, extra))
    net = compile_net(text, "train", input_shape=tuple(scores.shape[1:]))
    return net(scores, label)["loss"].item()


def test_softmax_loss_ignore_and_normalisation():
    scores = torch.zeros(2, 3, 1, 2)
    scores[0, 1, 0, 0] = math.log(2.0)       # p(class 1) = 2/4 at that pixel
    label = torch.tensor([[[[1, 255]]], [[[0, 2]]]])
    per_pixel = [-math.log(0.5), -math.log(1 / 3), -math.log(1 / 3)]   # (1,255) ignored
    total = sum(per_pixel)
    assert _loss("normalization: VALID", scores, label) == pytest.approx(total / 3, rel=1e-5)
    assert _loss("normalization: FULL", scores, label) == pytest.approx(total / 4, rel=1e-5)
    assert _loss("normalization: BATCH_SIZE", scores, label) == pytest.approx(total / 2, rel=1e-5)
    assert _loss("normalization: NONE", scores, label) == pytest.approx(total, rel=1e-5)
    assert _loss("normalize: false", scores, label) == pytest.approx(total / 2, rel=1e-5)
    assert _loss("normalize: true", scores, label) == pytest.approx(total / 3, rel=1e-5)


def test_accuracy_ignores_label_and_top_k():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]]).T.reshape(1, 3, 1, 3)
    label = torch.tensor([1, 1, 255]).view(1, 1, 1, 3)
    text = ('layer { name: "a" type: "Accuracy" bottom: "data" bottom: "label" top: "a" '
            'accuracy_param { ignore_label: 255 %s } }')
    net = compile_net(text % "", "val", input_shape=(3, 1, 3))
    assert net(scores, label)["a"].item() == pytest.approx(0.5)
    net = compile_net(text % "top_k: 2", "val", input_shape=(3, 1, 3))
    assert net(scores, label)["a"].item() == pytest.approx(1.0)


def test_lrn_divides_alpha_by_local_size():
    text = ('layer { name: "n" type: "LRN" bottom: "data" top: "n" '
            'lrn_param { local_size: 3 alpha: 3 beta: 1 k: 1 } }')
    net = compile_net(text, "deploy", input_shape=(3, 1, 1))
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    y = net(x)["n"].flatten()
    # channel 1: window {1,2,3}: 1 + 3/3 * (1+4+9) = 15 -> 2/15
    assert y[1].item() == pytest.approx(2 / 15)
    assert y[0].item() == pytest.approx(1 / (1 + 5))


def test_interp_align_corners_and_size_rules():
    text = 'layer { name: "i" type: "Interp" bottom: "data" top: "i" interp_param { %s } }'
    net = compile_net(text % "zoom_factor: 2", "deploy", input_shape=(1, 2, 2))
    y = net(torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]]))["i"]
    assert list(y.shape) == [1, 1, 3, 3]          # 2 + (2-1)*(2-1)
    assert y[0, 0, 0].tolist() == pytest.approx([0.0, 0.5, 1.0])
    net = compile_net(text % "shrink_factor: 2", "deploy", input_shape=(1, 5, 5))
    assert net.layer_info[0]["shapes"] == [[1, 1, 3, 3]]
    with pytest.raises(ValidationError, match="interp_param needs"):
        compile_net(text % "", "deploy", input_shape=(1, 5, 5))


def test_eltwise_prod_max_and_reshape():
    text = ('layer { name: "e" type: "Eltwise" bottom: "data" bottom: "data" top: "p" '
            'eltwise_param { operation: PROD } }'
            'layer { name: "m" type: "Eltwise" bottom: "data" bottom: "p" top: "m" '
            'eltwise_param { operation: MAX } }'
            'layer { name: "r" type: "Reshape" bottom: "m" top: "r" reshape_param { shape { dim: 0 dim: -1 } } }')
    net = compile_net(text, "deploy", input_shape=(1, 1, 3))
    x = torch.tensor([[[[-2.0, 0.5, 3.0]]]])
    out = net(x)["r"]
    assert out.tolist() == [[4.0, 0.5, 9.0]]


def test_in_place_layers_chain_versions():
    text = ('layer { name: "p" type: "Power" bottom: "data" top: "data" power_param { shift: -1 } }'
            'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }')
    net = compile_net(text, "deploy", input_shape=(1, 1, 2))
    x = torch.tensor([[[[0.0, 3.0]]]])
    assert net(x)["data"].tolist() == [[[[0.0, 2.0]]]]
    assert x.tolist() == [[[[0.0, 3.0]]]]           # the caller's tensor is untouched


@pytest.mark.parametrize("mutation", ["-1", "0", "2.5", '"x"', "BOGUS", "100000", "{ }"])
def test_mutated_values_give_validation_errors_never_crashes(mutation):
    """Replace each value of each smoke layer in turn: compile succeeds or says why."""
    for type_name, (body, bottoms, ntops) in SMOKE.items():
        base = _net(type_name, body, bottoms, ntops)
        start = base.index('layer { name: "L"')
        for m in re.finditer(r'\w+(: (-?[\d.]+|[A-Z_]+|"\w+"))', base[start:]):
            a, b = start + m.start(1), start + m.end(1)
            text = base[:a] + (" " if mutation.startswith("{") else ": ") + mutation + base[b:]
            try:
                compile_net(text, "train", input_shape=(3, 10, 12), device="meta")
            except ValidationError:
                pass


def test_scale_and_bias_with_two_bottoms_and_shared_prelu():
    text = ('layer { name: "g" type: "Pooling" bottom: "data" top: "g" pooling_param { pool: AVE global_pooling: true } }'
            'layer { name: "f" type: "Flatten" bottom: "g" top: "f" }'
            'layer { name: "s" type: "Scale" bottom: "data" bottom: "f" top: "s" scale_param { axis: 0 } }'
            'layer { name: "b" type: "Bias" bottom: "s" bottom: "f" top: "b" bias_param { axis: 0 } }'
            'layer { name: "p" type: "PReLU" bottom: "b" top: "p" prelu_param { channel_shared: true } }')
    net = compile_net(text, "deploy", input_shape=(2, 1, 2))
    x = torch.tensor([[[[1.0, -3.0]], [[2.0, 4.0]]]])      # channel means -1 and 3
    y = net(x)["p"]
    expect = torch.tensor([[[[-1.0 - 1.0, 3.0 - 1.0]], [[6.0 + 3.0, 12.0 + 3.0]]]])
    expect = torch.where(expect > 0, expect, 0.25 * expect)
    assert torch.allclose(y, expect)
    assert [tuple(b.shape) for b in net.layer_blobs()["p"]] == [(1,)]


def _caffe_pool_reference(x, k, s, p, method):
    """Caffe's pooling loops, written out plainly (one channel, 2-D list in, list out)."""
    h, w = len(x), len(x[0])
    oh, ow = caffe_pool_size(h, k, s, p), caffe_pool_size(w, k, s, p)
    out = []
    for i in range(oh):
        row = []
        for j in range(ow):
            hs, ws = i * s - p, j * s - p
            he, we = min(hs + k, h + p), min(ws + k, w + p)
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            vals = [x[a][b] for a in range(hs, he) for b in range(ws, we)]
            if method == "MAX":
                row.append(max(vals) if vals else torch.finfo(torch.float32).min)
            else:
                row.append(sum(vals) / size if size else float("nan"))   # Caffe: 0/0
        out.append(row)
    return out


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("k,s,p", [(3, 2, 0), (2, 2, 1), (3, 2, 2), (3, 3, 1), (1, 2, 0), (2, 3, 0), (4, 2, 3)])
@pytest.mark.parametrize("size", [5, 6, 7])
def test_pooling_matches_caffe_loops(method, k, s, p, size):
    if p >= k:
        pytest.skip("Caffe requires pad < kernel")
    torch.manual_seed(size)
    x = torch.randn(1, 1, size, size + 1)
    net = compile_net('layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param '
                      '{ pool: %s kernel_size: %d stride: %d pad: %d } }' % (method, k, s, p),
                      "deploy", input_shape=(1, size, size + 1))
    got = net(x)["p"][0, 0]
    ref = torch.tensor(_caffe_pool_reference(x[0, 0].tolist(), k, s, p, method))
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5, equal_nan=True)


def test_interp_plain_bilinear_and_reference_size():
    text = ('layer { name: "s" type: "Pooling" bottom: "data" top: "s" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }'
            'layer { name: "i" type: "Interp" bottom: "s" bottom: "data" top: "i" interp_param { align_corners: false } }')
    net = compile_net(text, "deploy", input_shape=(1, 5, 7))
    x = torch.randn(1, 1, 5, 7)
    y = net(x)["i"]
    small = torch.nn.functional.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=True)
    assert y.shape == x.shape
    assert torch.allclose(y, torch.nn.functional.interpolate(small, size=(5, 7), mode="bilinear",
                                                             align_corners=False))
