"""A user who changes nothing gets each standard network's full recipe, flip and class weighting included."""

from digits_seg.commands.train import _raw
from digits_seg.cli import build_parser
from digits_seg.training.params import validate_params


FLIPPED = {"solver_type": "Adam", "base_lr": 0.001, "lr_policy": "poly", "batch_size": 4, "crop_size": None,
           "epochs": 60, "hflip": True, "class_weighting": "median"}
"""A recipe with flip and class-weighting advice (no shipped network has it now: the CamVid bench preferred none)."""


class Info:
    splits = {"train": {"count": 10, "size": [64, 48]}}
    variable_size = False
    num_classes = 3

    def class_pixel_counts(self, split):
        return [10, 5, 1]


def test_blank_fields_take_the_networks_recipe_and_explicit_choices_win(monkeypatch):
    import dataclasses

    from digits_seg.networks import standard

    unet = standard.STANDARD_NETWORKS["unet"]
    monkeypatch.setitem(standard.STANDARD_NETWORKS, "unet", dataclasses.replace(unet, solver=FLIPPED))
    p = validate_params({"network": "unet", "dataset_id": "d", "hflip": "", "class_weighting": ""}, None, Info())
    assert p["hflip"] is True and p["class_weighting"] == "median" and p["solver_type"] == "Adam"
    # the form's select (or a hidden "0" then a checked box): the user's value wins
    p = validate_params({"network": "unet", "dataset_id": "d", "hflip": "0", "class_weighting": "none"}, None,
                        Info())
    assert p["hflip"] is False and p["class_weighting"] == "none"
    assert validate_params({"network": "unet", "hflip": ["0", "1"]}, None, Info())["hflip"] is True
    assert validate_params({"network": "tiny-fcn"}, None, Info())["hflip"] is False


def test_cli_leaves_flip_to_the_network_unless_told():
    parser = build_parser()
    args = parser.parse_args(["train", "--dataset", "d", "--network", "unet"])
    assert "hflip" not in _raw(args)
    assert _raw(parser.parse_args(["train", "--dataset", "d", "--no-hflip"]))["hflip"] is False
    assert _raw(parser.parse_args(["train", "--dataset", "d", "--hflip"]))["hflip"] is True
