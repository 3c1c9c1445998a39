"""Fine-tuning the bundled pretrained model with the form's defaults keeps (or improves) its quality.

Issue 15: with batch 1, the form's defaults subtracted the new dataset's mean (the model was
trained without one) and trained BatchNorm on one image at a time; validation, which uses the
running statistics, fell from mIoU 0.68 to 0.29 after one epoch.
"""

import json
import os

import pytest

from digits_seg.config import load_settings
from digits_seg.datasets.info import DatasetInfo
from digits_seg.inference.preprocess import load_preprocess
from digits_seg.store.importer import import_model, validate_params as import_params
from digits_seg.store.index import bundled_store
from digits_seg.training.metrics_log import read_metrics
from digits_seg.training.params import validate_params as train_params
from digits_seg.training.trainer import train
from tests.conftest import synthcity_dataset

# What the model form posts when the user only picks the pretrained model, the dataset and 1 epoch.
FORM_FIELDS = ("batch_size", "iter_size", "solver_type", "base_lr", "momentum", "weight_decay", "lr_policy",
               "lr_step_size", "lr_gamma", "lr_power", "lr_stepvalues", "seed", "early_stop_patience",
               "mean_subtraction", "crop_size", "random_scale", "class_weighting", "dice_weight", "freeze_bn")


def quiet():
    return {"on_progress": lambda *a: None, "should_stop": lambda: False, "log": lambda t: None}


@pytest.mark.slow
def test_fine_tuning_the_bundled_model_with_form_defaults_keeps_its_quality(tmp_path):
    root = str(tmp_path)
    settings = load_settings({"jobs_dir": root, "data_roots": root}, environ={})
    pre_dir = os.path.join(root, "pretrained")
    os.makedirs(pre_dir)
    manifest = import_model(pre_dir, import_params({"store": bundled_store(), "model": "synthcity-unet"}, settings),
                            settings=settings, **quiet())
    published = json.load(open(os.path.join(pre_dir, "manifest.json")))["metrics"]["val_mean_iou"]
    assert manifest["has_weights"] and published > 0.6

    # a fresh SynthCity dataset of another size (the model saw 128x96, seed 0) and seed
    ds_dir = synthcity_dataset(settings, os.path.join(root, "src"), os.path.join(root, "dataset"), 12, (64, 48),
                               seed=5, val_pct=25)
    form = {k: "" for k in FORM_FIELDS}
    form.update({"network_kind": "pretrained", "pretrained_job": "pretrained", "dataset_id": "dataset",
                 "epochs": "1", "loader_workers": "0"})  # no loader processes: only to keep the test fast
    params = train_params(form, settings, DatasetInfo.load(ds_dir))
    assert params["batch_size"] == 1 and params["mean_subtraction"] == "model"

    model_dir = os.path.join(root, "model")
    os.makedirs(model_dir)
    lines = []
    train(model_dir, params, dataset_dir=ds_dir, pretrained_dir=pre_dir, on_progress=lambda *a: None,
          should_stop=lambda: False, log=lines.append)
    vals = read_metrics(model_dir, kind="val")
    assert [v["iteration"] for v in vals] == [0, 9]  # the untouched model first, then after the epoch
    before, after = vals[0]["mean_iou"], vals[-1]["mean_iou"]
    assert after >= published - 0.05, (published, before, after, lines)
    # measured: published 0.677, untouched 0.72, after 0.71; before the fix 0.61 after the epoch
    assert after >= before - 0.05, (before, after)
    assert any(line.startswith("BatchNorm statistics frozen in 14 layers") for line in lines)

    # the job records the model's preprocessing (no mean), and inference reads exactly that
    recipe = json.load(open(os.path.join(model_dir, "preprocess.json")))
    assert recipe["mean_subtraction"] == "none" and recipe["channel_order"] == "RGB"
    assert recipe["inherited_from"] == "pretrained"
    assert load_preprocess(model_dir).mean_pixel is None
