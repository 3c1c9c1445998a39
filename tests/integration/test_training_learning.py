"""Slow learning check: a shipped network trained on CPU for a few minutes beats the majority-class predictor."""

import os
import time

import pytest

from digits_seg.config import load_settings
from digits_seg.datasets.info import DatasetInfo
from digits_seg.training.metrics import most_frequent_class_baseline
from digits_seg.training.metrics_log import read_metrics
from digits_seg.training.params import validate_params
from digits_seg.training.trainer import train
from tests.conftest import synthcity_dataset

NETWORK = os.environ.get("LEARNING_CHECK_NETWORK", "unet")
EPOCHS = int(os.environ.get("LEARNING_CHECK_EPOCHS", "6"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_unet_learns_synthcity_128(tmp_path):
    root = str(tmp_path)
    settings = load_settings({"jobs_dir": root, "data_roots": [root]}, environ={})
    ds = synthcity_dataset(settings, os.path.join(root, "src"), os.path.join(root, "dataset"), 60, (128, 128), seed=11)
    params = validate_params({"network": NETWORK, "epochs": EPOCHS, "batch_size": 4, "crop_size": 64, "hflip": True,
                              "solver_type": "Adam", "base_lr": 0.003, "lr_policy": "poly", "lr_power": 0.9,
                              "loader_workers": 1, "seed": 0, "log_interval": 4, "val_interval": 3},
                             None, DatasetInfo.load(ds))
    job = os.path.join(root, "model")
    os.makedirs(job)
    logs = []
    t0 = time.time()
    train(job, params, on_progress=lambda f, m: None, should_stop=lambda: False, log=logs.append, dataset_dir=ds)
    elapsed = time.time() - t0
    val = read_metrics(job, "val")[-1]
    base = most_frequent_class_baseline(val["confusion"])
    print("learning check: %s %d epochs in %.0f s: val mIoU %.3f (majority class %.3f), pixel acc %.3f (%.3f), "
          "fwIoU %.3f" % (NETWORK, EPOCHS, elapsed, val["mean_iou"], base["mean_iou"], val["pixel_acc"],
                           base["pixel_acc"], val["fw_iou"]))
    assert val["pixel_acc"] > base["pixel_acc"] + 0.05
    assert val["mean_iou"] > 2 * base["mean_iou"]
