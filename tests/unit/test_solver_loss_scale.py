"""A Caffe solver tuned for a summed loss (FCN-8s: base_lr 1e-14 with `normalize: false`) is rescaled to
the loss the trainer really uses (the mean over labelled pixels), or refused when that cannot be worked out."""

import os
import shutil

import numpy as np
import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.training.loss import segmentation_loss
from digits_seg.training.loss_scale import (LossContext, TunedLoss, loss_context, network_loss, training_pixels)
from digits_seg.training.solver_file import read_solver, solver_to_params


def _fcn(shared_data, name):
    return os.path.join(shared_data, "caffe", "fcn", name)


def _read(path):
    with open(path) as fh:
        return fh.read()


def _caffe_step(x, w, labels, lr, wd, divisor):
    """One Caffe SGD step (no momentum) of a 1x1 convolution scored by SoftmaxWithLoss, in numpy.

    Caffe's loss is the sum of -log p(label) over labelled pixels divided by `divisor` (the batch size
    for `normalize: false`); the weight decay adds wd * w to the gradient.
    """
    z = np.einsum("oc,nchw->nohw", w, x)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    valid = labels != 255
    onehot = np.zeros_like(p)
    n, h, ww = np.nonzero(valid)
    onehot[n, labels[valid], h, ww] = 1
    dz = (p - onehot) * valid[:, None] / divisor
    grad = np.einsum("nohw,nchw->oc", dz, x)
    return w - lr * (grad + wd * w)


def _our_step(x, w, labels, lr, wd):
    """The same step as the trainer takes it: segmentation_loss (mean over labelled pixels), torch SGD."""
    weight = torch.nn.Parameter(torch.from_numpy(w.copy()))
    opt = torch.optim.SGD([weight], lr=lr, weight_decay=wd)
    scores = torch.einsum("oc,nchw->nohw", weight, torch.from_numpy(x))
    segmentation_loss(scores, torch.from_numpy(labels.astype(np.int64)), ignore_label=255).backward()
    opt.step()
    return weight.detach().numpy()


@pytest.mark.parametrize("normalization,divisor_of", [("BATCH_SIZE", lambda n, v: n), ("NONE", lambda n, v: 1)])
def test_rescaled_rates_take_caffes_sgd_step_on_our_loss(normalization, divisor_of):
    rng = np.random.default_rng(0)
    n, c, k, h, w = 2, 3, 4, 6, 5
    x = rng.normal(size=(n, c, h, w))
    weights = rng.normal(size=(k, c))
    labels = rng.integers(0, k, size=(n, h, w))
    labels[:, 0, :] = 255                     # a VOC-like void border
    labels[1, :, 0] = 255
    valid = int((labels != 255).sum())
    msg = read_solver("base_lr: 1e-3\nweight_decay: 0.0005\nlr_policy: \"fixed\"\n", "solver.prototxt")
    pixels = training_pixels(valid, labels.size - valid, n)
    fields, said = solver_to_params(msg, None, n, "solver.prototxt",
                                    loss=LossContext(TunedLoss(normalization, "layer 'loss'"), pixels))
    caffe = _caffe_step(x, weights, labels, 1e-3, 0.0005, divisor_of(n, valid))
    ours = _our_step(x, weights, labels, fields["base_lr"], fields["weight_decay"])
    assert np.allclose(ours - weights, caffe - weights, rtol=1e-4, atol=0)
    # The rates as written would have moved the weights K times less than Caffe did.
    plain = _our_step(x, weights, labels, 1e-3, 0.0005)
    ratio = np.abs(caffe - weights).sum() / np.abs(plain - weights).sum()
    assert ratio == pytest.approx(valid / divisor_of(n, valid), rel=0.05)
    assert any(line.startswith("base_lr 0.001 x K ") for line in said)


