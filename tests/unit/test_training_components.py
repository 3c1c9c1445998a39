"""Augmentation, loss, class weights, solver and metrics log of the training package."""

import json
import os

import numpy as np
import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.prototxt import parse
from digits_seg.training.augment import JointTransform, hflip, mean_tensor, random_crop, random_scale, to_input
from digits_seg.training.loader import EpochSampler, class_weights
from digits_seg.training.loss import segmentation_loss, soft_dice_loss
from digits_seg.training.metrics_log import append_metrics, curves, read_metrics, truncate_metrics
from digits_seg.training.solver import SOLVER_TYPES, build_optimizer, set_lr, solver_prototxt

TINY = """
name: "tiny"
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param { ignore_label: 255 } }
"""


def coded_pair(h=20, w=30):
    """An image whose pixels encode their own coordinates, and a label derived from the same coordinates."""
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([yy, xx, (yy + xx) % 256], axis=2).astype(np.uint8)
    label = ((yy * 7 + xx) % 5).astype(np.uint8)
    return image, label


def test_joint_crop_keeps_image_and_label_aligned():
    rng = np.random.default_rng(1)
    t = JointTransform(crop_size=12, flip=True, scale_range=None)
    for _ in range(20):
        img, lab = t(*coded_pair(), rng)
        assert img.shape == (12, 12, 3) and lab.shape == (12, 12)
        yy, xx = img[:, :, 0].astype(int), img[:, :, 1].astype(int)
        assert np.array_equal(lab, (yy * 7 + xx) % 5)


def test_crop_larger_than_image_pads_label_with_ignore():
    img, lab = random_crop(*coded_pair(10, 8), 16, np.random.default_rng(0))
    assert img.shape == (16, 16, 3)
    assert (lab[10:, :] == 255).all() and (lab[:, 8:] == 255).all()
    assert (img[10:, :] == 0).all()
    assert (lab[:10, :8] != 255).all()


def test_flip_and_scale_are_joint_and_nearest():
    image, label = coded_pair()
    flipped = [hflip(image, label, np.random.default_rng(s)) for s in range(8)]
    assert any(f[1][0, 0] == label[0, -1] for f in flipped)
    for fi, fl in flipped:
        assert np.array_equal(fl, (fi[:, :, 0].astype(int) * 7 + fi[:, :, 1]) % 5)
    img, lab = random_scale(image, label, 1.7, 1.7, np.random.default_rng(0))
    assert img.shape[:2] == lab.shape == (34, 51)
    assert set(np.unique(lab)) <= set(np.unique(label))


def test_mean_subtraction():
    class Info:
        mean_pixel = [10.0, 20.0, 30.0]

    x = torch.full((2, 3, 4, 4), 100, dtype=torch.uint8)
    m = mean_tensor("pixel", Info(), 3, "cpu")
    out = to_input(x, m)
    assert out.dtype == torch.float32 and out[0, :, 0, 0].tolist() == [90.0, 80.0, 70.0]
    assert mean_tensor("none", Info(), 3, "cpu") is None
    assert to_input(x, None)[0, 0, 0, 0] == 100.0


def test_loss_ignores_255_and_applies_weights():
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 5, 6)
    target = torch.randint(0, 3, (2, 5, 6))
    target[0, 0, :] = 255
    keep = target != 255
    logp = torch.log_softmax(scores, 1)
    picked = logp.gather(1, target.clamp(max=2).unsqueeze(1)).squeeze(1)
    want = -(picked[keep]).mean()
    assert torch.allclose(segmentation_loss(scores, target), want, atol=1e-6)
    w = torch.tensor([1.0, 2.0, 0.5])
    ww = w[target.clamp(max=2)][keep]
    want_w = -(picked[keep] * ww).sum() / ww.sum()
    assert torch.allclose(segmentation_loss(scores, target, weight=w), want_w, atol=1e-6)
    perfect = torch.nn.functional.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 50
    assert float(soft_dice_loss(perfect, target)) < 1e-4
    assert float(segmentation_loss(scores, target, dice_weight=1.0)) > float(want)


