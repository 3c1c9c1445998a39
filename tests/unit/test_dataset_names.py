"""records.json: record k of a split names the very file stored under key k, skipped pairs included."""

import os

import numpy as np
import pytest
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets.create import create_dataset
from digits_seg.datasets.names import NAMES_FILE, RecordNames, caption, record_name
from digits_seg.datasets.params import validate_params
from digits_seg.datasets.records import SplitReader


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={"DIGITS_SEG_DATA_ROOTS": str(tmp_path)})


def write_pair(folder, stem, image, label):
    for sub, arr in (("images", image), ("labels", label)):
        os.makedirs(folder / sub, exist_ok=True)
        Image.fromarray(arr).save(folder / sub / (stem + ".png"))


def folder_with_bad_pairs(folder, seed, good, bad):
    """Distinct random pairs (so pixels identify a file), CamVid-like stems, and broken pairs between them."""
    rng = np.random.default_rng(seed)
    for stem in good:
        write_pair(folder, stem, rng.integers(0, 255, (8, 12, 3), dtype=np.uint8),
                   rng.integers(0, 2, (8, 12), dtype=np.uint8))
    for stem in bad:  # a label of another size: "size mismatch", skipped with skip_bad
        write_pair(folder, stem, rng.integers(0, 255, (8, 12, 3), dtype=np.uint8), np.zeros((9, 12), np.uint8))


def good_files(folder):
    """The independent listing: stems whose image and label have the same size, in name order."""
    out = []
    for name in sorted(os.listdir(folder / "images")):
        with Image.open(folder / "images" / name) as im, Image.open(folder / "labels" / name) as lb:
            if im.size == lb.size:
                out.append(os.path.splitext(name)[0])
    return out


def test_names_follow_the_keys_after_skipped_pairs(tmp_path, settings):
    train, val = tmp_path / "camvid" / "train", tmp_path / "camvid" / "val"
    folder_with_bad_pairs(train, 1, ["0001TP_%06d" % k for k in range(6, 60, 6)], ["0001TP_000012x", "0001TP_000031"])
    folder_with_bad_pairs(val, 2, ["Seq05VD_f%05d" % k for k in range(0, 150, 30)], ["Seq05VD_f00007"])
    (tmp_path / "two.txt").write_text("sky\nroad\n")
    params = validate_params({"images": str(train / "images"), "labels": str(train / "labels"),
                              "val_images": str(val / "images"), "val_labels": str(val / "labels"),
                              "classes_file": str(tmp_path / "two.txt"), "skip_bad": "on", "binary": "no"}, settings)
    job = tmp_path / "job"
    job.mkdir()
    create_dataset(str(job), params, log=lambda t: None, workers=2)

    names = RecordNames.load(str(job))
    for split, folder in (("train", train), ("val", val)):
        expected = good_files(folder)
        records = SplitReader(str(job / (split + "_db")))
        assert len(records) == len(expected) and len(expected) >= 5
        assert [names.get(split, k)["stem"] for k in range(len(records))] == expected
        for k in range(len(records)):
            src = names.get(split, k)
            assert src["image"] == str(folder / "images" / (expected[k] + ".png"))
            assert src["label"] == str(folder / "labels" / (expected[k] + ".png"))
            image, label = records[k]  # the Datums under key k hold exactly that file's pixels
            assert np.array_equal(image, np.asarray(Image.open(src["image"])))
            assert np.array_equal(label, np.asarray(Image.open(src["label"])))
        assert names.get(split, len(records)) is None
    assert record_name(str(job), "val", 0)["stem"] == "Seq05VD_f00000"
    assert caption(names, "train", 2) == "0001TP_000018"  # the record after the skipped 0001TP_000012x


def test_datasets_made_before_names_show_the_record_number(tmp_path, settings):
    folder_with_bad_pairs(tmp_path / "f", 3, ["a", "b", "c"], [])
    params = validate_params({"images": str(tmp_path / "f" / "images"), "labels": str(tmp_path / "f" / "labels"),
                              "val_pct": 0, "binary": "no"}, settings)
    job = tmp_path / "job"
    job.mkdir()
    create_dataset(str(job), params, log=lambda t: None, workers=1)
    assert caption(RecordNames.load(str(job)), "train", 2) == "c"
    os.unlink(job / NAMES_FILE)  # as a dataset made before records.json
    assert RecordNames.load(str(job)) is None and record_name(str(job), "train", 2) is None
    assert caption(None, "train", 2) == "#2"


def test_converted_coco_labels_name_the_annotations_not_the_removed_masks(tmp_path, settings):
    import json

    from digits_seg.datasets.layouts.params import layout_params
    from tests.layout_fixtures import make_coco

    root = str(tmp_path / "coco")
    make_coco(root)
    params, det = layout_params({"layout": "coco", "layout_root": root}, settings, validate_params)
    job = tmp_path / "job"
    job.mkdir()
    create_dataset(str(job), json.loads(json.dumps(params)), log=lambda t: None, settings=settings, workers=1)
    assert not (job / "converted_labels").exists()
    names = RecordNames.load(str(job))
    for split in ("train", "val"):
        expected = det.splits[split]  # (stem, image, label) as the layout listed them
        assert [names.get(split, k)["stem"] for k in range(len(expected))] == [p[0] for p in expected]
        assert names.get(split, 0)["image"] == os.path.abspath(expected[0][1])
        assert names.get(split, 0)["label"] == "converted from the annotations in %s" % root


def test_find_prefers_an_exact_stem_then_any_case_and_searches_the_given_split_first():
    names = RecordNames({"splits": {"train": {"stems": ["000000000139", "Frame_2"]}, "val": {"stems": ["frame_2", "7"]}}})
    assert names.find("frame_2") == ("val", 0) and names.find("FRAME_2") == ("train", 1)
    assert names.find("7", ["val", "train"]) == ("val", 1) and names.find("000000000139") == ("train", 0)
    assert names.find("nosuch") is None
