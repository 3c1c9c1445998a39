"""Pre-flight check: every problem is reported with file names, nothing is written."""

import os

import numpy as np
import pytest
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets.check import check_folders
from digits_seg.datasets.params import validate_params


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={"DIGITS_SEG_DATA_ROOTS": str(tmp_path)})


def save(path, array, mode=None, palette=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    if palette:
        im.putpalette(palette)
    im.save(path)


def check(settings, root, **kw):
    raw = {"images": str(root / "images"), "labels": str(root / "labels"), "val_pct": 0}
    raw.update(kw)
    return check_folders(validate_params(raw, settings), settings)


def codes(report):
    return {e["code"] for e in report.errors}


def test_clean_folder_summary(tmp_path, settings):
    for i in range(3):
        save(str(tmp_path / "images" / ("a%d.jpg" % i)), np.zeros((8, 10, 3), np.uint8))
        save(str(tmp_path / "labels" / ("a%d.png" % i)), np.full((8, 10), i, np.uint8))
    before = sorted(os.listdir(tmp_path))
    r = check(settings, tmp_path)
    assert r.ok and r.summary["pairs"] == {"train": 3, "val": 0} and r.summary["sizes"] == {"10x8": 3}
    assert r.summary["values_seen"] == [0, 1, 2] and r.summary["num_classes"] == 3
    assert [c["pixels"] for c in r.summary["classes"]] == [80, 80, 80]
    assert sorted(os.listdir(tmp_path)) == before


def test_missing_pairs_with_suffix_suggestion(tmp_path, settings):
    for s in ("x", "y"):
        save(str(tmp_path / "images" / (s + ".png")), np.zeros((4, 4, 3), np.uint8))
        save(str(tmp_path / "labels" / (s + "_mask.png")), np.zeros((4, 4), np.uint8))
    r = check(settings, tmp_path, label_suffix="")
    assert {"missing_label", "missing_image"} <= codes(r)
    assert any("_mask" in e["message"] for e in r.errors)
    assert check(settings, tmp_path).ok  # auto suffix pairs them


def test_every_file_problem_is_listed(tmp_path, settings):
    ok = np.zeros((8, 8, 3), np.uint8)
    save(str(tmp_path / "images" / "good.png"), ok)
    save(str(tmp_path / "labels" / "good.png"), np.zeros((8, 8), np.uint8))
    save(str(tmp_path / "images" / "size.png"), ok)
    save(str(tmp_path / "labels" / "size.png"), np.zeros((7, 8), np.uint8))
    save(str(tmp_path / "images" / "big.png"), np.zeros((64, 64, 3), np.uint8))
    save(str(tmp_path / "labels" / "big.png"), np.zeros((64, 64), np.uint8))
    save(str(tmp_path / "images" / "value.png"), ok)
    save(str(tmp_path / "labels" / "value.png"), np.full((8, 8), 9, np.uint8))
    (tmp_path / "images" / "junk.png").write_bytes(b"not a png at all")
    save(str(tmp_path / "labels" / "junk.png"), np.zeros((8, 8), np.uint8))
    os.makedirs(tmp_path / "images" / "sub")
    save(str(tmp_path / "images" / "sub" / "good.jpg"), ok)
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    r = check(settings, tmp_path, classes_file=str(tmp_path / "names.txt"), max_pixels=1000)
    assert {"size_mismatch", "bomb", "bad_values", "unreadable", "duplicate_stem"} <= codes(r)
    text = "\n".join(r.lines())
    for name in ("size.png", "big.png", "value.png", "junk.png", "sub/good.jpg"):
        assert name in text


def test_unknown_colours_reported_with_counts(tmp_path, settings):
    lbl = np.zeros((4, 4, 3), np.uint8)
    lbl[0, :2] = (1, 175, 76)
    lbl[1, 0] = (0, 175, 77)
    save(str(tmp_path / "images" / "a.png"), np.zeros((4, 4, 3), np.uint8))
    save(str(tmp_path / "labels" / "a.png"), lbl)
    (tmp_path / "cm.csv").write_text("name,r,g,b\nvoid,0,0,0\nscraper,1,175,76\n")
    r = check(settings, tmp_path, colormap_file=str(tmp_path / "cm.csv"))
    assert codes(r) == {"unknown_colors"}
    assert "(0,175,77): 1 px" in r.errors[0]["message"] and "tolerance" in r.errors[0]["message"]
    r = check(settings, tmp_path, colormap_file=str(tmp_path / "cm.csv"), color_tolerance=1)
    assert r.ok and r.summary["classes"][1]["pixels"] == 3 and r.summary["classes"][1]["name"] == "scraper"
    near = [w["message"] for w in r.warnings if w["code"] == "nearest_colour"]
    assert near and "(0,175,77) → scraper: 1 px" in near[0]
    text = r.summary["mapping"]["text"]  # the rule is part of how labels are read, not only a warning
    assert "colours within 1 level per channel of one class colour → that class (nearest-colour tolerance)" in text


def test_palettes_differ_is_a_warning_and_binary_is_detected(tmp_path, settings):
    for i, pal in enumerate(([0] * 768, [255] * 768)):
        save(str(tmp_path / "images" / ("p%d.png" % i)), np.zeros((4, 4, 3), np.uint8))
        save(str(tmp_path / "labels" / ("p%d.png" % i)), np.zeros((4, 4), np.uint8), "P", pal)
    r = check(settings, tmp_path)
    assert r.ok and any(w["code"] == "palettes_differ" for w in r.warnings)
    b = tmp_path / "bin"
    save(str(b / "images" / "m.png"), np.zeros((4, 4), np.uint8))
    save(str(b / "labels" / "m.png"), np.array([[0, 255] * 2] * 4, np.uint8))
    r = check(settings, b)
    assert r.summary["binary_mask"] and [c["pixels"] for c in r.summary["classes"]] == [8, 8]
    assert r.summary["ignore_choices"]["values"] == []  # 255 is the object here: never offered as ignore


def test_empty_folder(tmp_path, settings):
    os.makedirs(tmp_path / "images")
    os.makedirs(tmp_path / "labels")
    r = check(settings, tmp_path)
    assert "empty_folder" in codes(r)


def test_voc_borders_are_not_offered_as_ignore(tmp_path, settings):
    """PASCAL VOC palette labels draw object borders as 255, which is ignore already: the check offers the
    other values it saw, not 255."""
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 252) + [224, 224, 192]
    for i in range(2):
        a = np.zeros((8, 10), np.uint8)
        a[2:6, 2:8] = 1 + i
        a[1, 1:9] = 255  # border
        save(str(tmp_path / "images" / ("2007_00000%d.jpg" % i)), np.zeros((8, 10, 3), np.uint8))
        save(str(tmp_path / "labels" / ("2007_00000%d.png" % i)), a, "P", palette)
    r = check(settings, tmp_path)
    assert r.ok and 255 in r.summary["values_seen"]
    assert [c["value"] for c in r.summary["ignore_choices"]["values"]] == [0, 1, 2]
