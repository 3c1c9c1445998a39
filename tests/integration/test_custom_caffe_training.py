"""Real Caffe files train unmodified as custom networks: FCN's voc-fcn-alexnet train file on
SynthCity, and a SegNet-Basic-shaped file (caffe-segnet's BN, pooling masks, Upsample, class
weighting, void = 11) on a CamVid-layout dataset; then their deploy/inference files deploy it."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets import synthcity
from digits_seg.datasets.info import DatasetInfo
from digits_seg.inference.predictor import Predictor
from digits_seg.networks.analysis import analyse, deploy_prototxt
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.weights import load_weights
from digits_seg.training.params import validate_params
from digits_seg.training.trainer import train
from tests.conftest import build_dataset, synthcity_dataset

pytestmark = pytest.mark.slow


def _settings(root):
    return load_settings({"jobs_dir": root, "data_roots": [root]}, environ={})


def _train(job, text, dataset_dir, **over):
    raw = dict(network_kind="custom", custom_network=text, epochs=1, batch_size=1, base_lr=1e-4, solver_type="SGD",
               lr_policy="fixed", loader_workers=0, seed=1, mean_subtraction="pixel", val_previews=0)
    raw.update(over)
    params = validate_params(raw, None, DatasetInfo.load(dataset_dir))
    logs = []
    result = train(str(job), params, on_progress=lambda f, m: None, should_stop=lambda: False, log=logs.append,
                   dataset_dir=dataset_dir)
    return result, logs


def _input(model_dir, image):
    """The net input the Predictor builds: RGB minus the dataset's mean pixel, N×C×H×W float32."""
    import json
    with open(os.path.join(model_dir, "preprocess.json")) as fh:
        pre = json.load(fh)
    x = image.astype(np.float32) - np.asarray(pre["mean_pixel"], np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1)[None].copy())


def test_fcn_alexnet_train_file_trains_and_its_deploy_deploys(shared_data, tmp_path):
    root = str(tmp_path)
    # 57 M parameters; conv1's pad 100 lets any input size compile, so 32×32 images, 1 train + 1 val.
    ds = synthcity_dataset(_settings(root), os.path.join(root, "src"), os.path.join(root, "ds"), 2, (32, 32),
                           seed=3, val_pct=50)
    with open(os.path.join(shared_data, "caffe", "fcn", "voc-fcn-alexnet_train.prototxt")) as fh:
        text = fh.read()
    job = tmp_path / "job"
    job.mkdir()
    result, logs = _train(job, text, ds)
    assert result["iterations"] == 1 and os.path.exists(job / "best.h5")
    # FCN's file scores VOC's 21 classes: its class layers follow the dataset's 10.
    assert "Class count 21 -> 10: changed num_output of score_fr, upscore" in " ".join(logs)
    text = (job / "network.prototxt").read_text()

    image = np.asarray(Image.open(os.path.join(root, "src", "images", sorted(os.listdir(
        os.path.join(root, "src", "images")))[0])).convert("RGB"))
    pred = Predictor.from_model_dir(str(job)).predict(image)
    assert pred.shape == (32, 32) and pred.max() < 10
    # The deploy file `network show --deploy-out` derives (Input + layers, no Python data layer or loss)
    # runs the trained weights to the same classes.
    deploy = compile_net(deploy_prototxt(text, (3, 32, 32)), "deploy")
    report = load_weights(deploy, str(job / "best.h5"))
    assert report.by_status("missing") == [] and len(report.by_status("copied")) == 9
    with torch.no_grad():
        scores = deploy(_input(str(job), image))[deploy.score_blob]
    assert np.array_equal(scores.argmax(1)[0].numpy(), pred)


CAMVID = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
          "Bicyclist")
WEIGHTS = (0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446, 1.8418, 0.6823, 6.2478, 7.3614)


