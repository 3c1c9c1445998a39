"""`digits-seg train --solver` with FCN-8s's solver (base_lr 1e-14 for `normalize: false`): the job trains
at base_lr x the dataset's labelled pixels per image, or the command is refused before any job exists."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from digits_seg.cli import main

# A tiny FCN-shaped train file with FCN's loss_param (the summed loss divided by the batch size only).
TRAIN = """name: "tiny-unnormalised"
layer { name: "data" type: "Python" top: "data" top: "label"
  python_param { module: "voc_layers" layer: "SBDDSegDataLayer" param_str: "{}" } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score"
  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "msra" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param { ignore_label: 255 normalize: false } }
"""


def _voc_like_folders(root, count=6, size=(32, 24)):
    """RGB images and index labels 0..2 with VOC's 255 void borders of varying width."""
    rng = np.random.default_rng(5)
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "labels"))
    w, h = size
    for i in range(count):
        label = rng.integers(0, 3, size=(h, w), dtype=np.uint8)
        label[: 1 + i % 3, :] = 255
        label[:, -(1 + i % 2):] = 255
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(
            os.path.join(root, "images", "2008_%06d.jpg" % i), quality=95)
        Image.fromarray(label, "L").save(os.path.join(root, "labels", "2008_%06d.png" % i))
    with open(os.path.join(root, "classes.txt"), "w") as fh:
        fh.write("background\naeroplane\nbicycle\n")


@pytest.mark.slow
def test_fcn8s_solver_trains_at_its_rate_times_the_labelled_pixels(shared_data, tmp_path, capsys):
    from digits_seg.datasets.reader import SegmentationLMDB

    src, jobs = str(tmp_path / "voc"), str(tmp_path / "jobs")
    _voc_like_folders(src)
    assert main(["dataset", "create", "--jobs-dir", jobs, "--images", os.path.join(src, "images"),
                 "--labels", os.path.join(src, "labels"), "--classes", os.path.join(src, "classes.txt"),
                 "--val-pct", "34", "--now", "--json"]) == 0
    ds = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["id"]
    # Labelled pixels per training image, counted from the stored labels themselves.
    train = SegmentationLMDB(os.path.join(jobs, ds, "train_db"))
    per_image = np.mean([(train[i][1] != 255).sum() for i in range(len(train))])
    fcn = tmp_path / "voc-fcn8s"
    fcn.mkdir()
    (tmp_path / "net.prototxt").write_text(TRAIN)
    # network show at the size training on this dataset uses (its 32x24 images), not an assumed one.
    assert main(["network", "show", str(tmp_path / "net.prototxt"), "--jobs-dir", jobs, "--dataset", ds, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["input"] == {"shape": [3, 24, 32], "origin": "dataset", "assumed": False,
                              "reason": "dataset %s: the dataset's training images (32×24, 3 channel(s))" % ds}
    assert any("loss_param normalize: false" in p for p in shown["problems"])
    shutil.copy(os.path.join(shared_data, "caffe", "fcn", "voc-fcn8s_solver.prototxt"), fcn / "solver.prototxt")

    # Without the network the rate was tuned for, 1e-14 cannot be rescaled: refused, nothing created.
    assert main(["train", "--jobs-dir", jobs, "--dataset", ds, "--network", "tiny-fcn", "--solver",
                 str(fcn / "solver.prototxt"), "--epochs", "1", "--now"]) == 2
    err = capsys.readouterr().err
    assert "solver.prototxt line 10: base_lr 1e-14 is a rate for an unnormalised (summed) loss" in err
    assert "named as its train_net says, or give that network with --custom" in err
    assert not [d for d in os.listdir(jobs) if d != ds and not d.startswith(".")]

    # The train.prototxt it names beside it (normalize: false): rates rescaled by K = labelled pixels per image.
    (fcn / "train.prototxt").write_text(TRAIN)
    assert main(["train", "--jobs-dir", jobs, "--dataset", ds, "--custom", str(fcn / "train.prototxt"),
                 "--solver", str(fcn / "solver.prototxt"), "--epochs", "1", "--batch-size", "1", "--workers", "0",
                 "--now", "--json"]) == 0
    captured = capsys.readouterr()
    job_dir = json.loads(captured.out.strip().splitlines()[-1])[0]["dir"]
    with open(os.path.join(job_dir, "job.json")) as fh:
        params = json.load(fh)["params"]
    with open(os.path.join(job_dir, "log.txt")) as fh:
        assert "The network's loss normalization BATCH_SIZE is not used: the loss is averaged over labelled " \
               "pixels, at base_lr %g" % params["base_lr"] in fh.read()
    assert params["base_lr"] == pytest.approx(1e-14 * per_image, rel=1e-5)
    assert params["weight_decay"] == pytest.approx(0.0005 / per_image, rel=1e-5)
    assert params["momentum"] == 0.99 and params["epochs"] == 1
    assert "train.prototxt line 10: normalize: false" in captured.err
    assert "solver file: base_lr 1e-14 x K {:,.0f} -> base_lr".format(per_image) in captured.err