def test_fcn8s_solver_is_rescaled_with_its_own_train_file(shared_data, tmp_path):
    # As in the FCN repository: solver.prototxt and the train.prototxt it names, side by side.
    shutil.copy(_fcn(shared_data, "voc-fcn8s_solver.prototxt"), tmp_path / "solver.prototxt")
    shutil.copy(_fcn(shared_data, "voc-fcn8s_train.prototxt"), tmp_path / "train.prototxt")
    msg = read_solver(_read(tmp_path / "solver.prototxt"), "solver.prototxt")
    # SBD's 8,498 training images, ~500x375 with ~5% void borders (the real counts come from the dataset).
    labelled, void, images = 8498 * 178125, 8498 * 9375, 8498
    context = loss_context(msg, None, None, None, str(tmp_path))
    assert context.tuned.normalization == "BATCH_SIZE"
    assert context.tuned.where.endswith("train.prototxt line 638: normalize: false")
    fields, said = solver_to_params(msg, images, 1, "solver.prototxt",
                                    loss=LossContext(context.tuned, training_pixels(labelled, void, images)))
    assert fields["base_lr"] == pytest.approx(1e-14 * 178125, rel=1e-5)
    assert fields["weight_decay"] == pytest.approx(0.0005 / 178125, rel=1e-5)
    assert fields["base_lr"] * fields["weight_decay"] == pytest.approx(1e-14 * 0.0005, rel=1e-4)
    assert fields["momentum"] == 0.99 and fields["epochs"] == 12
    assert "base_lr 1e-14 x K 178,125 -> base_lr 1.78125e-09 (the same SGD steps on our loss)" in said


def test_fcn_alexnet_solver_goes_with_a_normalised_loss_and_is_kept(shared_data):
    msg = read_solver(_read(_fcn(shared_data, "voc-fcn-alexnet_solver.prototxt")), "solver.prototxt")
    tuned = network_loss(_read(_fcn(shared_data, "voc-fcn-alexnet_train.prototxt")), "train.prototxt")
    assert tuned.normalization == "VALID"
    fields, said = solver_to_params(msg, 100, 1, "solver.prototxt", loss=LossContext(tuned, None))
    assert fields["base_lr"] == 1e-4 and fields["weight_decay"] == 0.0005
    assert any("averages its loss over labelled pixels as digits-seg does" in line for line in said)


def test_a_summed_loss_rate_without_its_network_or_dataset_is_refused(shared_data):
    msg = read_solver(_read(_fcn(shared_data, "voc-fcn8s_solver.prototxt")), "voc-fcn8s_solver.prototxt")
    with pytest.raises(ValidationError) as exc:
        solver_to_params(msg, 100, 1, "voc-fcn8s_solver.prototxt")
    assert exc.value.message.startswith("voc-fcn8s_solver.prototxt line 10: base_lr 1e-14 is a rate for an "
                                        "unnormalised (summed) loss")
    assert "give the base learning rate yourself" in exc.value.message
    # Given on the command line instead, the solver's rate is not used, so nothing is refused.
    fields, _ = solver_to_params(msg, 100, 1, "voc-fcn8s_solver.prototxt", keep={"base_lr"})
    assert fields["weight_decay"] == 0.0005
    tuned = network_loss(_read(_fcn(shared_data, "voc-fcn8s_train.prototxt")), "train.prototxt")
    with pytest.raises(ValidationError, match="the dataset has no pixel statistics"):
        solver_to_params(msg, 100, 1, "s", loss=LossContext(tuned, None, "the dataset has no pixel statistics"))


def test_adaptive_solvers_keep_the_rate_and_divide_the_decay():
    msg = read_solver('base_lr: 1e-3\nweight_decay: 0.01\ntype: "Adam"\n')
    tuned = network_loss('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label"\n'
                         '  loss_param { normalization: NONE } }')
    fields, _ = solver_to_params(msg, None, 2, loss=LossContext(tuned, training_pixels(400, 0, 4)))
    # NONE: K = labelled pixels per batch = 100 per image x batch 2.
    assert fields["base_lr"] == 1e-3 and fields["weight_decay"] == pytest.approx(0.01 / 200)


def test_labelled_pixels_follow_the_crop():
    # 10 images of 40x30 with 1/4 of their pixels void; crop 20: 400 pixels x 3/4 labelled.
    assert training_pixels(9000, 3000, 10, [40, 30], 20).labelled == pytest.approx(300)
    # A crop larger than the images sees the image only (the padding is void).
    assert training_pixels(9000, 3000, 10, [40, 30], 64).labelled == pytest.approx(900)
    assert training_pixels(0, 0, 10) is None
