"""What a first dataset gets wrong: RGB labels and their colour file, and one top folder given for both sides."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets.check import check_folders
from digits_seg.datasets.create import create_dataset
from digits_seg.datasets.reader import SegmentationLMDB
from digits_seg.datasets.params import validate_params
from digits_seg.datasets.sixteen_bit import Survey

# SegNet's CamVid colours (`colormap.txt` of the shared sample: `R G B` lines, no names), 12 classes.
CAMVID = [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
          (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192), (0, 0, 0)]


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={"DIGITS_SEG_DATA_ROOTS": str(tmp_path)})


@pytest.fixture
def street(tmp_path):
    """Four 32×24 RGB label images `0001TP_00609_L.png` that use only the first four CamVid colours."""
    rng = np.random.default_rng(3)
    ids = []
    for i in range(4):
        idx = rng.integers(0, 4, size=(24, 32)).astype(np.uint8)
        stem = "0001TP_%05d" % (609 + 30 * i)
        os.makedirs(tmp_path / "images", exist_ok=True)
        os.makedirs(tmp_path / "labels", exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(tmp_path / "images" / (stem + ".png"))
        Image.fromarray(np.asarray(CAMVID, np.uint8)[idx]).save(tmp_path / "labels" / (stem + "_L.png"))
        ids.append(idx)
    (tmp_path / "colormap.txt").write_text("".join("%d %d %d\n" % c for c in CAMVID))
    return tmp_path, ids


def params(settings, root, **kw):
    raw = {"images": str(root / "images"), "labels": str(root / "labels"), "val_pct": 0}
    raw.update(kw)
    return validate_params(raw, settings)


def test_a_nameless_colour_file_gives_all_its_classes(tmp_path, settings, street):
    root, ids = street
    p = params(settings, root, colormap_file=str(root / "colormap.txt"))
    report = check_folders(p, settings)
    assert report.ok
    assert report.summary["num_classes"] == 12  # was 4: the largest colour index seen in these labels, + 1
    assert [c["color"] for c in report.summary["classes"]] == [list(c) for c in CAMVID]
    job = tmp_path / "job"
    os.makedirs(job)
    create_dataset(str(job), p, log=lambda line: None)
    info = json.loads((job / "dataset.json").read_text())
    assert info["num_classes"] == 12 and len(info["classes"]) == 12
    assert (job / "labels.txt").read_text().splitlines() == ["class_%d" % i for i in range(12)]
    stored = sorted(np.asarray(SegmentationLMDB(str(job / "train_db"))[i][1]).tobytes() for i in range(4))
    assert stored == sorted(a.tobytes() for a in ids)


def test_a_wrong_colour_file_is_named_as_the_likely_cause(tmp_path, settings, street):
    root, _ = street
    (root / "other.txt").write_text("0 0 0\n255 255 255\n")
    report = check_folders(params(settings, root, colormap_file=str(root / "other.txt")), settings)
    msg = [e["message"] for e in report.errors if e["code"] == "unknown_colors"][0]
    # Each label colour's distance (worst channel) to the file's nearest colour, computed here independently.
    far = {c: min(max(abs(a - b) for a, b in zip(c, f)) for f in [(0, 0, 0), (255, 255, 255)]) for c in CAMVID[:4]}
    closest = min(far, key=far.get)
    assert far[closest] == 127  # (128,128,128) or (192,192,128): a tolerance (at most 64) cannot be the fix
    assert "tolerance" not in msg.split(". ", 1)[1] and "PASCAL VOC" not in msg
    assert "(the closest, (%d,%d,%d), is %d levels away)" % (closest + (far[closest],)) in msg
    assert "colour file other.txt" in msg


def test_rgb_labels_without_a_colour_file_ask_for_it(tmp_path, settings, street):
    root, _ = street
    # CamVid's first colours all happen to be PASCAL VOC palette entries: read silently as VOC classes before.
    report = check_folders(params(settings, root), settings)
    notes = [w["message"] for w in report.warnings if "without a colour-map file" in w["message"]]
    assert notes and "PASCAL VOC palette" in notes[0] and "--colormap" in notes[0]
    label = root / "labels" / "0001TP_00609_L.png"
    rgb = np.asarray(Image.open(label)).copy()
    rgb[0, 0] = (1, 175, 76)  # in no palette
    Image.fromarray(rgb).save(label)
    msg = [e["message"] for e in check_folders(params(settings, root), settings).errors
           if e["code"] == "unknown_colors"][0]
    assert "No colour-map file was given" in msg and "--colormap" in msg


def test_near_colours_get_the_tolerance_they_need(tmp_path, settings, street):
    root, _ = street
    # class_dict.csv whose colours are 1-3 levels off the labels' (the industrial sample's kind of mismatch)
    off = [(129, 128, 128), (128, 3, 0), (192, 190, 128), (128, 64, 126)] + CAMVID[4:]
    (root / "class_dict.csv").write_text("name,r,g,b\n" + "".join("c%d,%d,%d,%d\n" % ((i,) + c)
                                                                   for i, c in enumerate(off)))
    report = check_folders(params(settings, root, colormap_file=str(root / "class_dict.csv")), settings)
    msg = [e["message"] for e in report.errors if e["code"] == "unknown_colors"][0]
    assert "set the nearest-colour tolerance to 3 (--color-tolerance 3)" in msg
    # Every pixel has a colour in no class: refused, not "ignore (not learnt) 100%" as the table said.
    assert report.summary["refused_pixels"] == 4 * 24 * 32 and report.summary["ignore_pixels"] == 0
    assert check_folders(params(settings, root, colormap_file=str(root / "class_dict.csv"), color_tolerance=3),
                         settings).ok


def test_one_top_folder_given_for_images_and_labels_is_one_error_naming_its_subfolders(tmp_path, settings):
    # labelme's VOC export: semantic/images/2011_000003.jpg beside semantic/labels/2011_000003.png
    top = tmp_path / "semantic"
    for stem in ("2011_000003", "2011_000006", "2011_000025"):
        os.makedirs(top / "images", exist_ok=True)
        os.makedirs(top / "labels", exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(top / "images" / (stem + ".jpg"))
        Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(top / "labels" / (stem + ".png"))
    report = check_folders(validate_params({"images": str(top), "labels": str(top), "val_pct": 0}, settings),
                           settings)
    assert [e["code"] for e in report.errors] == ["same_folder"]  # was 3 'name occurs 4 times' errors
    assert "(subfolders: images, labels)" in report.errors[0]["message"]
    assert "'2011_000003'" in report.errors[0]["message"]


def test_an_eight_bit_dataset_says_plainly_how_16_bit_test_images_will_be_taken():
    text = Survey().describe("bits")["text"]
    assert text == ("no 16-bit greyscale images; a 16-bit greyscale test image will be taken as 16-bit data "
                    "(value ÷ 256, 0-65535 → 0-255)")  # was "... will be read as 16-bit (value ÷ 256)"
    assert "12-bit data (value ÷ 16, 0-4095 → 0-255)" in Survey().describe("12")["text"]


def test_cli_check_table_puts_ignored_and_refused_pixels_under_the_class_pixels(tmp_path, settings, street, capsys):
    from digits_seg.commands.dataset import _print_check

    root, _ = street
    label = root / "labels" / "0001TP_00609_L.png"
    rgb = np.asarray(Image.open(label)).copy()
    rgb[0, :3] = (0, 0, 0)  # Void (class 11), declared ignore below
    rgb[1, :2] = (1, 175, 76)  # in no class: refused
    Image.fromarray(rgb).save(label)
    _print_check(check_folders(params(settings, root, colormap_file=str(root / "colormap.txt"),
                                      ignore_colors="0,0,0"), settings))
    lines = capsys.readouterr().out.splitlines()
    ends = {line.index(" px") for line in lines if " px" in line and not line.startswith(("ERROR", "how"))}
    assert len(ends) == 1, lines  # the ignore row's count ended 4 columns left of the class rows'
    assert any(line.strip().startswith("255 (ignore)") and " 3 px" in line for line in lines)
    assert any("colours in no class" in line and " 2 px" in line for line in lines)


def test_cli_check_says_a_layouts_colours_come_from_the_layout(tmp_path, settings, capsys):
    from digits_seg.commands.dataset import _print_check
    from digits_seg.datasets.layouts.params import layout_params
    from tests.layout_fixtures import make_cityscapes

    root = make_cityscapes(str(tmp_path / "cityscapes"))
    p, _ = layout_params({"layout": "cityscapes", "layout_root": root}, settings, validate_params)
    _print_check(check_folders(p, settings))
    out = capsys.readouterr().out
    assert "19 classes (colours from the cityscapes layout's class colours)" in out  # was "(colours from file)"


def test_a_problem_in_many_files_names_the_first_file_by_name(tmp_path, settings):
    for i in range(4):  # float TIFFs: refused, each file its own problem
        os.makedirs(tmp_path / "images", exist_ok=True)
        os.makedirs(tmp_path / "labels", exist_ok=True)
        Image.fromarray(np.full((8, 8), i / 4, np.float32), mode="F").save(tmp_path / "images" / ("cell_%02d.tif" % i))
        Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(tmp_path / "labels" / ("cell_%02d.png" % i))
    report = check_folders(params(settings, tmp_path, val_pct=50), settings)
    err = [e for e in report.errors if e["code"] == "image_range"][0]
    names = [os.path.basename(f) for f in err["files"]]
    assert names == ["cell_00.tif", "cell_01.tif", "cell_02.tif", "cell_03.tif"]  # were in train/val split order
    assert "(first: %s is a 32-bit" % (tmp_path / "images" / "cell_00.tif") in err["message"]
