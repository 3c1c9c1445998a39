"""A user who changes nothing gets each standard network's full recipe (flip included)."""

from digits_seg.commands.train import _raw
from digits_seg.cli import build_parser
from digits_seg.training.params import validate_params


class Info:
    splits = {"train": {"count": 10, "size": [64, 48]}}
    variable_size = False
    num_classes = 3

    def class_pixel_counts(self, split):
        return [10, 5, 1]


def test_blank_fields_take_the_networks_recipe_and_explicit_choices_win():
    p = validate_params({"network": "unet", "dataset_id": "d", "hflip": "", "class_weighting": ""}, None, Info())
    assert p["hflip"] is True and p["class_weighting"] == "none" and p["solver_type"] == "Adam"
    # the form's select (or a hidden "0" then a checked box): the user's value wins
    p = validate_params({"network": "unet", "dataset_id": "d", "hflip": "0", "class_weighting": "median"}, None,
                        Info())
    assert p["hflip"] is False and p["class_weighting"] == "median"
    assert validate_params({"network": "unet", "hflip": ["0", "1"]}, None, Info())["hflip"] is True
    assert validate_params({"network": "tiny-fcn"}, None, Info())["hflip"] is False


def test_cli_leaves_flip_to_the_network_unless_told():
    parser = build_parser()
    args = parser.parse_args(["train", "--dataset", "d", "--network", "unet"])
    assert "hflip" not in _raw(args)
    assert _raw(parser.parse_args(["train", "--dataset", "d", "--no-hflip"]))["hflip"] is False
    assert _raw(parser.parse_args(["train", "--dataset", "d", "--hflip"]))["hflip"] is True
