import pytest

from digits_seg.errors import ValidationError
from digits_seg.training.params import DEFAULTS, expand_sweep, validate_params


class Info:
    """A plain stand-in for the dataset facts validate_params reads (not a mock of behaviour)."""

    def __init__(self, variable=False, count=10):
        self.variable_size = variable
        self.splits = {"train": {"count": count, "size": None if variable else [64, 64]}}
        self.num_classes = 3

    def class_pixel_counts(self, split):
        return [1, 2, 3]


CUSTOM = {"network_kind": "custom", "custom_network": "layer { name: 'a' type: 'ReLU' bottom: 'data' top: 'a' }"}


def test_form_strings_become_typed_params():
    raw = dict(CUSTOM, dataset_id="20260101-000000-abcd", epochs="5", base_lr="0.001", batch_size="4",
               hflip="on", random_scale="0.5-2", solver_type="adam", device="cuda:1", seed="7", lr_stepvalues="40, 80")
    p = validate_params(raw, None, Info())
    assert p["epochs"] == 5 and p["base_lr"] == 0.001 and p["batch_size"] == 4
    assert p["hflip"] is True and p["random_scale"] == [0.5, 2.0]
    assert p["solver_type"] == "Adam" and p["device"] == "gpu:1" and p["seed"] == 7
    assert p["lr_stepvalues"] == [40.0, 80.0]
    assert p["dataset_id"] == "20260101-000000-abcd"
    assert p["network"]["kind"] == "custom"
    assert p["momentum"] == DEFAULTS["momentum"] and p["early_stop_patience"] == 0


def test_previous_network_sets_job_ids():
    p = validate_params({"network": {"kind": "previous", "job_id": "j1", "snapshot": "120"}}, None, None)
    assert p["previous_id"] == "j1" and p["pretrained_id"] is None and p["network"]["snapshot"] == "120"
    p = validate_params({"network_kind": "pretrained", "pretrained_job": "j2"}, None, None)
    assert p["pretrained_id"] == "j2"


@pytest.mark.parametrize("field,value", [("epochs", "0"), ("base_lr", "-1"), ("base_lr", "abc"), ("solver_type", "LBFGS"),
                                         ("lr_policy", "nope"), ("device", "tpu"), ("random_scale", "3-1"),
                                         ("class_weighting", "sqrt"), ("lr_stepvalues", "50,120")])
def test_bad_fields_are_named(field, value):
    with pytest.raises(ValidationError) as e:
        validate_params(dict(CUSTOM, **{field: value}), None, Info())
    assert e.value.field == field


def test_missing_network_text():
    with pytest.raises(ValidationError) as e:
        validate_params({"network_kind": "custom"}, None, None)
    assert e.value.field == "custom_network"


def test_variable_size_needs_batch_one_or_crop():
    with pytest.raises(ValidationError) as e:
        validate_params(dict(CUSTOM, batch_size="4"), None, Info(variable=True))
    assert e.value.field == "batch_size"
    assert validate_params(dict(CUSTOM, batch_size="4", crop_size="32"), None, Info(variable=True))["batch_size"] == 4
    assert validate_params(dict(CUSTOM), None, Info(variable=True))["batch_size"] == 1


def test_sweep_expands_to_every_combination():
    p = validate_params(dict(CUSTOM, base_lr="0.1, 0.01,0.001", batch_size="2,4"), None, Info())
    assert p["base_lr"] == [0.1, 0.01, 0.001] and p["batch_size"] == [2, 4]
    jobs = expand_sweep(p)
    assert len(jobs) == 6
    assert {(j["base_lr"], j["batch_size"]) for j in jobs} == {(lr, b) for lr in (0.1, 0.01, 0.001) for b in (2, 4)}
    assert expand_sweep(validate_params(CUSTOM, None, Info())) == [validate_params(CUSTOM, None, Info())]


def test_network_crop_advice_dropped_for_smaller_images():
    small = validate_params({"network": "unet"}, None, Info())  # unet advises crop 256; images are 64×64
    assert small["crop_size"] is None and small["solver_type"] == "Adam" and small["batch_size"] == 4
    big = Info()
    big.splits["train"]["size"] = [512, 384]
    assert validate_params({"network": "unet"}, None, big)["crop_size"] == 256
    assert validate_params({"network": "unet", "crop_size": "48"}, None, Info())["crop_size"] == 48
