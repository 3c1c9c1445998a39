"""A fine-tuning job keeps the start model's preprocessing; training feeds what inference feeds."""

import json

import numpy as np
import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.inference.preprocess import Preprocess
from digits_seg.training.augment import to_input
from digits_seg.training.input_recipe import (freeze_batchnorm, input_tensors, resolve_recipe, should_freeze_bn)
from digits_seg.training.params import validate_params


class Info:
    channels = 3
    mean_pixel = [100.0, 110.0, 120.0]
    splits = {"train": {"count": 4, "size": [32, 24]}}


def start_model(tmp_path, recipe):
    folder = tmp_path / "start"
    folder.mkdir()
    (folder / "preprocess.json").write_text(json.dumps(recipe))
    return str(folder)


def test_fine_tuning_inherits_the_start_models_recipe_not_the_datasets_mean(tmp_path):
    src = start_model(tmp_path, {"channels": 3, "channel_order": "BGR", "mean_subtraction": "pixel",
                                 "mean_pixel": [104.0, 117.0, 123.0], "scale": 0.5})
    log = []
    rec = resolve_recipe({"mean_subtraction": "model"}, Info(), [32, 24], src, log.append)
    assert rec["channel_order"] == "BGR" and rec["mean_pixel"] == [104.0, 117.0, 123.0] and rec["scale"] == 0.5
    assert rec["input_size"] == [32, 24] and "as the model it starts from" in log[0]
    # choosing the dataset's mean instead is allowed, with a warning naming both recipes
    log = []
    rec = resolve_recipe({"mean_subtraction": "pixel"}, Info(), None, src, log.append)
    assert rec["mean_pixel"] == [100.0, 110.0, 120.0] and rec["channel_order"] == "RGB"
    assert log and log[0].startswith("warning:") and "BGR" in log[0] and "100.0" in log[0]
    with pytest.raises(ValidationError) as e:
        resolve_recipe({"mean_subtraction": "model"}, Info(), None, None, log.append)
    assert e.value.field == "mean_subtraction"


def test_training_input_equals_inference_preprocessing():
    rec = {"channels": 3, "channel_order": "BGR", "mean_subtraction": "pixel", "mean_pixel": [10.0, 20.0, 30.0],
           "scale": 0.25}
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    mean, bgr, scale = input_tensors(rec, Info(), "cpu")
    got = to_input(torch.from_numpy(image.transpose(2, 0, 1).copy())[None], mean, bgr=bgr, scale=scale)[0].numpy()
    want = ((image[:, :, ::-1].astype(np.float32) - np.array([10, 20, 30], np.float32)) * 0.25).transpose(2, 0, 1)
    assert np.allclose(got, want)
    pre = Preprocess(channel_order="BGR", mean_subtraction="pixel", mean_pixel=(10.0, 20.0, 30.0), scale=0.25)
    assert np.allclose(pre.apply(image), want)


def test_form_defaults_for_fine_tuning_and_freeze_choice():
    p = validate_params({"network_kind": "pretrained", "pretrained_job": "x", "dataset_id": "d"})
    assert p["mean_subtraction"] == "model" and p["freeze_bn"] == "auto"
    p = validate_params({"network": "tiny-fcn", "dataset_id": "d"})
    assert p["mean_subtraction"] != "model"
    with pytest.raises(ValidationError) as e:
        validate_params({"network": "tiny-fcn", "dataset_id": "d", "mean_subtraction": "model"})
    assert e.value.field == "mean_subtraction"
    assert should_freeze_bn({"batch_size": 4}, True) and not should_freeze_bn({"batch_size": 8}, True)
    assert not should_freeze_bn({"batch_size": 1}, False)
    assert should_freeze_bn({"batch_size": 16, "freeze_bn": "on"}, False)
    assert not should_freeze_bn({"batch_size": 1, "freeze_bn": "off"}, True)


def test_frozen_batchnorm_uses_its_running_statistics_in_training():
    from digits_seg.networks.compiler import compile_net

    text = """input: "data" input_shape { dim: 1 dim: 2 dim: 4 dim: 4 }
    layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }
    layer { name: "bn2" type: "BatchNorm" bottom: "bn" top: "out" }"""
    net = compile_net(text, phase="train", include_loss=False, input_shape=(2, 4, 4))
    bn = dict(net.named_modules())
    name = [n for n, m in bn.items() if type(m).__name__ == "BatchNorm"]
    first = bn[name[0]]
    first.mean.copy_(torch.tensor([2.0, 4.0]))  # stored as sums: mean = blob / scale_factor
    first.variance.copy_(torch.tensor([8.0, 2.0]))
    first.scale_factor.fill_(2.0)
    assert freeze_batchnorm(net) == [name[0]]  # the second has no statistics: it keeps batch statistics
    x = torch.full((1, 2, 4, 4), 3.0)
    y = first(x)
    want = (3.0 - torch.tensor([1.0, 2.0])) / torch.sqrt(torch.tensor([4.0, 1.0]) + 1e-5)
    assert torch.allclose(y[0, :, 0, 0], want, atol=1e-5)
    assert float(first.scale_factor) == 2.0  # not updated
