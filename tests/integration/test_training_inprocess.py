"""Train for real, in-process: SynthCity data through create_dataset, a compiled network, snapshots, resume, abort."""

import os

import h5py
import pytest

from digits_seg.config import load_settings
from digits_seg.datasets import synthcity
from digits_seg.datasets.info import DatasetInfo
from digits_seg.errors import JobAborted, ValidationError
from digits_seg.training.metrics_log import read_metrics
from digits_seg.training.params import validate_params
from digits_seg.training.snapshots import export_caffemodel, list_snapshots, read_solver_attrs
from digits_seg.training.trainer import train
from tests.conftest import synthcity_dataset


def network_choice():
    """The registry's tiny test network when it exists, else an equivalent custom prototxt."""
    try:
        from digits_seg.networks.standard import STANDARD_NETWORKS
        if "tiny-fcn" in STANDARD_NETWORKS:
            return {"network": "tiny-fcn", "network_kind": "standard"}
    except ImportError:
        pass
    return {"network_kind": "custom", "custom_network": TINY_FCN}


TINY_FCN = """
name: "tiny-fcn-test"
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "score_small" type: "Convolution" bottom: "conv2" top: "score_small"
  convolution_param { num_output: 10 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "upscore" type: "Deconvolution" bottom: "score_small" top: "score"
  param { lr_mult: 0 }
  convolution_param { num_output: 10 group: 10 kernel_size: 2 stride: 2 bias_term: false weight_filler { type: "bilinear" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" loss_param { ignore_label: 255 } }
"""


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthcity"))
    settings = load_settings({"jobs_dir": root, "data_roots": [root]}, environ={})
    return synthcity_dataset(settings, os.path.join(root, "src"), os.path.join(root, "dataset"), 40, (64, 64), seed=3)


def make_params(dataset_dir, **over):
    raw = dict(network_choice(), epochs=2, batch_size=4, base_lr=0.001, solver_type="Adam", lr_policy="fixed",
               loader_workers=2, log_interval=2, seed=5, hflip=True, crop_size=48, mean_subtraction="pixel",
               class_weighting="median")
    raw.update(over)
    return validate_params(raw, None, DatasetInfo.load(dataset_dir))


def run(job_dir, params, dataset_dir, should_stop=lambda: False, resume=False):
    logs, progress = [], []
    result = train(job_dir, params, on_progress=lambda f, m: progress.append(f), should_stop=should_stop,
                   log=logs.append, dataset_dir=dataset_dir, resume=resume)
    return result, logs, progress


def test_train_two_epochs_then_resume_continues(dataset_dir, tmp_path):
    job = str(tmp_path)
    params = make_params(dataset_dir)
    result, logs, progress = run(job, params, dataset_dir)
    # 32 train images, batch 4 → 8 iterations per epoch.
    assert result["iterations"] == 16 and progress[-1] == 1.0
    for name in ("network.prototxt", "solver.prototxt", "labels.txt", "colormap.json", "preprocess.json", "best.h5"):
        assert os.path.exists(os.path.join(job, name)), name
    recs = read_metrics(job)
    train_pts = [r for r in recs if r["type"] == "train"]
    val_pts = [r for r in recs if r["type"] == "val"]
    assert [r["iteration"] for r in train_pts] == list(range(2, 17, 2))
    assert [r["iteration"] for r in val_pts] == [8, 16]
    v = val_pts[-1]
    assert len(v["per_class_iou"]) == 10 and len(v["confusion"]) == 10
    assert sum(map(sum, v["confusion"])) == 8 * 64 * 64
    assert all(r["lr"] == 0.001 and r["images_per_s"] > 0 for r in train_pts)
    previews = os.listdir(os.path.join(job, "val_previews", "epoch_2"))
    assert sorted(previews) == ["0.png", "1.png", "2.png", "3.png"]
    snaps = list_snapshots(job)
    assert [s["iteration"] for s in snaps] == [8, 16] and [s["epoch"] for s in snaps] == [1, 2]
    with h5py.File(snaps[-1]["path"], "r") as h5:
        assert "data" in h5 and "solver/state" in h5 and "solver/rng/torch" in h5
    assert any("Class weights" in line for line in logs)

    # Resume with more epochs: the iteration count continues from the last snapshot.
    result2, logs2, _ = run(job, dict(params, epochs=3), dataset_dir, resume=True)
    assert result2["iterations"] == 24
    assert any("Resumed from snapshot_iter_16.h5" in line for line in logs2)
    its = [r["iteration"] for r in read_metrics(job, "train")]
    assert its == list(range(2, 25, 2))
    assert read_solver_attrs(os.path.join(job, "snapshot_iter_24.h5"))["epoch"] == 3

    cm = export_caffemodel(job, "best")
    assert cm.endswith("best.caffemodel") and os.path.getsize(cm) > 100


def test_abort_keeps_snapshots_and_resume_cuts_metrics(dataset_dir, tmp_path):
    job = str(tmp_path)
    params = make_params(dataset_dir, class_weighting="none", solver_type="SGD", base_lr=0.0001, lr_policy="step")
    calls = [0]

    def stop_after_epoch_one_and_a_half():
        calls[0] += 1
        return calls[0] > 12

    with pytest.raises(JobAborted):
        run(job, params, dataset_dir, should_stop=stop_after_epoch_one_and_a_half)
    assert [s["iteration"] for s in list_snapshots(job)] == [8]
    assert max(r["iteration"] for r in read_metrics(job)) == 12
    result, _, _ = run(job, params, dataset_dir, resume=True)
    assert result["iterations"] == 16
    its = [r["iteration"] for r in read_metrics(job, "train")]
    assert its == sorted(set(its)) and its[-1] == 16 and 10 in its


def test_nan_loss_stops_with_advice(dataset_dir, tmp_path):
    params = make_params(dataset_dir, base_lr=1e6, solver_type="SGD", class_weighting="none", mean_subtraction="none",
                         epochs=1, log_interval=1)
    with pytest.raises(ValidationError) as e:
        run(str(tmp_path), params, dataset_dir)
    assert "lower the learning rate" in e.value.message and e.value.field == "base_lr"


def test_cli_train_now_and_sweep(tmp_path, capsys):
    import json

    from digits_seg.cli import main

    root = str(tmp_path)
    synthcity.generate(os.path.join(root, "src"), 12, size=(32, 32), seed=1)
    jobs = os.path.join(root, "jobs")
    assert main(["dataset", "create", "--jobs-dir", jobs, "--images", os.path.join(root, "src", "images"),
                 "--labels", os.path.join(root, "src", "labels"), "--val-pct", "25", "--now", "--json"]) == 0
    ds = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["id"]
    assert main(["train", "--jobs-dir", jobs, "--dataset", ds, "--network", "tiny-fcn", "--epochs", "1",
                 "--lr", "0.01,0.001", "--workers", "0", "--now", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out) == 2 and {"(lr 0.01, batch 4)" in o["name"] or "(lr 0.001, batch 4)" in o["name"] for o in out} == {True}
    for o in out:
        with open(os.path.join(o["dir"], "job.json")) as f:
            job = json.load(f)
        assert job["status_history"][-1]["state"] == "done"
        assert list_snapshots(o["dir"]) and read_metrics(o["dir"], "val")
    assert main(["train", "--jobs-dir", jobs, "--dataset", ds, "--network", "no-such-net", "--now"]) == 2
    assert "Available:" in capsys.readouterr().err
