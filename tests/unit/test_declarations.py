"""The job-kind declarations: every error at once with labels, strict types, the limits of issue 13, old job.json params."""

import pytest

from digits_seg.config import load_settings
from digits_seg.datasets.params import DatasetParams
from digits_seg.datasets.params import validate_params as dataset_params
from digits_seg.declare import check, specs
from digits_seg.errors import ValidationError
from digits_seg.training.params import DEFAULTS, TrainingParams, check_name, expand_sweep, validate_params

CUSTOM = {"network_kind": "custom", "custom_network": "layer { name: 'a' type: 'ReLU' bottom: 'data' top: 'a' }"}

OLD_JOB_PARAMS = {
    # The params dict a model job.json holds, exactly as the hand-written validation stored it (a clone source).
    "dataset_id": "20260101-000000-abcd", "network": {"kind": "standard", "name": "tiny-fcn"},
    "previous_id": None, "pretrained_id": None, "epochs": 3, "snapshot_interval": 1.0, "val_interval": 0.5,
    "batch_size": 2, "iter_size": 1, "solver_type": "Adam", "base_lr": 0.001, "momentum": 0.9, "weight_decay": 0.0,
    "lr_policy": "multistep", "lr_step_size": 33.0, "lr_stepvalues": [40.0, 80.0], "lr_gamma": 0.1, "lr_power": 1.0,
    "seed": 7, "early_stop_patience": 0, "mean_subtraction": "none", "crop_size": 48, "hflip": True,
    "random_scale": [0.5, 2.0], "class_weighting": "none", "dice_weight": 0.0, "device": "cpu", "num_gpus": 1,
    "amp": True, "loader_workers": 0, "log_interval": 2, "val_previews": 4,
}


def errors_of(raw, validate=validate_params, *args):
    with pytest.raises(ValidationError) as e:
        validate(raw, *args)
    return e.value


def test_every_bad_field_is_reported_at_once_with_its_label():
    err = errors_of(dict(CUSTOM, epochs="0", base_lr="abc", batch_size="2,x", solver_type="LBFGS", momentum="1.5",
                         device="tpu", random_scale="3-1", lr_stepvalues="50,120"))
    got = {e["field"]: e for e in err.errors}
    assert set(got) == {"epochs", "base_lr", "batch_size", "solver_type", "momentum", "device", "random_scale",
                        "lr_stepvalues"}
    labels = {s.name: s.label for s in specs(TrainingParams)}
    for field, e in got.items():
        assert e["label"] == labels[field] and e["message"].startswith(labels[field] + " "), e
    assert got["epochs"]["message"] == "Epochs must be at least 1, got 0"
    assert got["momentum"]["message"] == "Momentum must be at most 0.99999, got 1.5"
    # the first error stays the exception's message/field (clients reading only those still work)
    assert (err.field, err.message) == (err.errors[0]["field"], err.errors[0]["message"])


@pytest.mark.parametrize("field,value,phrase", [
    ("epochs", True, "must be a number, not true"),       # JSON booleans are not numbers
    ("batch_size", 1025, "at most 1024"),
    ("batch_size", 10**9, "at most 1024"),
    ("crop_size", 16384, "at most 4096"),
    ("seed", 2.5, "whole number"),
    ("base_lr", float("nan"), "finite"),
    ("hflip", "maybe", "must be yes or no"),
    ("iter_size", [], "whole number"),
])
def test_strict_types_and_limits(field, value, phrase):
    err = errors_of(dict(CUSTOM, **{field: value}))
    assert err.field == field and phrase in err.message


def test_form_strings_and_json_values_give_the_same_params():
    form = validate_params(dict(CUSTOM, epochs=" 5 ", batch_size="4", hflip="on", amp="0", seed="3.0", crop_size="64"))
    typed = validate_params(dict(CUSTOM, epochs=5, batch_size=4, hflip=True, amp=False, seed=3, crop_size=64))
    assert form == typed and form["epochs"] == 5 and form["amp"] is False and form["hflip"] is True
    # the form's hidden "0" followed by the ticked box's "1" means on
    assert validate_params(dict(CUSTOM, hflip=["0", "1"]))["hflip"] is True