def segnet_basic(inference=False, width=8):
    """SegNet-Basic as the SegNet tutorial writes it (DenseImageData, LRN, 4 × conv-BN-ReLU-pool with masks,
    4 × Upsample-conv-BN, 11-class classifier, weighted loss ignoring 11), `width` channels instead of 64."""
    bn_mode = "bn_mode: INFERENCE " if inference else ""

    def conv(name, bottom, relu=True, pool=None):
        out = ('layer { name: "%s" type: "Convolution" bottom: "%s" top: "%s"\n'
               '  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }\n'
               '  convolution_param { num_output: %d kernel_size: 7 pad: 3 weight_filler { type: "msra" } '
               'bias_filler { type: "constant" } } }\n' % (name, bottom, name, width))
        out += ('layer { bottom: "%s" top: "%s" name: "%s_bn" type: "BN"\n  bn_param {\n\t%sscale_filler '
                '{ type: "constant" value: 1 } shift_filler { type: "constant" value: 0.001 } } }\n'
                % (name, name, name, bn_mode))
        if relu:
            out += 'layer { name: "relu_%s" type: "ReLU" bottom: "%s" top: "%s" }\n' % (name, name, name)
        if pool:
            out += ('layer { name: "%s" type: "Pooling" bottom: "%s" top: "%s" top: "%s_mask"\n'
                    '  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n' % (pool, name, pool, pool))
        return out

    text = ('name: "segnet"\nlayer { name: "data" type: "DenseImageData" top: "data" top: "label"\n'
            '  dense_image_data_param { source: "/SegNet/CamVid/train.txt" batch_size: 4 shuffle: true } }\n'
            'layer { name: "norm" type: "LRN" bottom: "data" top: "norm" '
            'lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }\n')
    bottom = "norm"
    for i in range(1, 5):
        text += conv("conv%d" % i, bottom, pool="pool%d" % i)
        bottom = "pool%d" % i
    for i in range(4, 0, -1):
        pad = " pad_out_h: true" if i == 4 else ""
        text += ('layer { name: "upsample%d" type: "Upsample" bottom: "%s" bottom: "pool%d_mask" top: "upsample%d"\n'
                 '  upsample_param { scale: 2%s } }\n' % (i, bottom, i, i, pad))
        text += conv("conv_decode%d" % i, "upsample%d" % i, relu=False)
        bottom = "conv_decode%d" % i
    text += ('layer { name: "conv_classifier" type: "Convolution" bottom: "conv_decode1" top: "conv_classifier"\n'
             '  convolution_param { num_output: 11 kernel_size: 1 weight_filler { type: "msra" } '
             'bias_filler { type: "constant" } } }\n')
    if inference:
        return text + 'layer { name: "prob" type: "Softmax" bottom: "conv_classifier" top: "prob" }\n'
    return text + ('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv_classifier" bottom: "label" '
                   'top: "loss"\n  loss_param: {\n    weight_by_label_freqs: true\n    ignore_label: 11\n%s  }\n}\n'
                   'layer { name: "accuracy" type: "Accuracy" bottom: "conv_classifier" bottom: "label" '
                   'top: "accuracy" top: "per_class_accuracy" }\n'
                   % "".join("    class_weighting: %g\n" % w for w in WEIGHTS))