def test_class_weights():
    counts = [100, 300, 0, 600]
    assert class_weights("none", counts) is None
    inv = class_weights("inverse", counts)
    freq = np.array([0.1, 0.3, 0, 0.6])
    assert inv[2] == 1.0
    assert np.isclose((inv * freq).sum(), 1.0)
    assert inv[0] / inv[3] == pytest.approx(6.0)
    med = class_weights("median", counts)
    assert med[0] / med[1] == pytest.approx(3.0) and med[1] > med[3]
    with pytest.raises(ValidationError):
        class_weights("inverse", [0, 0])


def test_sampler_is_deterministic_per_epoch():
    s = EpochSampler(10, True, seed=3)
    s.set_epoch(1)
    a = list(s)
    s.set_epoch(2)
    b = list(s)
    s.set_epoch(1)
    assert list(s) == a and a != b
    assert sorted(i for _, i in a) == list(range(10)) and all(e == 1 for e, _ in a)


@pytest.mark.parametrize("kind", SOLVER_TYPES)
def test_every_solver_type_trains_the_compiled_net(kind):
    torch.manual_seed(0)
    net = compile_net(TINY, phase="train", include_loss=False)
    params = {"solver_type": kind, "base_lr": 0.05 if kind != "AdaDelta" else 1.0, "momentum": 0.9}
    opt = build_optimizer(net.param_groups(params["base_lr"], 0.0005), params)
    assert {g["lr_mult"] for g in opt.param_groups} == {1, 2}
    x = torch.randn(2, 3, 8, 8)
    y = (x[:, 0] > 0).long()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = segmentation_loss(net(x)[net.score_blob], y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    set_lr(opt, 0.5)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(g["initial_lr"] * 0.5)


def test_solver_prototxt_is_caffe_text():
    p = {"solver_type": "SGD", "base_lr": 0.01, "lr_policy": "multistep", "lr_stepvalues": [50, 85], "lr_gamma": 0.1,
         "momentum": 0.9, "weight_decay": 0.0005, "iter_size": 2, "val_interval": 1, "snapshot_interval": 2, "seed": 4}
    msg = parse(solver_prototxt(p, 200, 20))
    assert msg.get("base_lr") == 0.01 and msg.get("type") == "SGD" and msg.get("lr_policy") == "multistep"
    assert msg.get_all("stepvalue") == [100, 170]
    assert msg.get("test_interval") == 20 and msg.get("snapshot") == 40 and msg.get("max_iter") == 200
    assert msg.get("iter_size") == 2 and msg.get("random_seed") == 4


def test_metrics_log_tolerates_partial_line_and_truncates(tmp_path):
    d = str(tmp_path)
    for it in (10, 20, 30):
        append_metrics(d, {"type": "train", "iteration": it, "loss": 1.0 / it})
    append_metrics(d, {"type": "val", "iteration": 30, "loss": 0.5, "mean_iou": 0.4})
    with open(os.path.join(d, "metrics.jsonl"), "a") as f:
        f.write('{"type": "train", "iteration": 4')
    recs = read_metrics(d)
    assert [r["iteration"] for r in recs] == [10, 20, 30, 30]
    assert len(read_metrics(d, "val")) == 1
    c = curves(recs)
    assert c["train"]["iteration"] == [10, 20, 30] and c["val"]["mean_iou"] == [0.4]
    assert truncate_metrics(d, 20) == 2
    assert [r["iteration"] for r in read_metrics(d)] == [10, 20]
    with open(os.path.join(d, "metrics.jsonl")) as f:
        assert all(json.loads(line) for line in f)
    with pytest.raises(ValueError):
        append_metrics(d, {"loss": float("nan")})