def test_sweep_size_is_capped_by_a_setting():
    lrs = ",".join("%g" % (0.001 * (i + 1)) for i in range(200))
    err = errors_of(dict(CUSTOM, base_lr=lrs, batch_size="1,2,3,4,5"))
    assert err.field == "base_lr"
    assert "a sweep of 1000 jobs (200 learning rates × 5 batch sizes); at most 64" in err.message
    settings = load_settings(environ={"DIGITS_SEG_MAX_SWEEP_JOBS": "1000"})
    assert len(expand_sweep(validate_params(dict(CUSTOM, base_lr=lrs, batch_size="1,2,3,4,5"), settings))) == 1000


@pytest.mark.parametrize("name,phrase", [("\ud800", "surrogate"), ("a\x00b", "control characters"),
                                         ("bell\x07", "control characters"), ("x" * 201, "too long")])
def test_job_names_are_checked_before_anything_is_written(name, phrase):
    from digits_seg.store.importer import _name as import_name

    for check_one in (check_name, lambda n: import_name({"name": n})):
        err = errors_of(name, check_one)
        assert err.field == "name" and phrase in err.message
    assert check_name("  my model  ") == "my model" and check_name("") == ""


def test_old_job_params_validate_and_clone_unchanged():
    from digits_seg.web.model_form import _form_values

    def same(got, old):
        """Every stored field unchanged; fields added since then hold their declared defaults."""
        return {k: got[k] for k in old} == old and all(got[k] == DEFAULTS[k] for k in set(got) - set(old))

    assert same(validate_params(OLD_JOB_PARAMS), OLD_JOB_PARAMS)          # the JSON shape job.json stores
    assert same(validate_params(_form_values(OLD_JOB_PARAMS)), OLD_JOB_PARAMS)  # the clone form's flat strings
    sweep = dict(OLD_JOB_PARAMS, base_lr=[0.01, 0.001], batch_size=[1, 2])
    assert same(validate_params(_form_values(sweep)), sweep)


def test_check_keeps_valid_values_when_others_fail():
    values, errors = check(TrainingParams, {"epochs": "x", "iter_size": "3"})
    assert [e["field"] for e in errors] == ["epochs"] and values["iter_size"] == 3 and values["epochs"] == 30


def test_dataset_form_reports_every_problem(tmp_path):
    (tmp_path / "images").mkdir()
    settings = load_settings(environ={"DIGITS_SEG_DATA_ROOTS": str(tmp_path)})
    err = errors_of({"images": str(tmp_path / "images"), "labels": str(tmp_path / "nope"), "val_pct": "95",
                     "channels": "cmyk", "seed": True, "resize": "64"}, dataset_params, settings)
    got = {e["field"]: e for e in err.errors}
    assert set(got) == {"labels", "val_pct", "channels", "seed", "resize"}
    assert "does not exist" in got["labels"]["message"] and got["labels"]["label"] == "Label folder"
    labels = {s.name: s.label for s in specs(DatasetParams)}
    assert all(e["label"] == labels[f] for f, e in got.items())


def test_test_many_form_reports_every_problem(tmp_path):
    from digits_seg.declare import clean_name
    from digits_seg.inference.params import InferManyParams
    from digits_seg.inference.params import validate_params as test_many_params

    settings = load_settings(environ={"DIGITS_SEG_DATA_ROOTS": str(tmp_path)})
    err = errors_of({"source": "folder", "folder": str(tmp_path / "nope"), "tile": "0", "alpha": True,
                     "fit": "stretch", "name": "x\x1b[31m"}, test_many_params, settings)
    got = {e["field"]: e["message"] for e in err.errors}
    assert set(got) == {"name", "folder", "tile", "alpha", "fit"}
    assert got["folder"].endswith("nope does not exist") and got["tile"] == "Tile (px) must be at least 1, got 0"
    assert clean_name(InferManyParams, "  run 1 ") == "run 1"
