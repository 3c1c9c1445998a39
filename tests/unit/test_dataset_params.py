"""Form validation and the data-root rules (symlinks and `..` cannot escape)."""

import os

import pytest

from digits_seg.config import load_settings
from digits_seg.datasets.params import complete_path, parse_size, validate_params
from digits_seg.errors import ValidationError


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "data"
    for d in ("set/images", "set/labels", "other"):
        os.makedirs(r / d)
    os.makedirs(tmp_path / "secret")
    os.symlink(tmp_path / "secret", r / "link")
    return r


@pytest.fixture
def settings(root):
    return load_settings(environ={"DIGITS_SEG_DATA_ROOTS": str(root)})


def test_form_strings_become_typed_params(root, settings):
    p = validate_params({"images": str(root / "set/images"), "labels": "set/labels", "val_pct": "20", "seed": "7",
                         "resize": "64x48", "resize_mode": "half-crop", "skip_bad": "on", "encoding": "JPEG"}, settings)
    assert p["labels"] == str(root / "set/labels") and p["val_pct"] == 20.0 and p["seed"] == 7
    assert p["resize"] == [64, 48] and p["resize_mode"] == "half_crop" and p["skip_bad"] is True
    assert p["encoding"] == "jpeg" and p["name"] == "set" and p["colormap_source"] == "labels"


@pytest.mark.parametrize("path", ["../secret", "link", "/etc"])
def test_paths_outside_the_roots_are_refused(root, settings, path):
    with pytest.raises(ValidationError, match="outside the allowed data folders") as e:
        validate_params({"images": path if path.startswith("/") else str(root / path), "labels": str(root / "set/labels")},
                        settings)
    assert e.value.field == "images"


def test_bad_values_name_the_field(root, settings):
    base = {"images": str(root / "set/images"), "labels": str(root / "set/labels")}
    for extra, field in (({"val_pct": "95"}, "val_pct"), ({"channels": "cmyk"}, "channels"),
                         ({"resize": "64"}, "resize"), ({"colormap_source": "file"}, "colormap_file")):
        with pytest.raises(ValidationError) as e:
            validate_params(dict(base, **extra), settings)
        assert e.value.field == field
    assert parse_size("") is None


def test_complete_path_stays_inside_roots(root, settings):
    got = complete_path(str(root / "s"), settings)
    assert got == [str(root / "set") + os.sep]
    assert complete_path(str(root) + os.sep, settings, dirs_only=True) == [str(root / "other") + os.sep,
                                                                         str(root / "set") + os.sep]
    assert complete_path("/etc/pa", settings) == []
    assert complete_path("", settings) == [str(root) + os.sep]


def test_a_given_colour_file_is_used_or_the_contradiction_refused(root, settings):
    """The form's colour-map select used to default to `labels`: a colour file given beside it was read by
    nobody, and RGB labels were then looked up in the PASCAL VOC palette."""
    (root / "set" / "colors.txt").write_text("128 64 128 road\n70 70 70 building\n")
    base = {"images": str(root / "set/images"), "labels": str(root / "set/labels"),
            "colormap_file": str(root / "set/colors.txt")}
    for source in (None, ""):  # automatic: the file, since one is given
        assert validate_params(dict(base, colormap_source=source), settings)["colormap_source"] == "file"
    for source in ("labels", "default"):
        with pytest.raises(ValidationError) as e:
            validate_params(dict(base, colormap_source=source), settings)
        assert e.value.field == "colormap_source" and "would not be used" in e.value.message
        assert "colors.txt" in e.value.message