def camvid_layout(root, count, size):
    """CamVid as SegNet ships it: train/ images, trainannot/ greyscale class ids 0..10, void stored as 255."""
    src = os.path.join(root, "synth")
    synthcity.generate(src, count, size=size, seed=7)
    os.makedirs(os.path.join(root, "train"))
    os.makedirs(os.path.join(root, "trainannot"))
    for i, name in enumerate(sorted(os.listdir(os.path.join(src, "images")))):
        stem = "0001TP_%06d" % (6690 + 30 * i)
        Image.open(os.path.join(src, "images", name)).convert("RGB").save(os.path.join(root, "train", stem + ".png"))
        lab = np.array(Image.open(os.path.join(src, "labels", os.path.splitext(name)[0] + ".png")))
        lab[: size[1] // 4, : size[0] // 4] = 10             # a Bicyclist corner
        lab[-2:, :] = 255                                     # void rows
        Image.fromarray(lab.astype(np.uint8), mode="L").save(os.path.join(root, "trainannot", stem + ".png"))
    with open(os.path.join(root, "classes.txt"), "w") as fh:
        fh.write("\n".join(CAMVID) + "\n")
    return root


def test_segnet_basic_trains_unmodified_and_its_inference_file_deploys(tmp_path):
    text = segnet_basic()
    # SegNet-Basic needs H/8 odd (pad_out_h) and W divisible by 16, as CamVid's 360×480: 40×48 here.
    problems = analyse(text, (3, 40, 48), "segnet_basic_train.prototxt")
    assert {k: v.ok for k, v in problems.phases.items()} == {"train": True, "val": True, "deploy": True}
    assert problems.errors() == []
    root = camvid_layout(str(tmp_path / "CamVid"), 4, (48, 40))
    settings = _settings(str(tmp_path))
    from digits_seg.datasets.params import validate_params as dataset_params
    params = dataset_params({"images": os.path.join(root, "train"), "labels": os.path.join(root, "trainannot"),
                             "classes_file": os.path.join(root, "classes.txt"), "val_pct": 25}, settings)
    ds = build_dataset(settings, str(tmp_path / "ds"), params)
    assert DatasetInfo.load(ds).num_classes == 11
    job = tmp_path / "job"
    job.mkdir()
    result, logs = _train(job, text, ds, base_lr=0.01)
    assert result["iterations"] == 3
    assert any(l.startswith("Class weights from the network's loss layer (class_weighting): 0.2595, 0.1826")
               for l in logs)
    assert any("ignores label 11" in l for l in logs)

    image = np.asarray(Image.open(os.path.join(root, "train", "0001TP_006690.png")).convert("RGB"))
    pred = Predictor.from_model_dir(str(job)).predict(image)
    # The inference file: BN in INFERENCE mode; loading folds our running statistics into scale and
    # shift (SegNet's compute_bn_statistics.py step) and gives the same classes as the trained network.
    inference = compile_net(segnet_basic(inference=True), "deploy", input_shape=(3, 40, 48))
    report = load_weights(inference, str(job / "best.h5"))
    assert len([l for l in report.layers if "folded" in l.detail]) == 8
    with torch.no_grad():
        prob = inference(_input(str(job), image))["prob"]
    assert inference.score_blob == "prob"
    assert np.array_equal(prob.argmax(1)[0].numpy(), pred)


def test_cli_train_takes_a_caffe_solver_file(tmp_path, capsys):
    import json

    from digits_seg.cli import main

    root = str(tmp_path)
    synthcity.generate(os.path.join(root, "src"), 8, size=(32, 32), seed=1)
    jobs = os.path.join(root, "jobs")
    assert main(["dataset", "create", "--jobs-dir", jobs, "--images", os.path.join(root, "src", "images"),
                 "--labels", os.path.join(root, "src", "labels"), "--val-pct", "25", "--now", "--json"]) == 0
    ds = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["id"]
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "train_val.prototxt"\nbase_lr: 0.005\nlr_policy: "step"\ngamma: 0.5\nstepsize: 1\n'
                      'max_iter: 3\nmomentum: 0.8\nweight_decay: 0.001\ntype: "Adam"\nsnapshot: 1000\n')
    assert main(["train", "--jobs-dir", jobs, "--dataset", ds, "--network", "tiny-fcn", "--batch-size", "2",
                 "--solver", str(solver), "--momentum", "0.85", "--workers", "0", "--now", "--json"]) == 0
    captured = capsys.readouterr()
    job_dir = json.loads(captured.out.strip().splitlines()[-1])[0]["dir"]
    with open(os.path.join(job_dir, "job.json")) as fh:
        params = json.load(fh)["params"]
    # 6 training images, batch 2: max_iter 3 is one epoch; stepsize 1 of 3 iterations is 33.33 % of training.
    assert {k: params[k] for k in ("base_lr", "lr_policy", "lr_gamma", "solver_type", "weight_decay", "epochs",
                                   "momentum")} == {"base_lr": 0.005, "lr_policy": "step", "lr_gamma": 0.5,
                                                    "solver_type": "Adam", "weight_decay": 0.001, "epochs": 1,
                                                    "momentum": 0.85}
    assert params["lr_step_size"] == pytest.approx(33.3333)
    assert "solver file: max_iter 3 x iter_size 1 x batch 2 / 6 training images -> epochs 1" in captured.err
    assert "solver file: momentum: kept the command line's 0.85" in captured.err
    assert "solver file: not used (no form field): net, snapshot" in captured.err
