"""Labels read as the user means them: palette labels by colour, ignore values/colours, label maps.

Fixtures mirror public sets: CamVid's SegNet copy (grey 0..11, 11 = Unlabelled), CamVid's
`_L` colour labels with an alphabetical `class_dict.csv` (`name,r,g,b`), palette PNGs whose
palette order is not the file's. Expected stored labels are computed here with numpy from the
files, and compared with the Datums decoded straight from the LMDB.
"""

import io
import os

import lmdb
import numpy as np
import pytest
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets.check import check_folders
from digits_seg.datasets.create import create_dataset, preflight
from digits_seg.datasets.datum import decode_datum
from digits_seg.datasets.params import validate_params
from digits_seg.errors import ValidationError

CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
          "Bicyclist", "Unlabelled"]
CLASS_DICT = [("Animal", (64, 128, 64)), ("Road", (128, 64, 128)), ("Sky", (128, 128, 128)), ("Void", (0, 0, 0))]
"""Alphabetical, as CamVid's class_dict.csv is."""
PALETTE_ORDER = ["Void", "Sky", "Road", "Animal"]
"""The order the annotation tool wrote its palette in: index 0 Void, 1 Sky, 2 Road, 3 Animal."""
STEMS = ["0016E5_07959", "0016E5_07961", "0016E5_07963", "0016E5_07965"]


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={"DIGITS_SEG_DATA_ROOTS": str(tmp_path)})


def _image(path, rng, size=(40, 32)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _blocks(rng, values, size=(40, 32)):
    """A label of rectangles (real labels are regions, not noise), every value present."""
    a = np.full((size[1], size[0]), values[0], np.uint8)
    for k, v in enumerate(values):
        a[:, k * size[0] // len(values):] = v
    a[rng.integers(0, size[1]), :] = values[-1]
    return a


def camvid_segnet(root, rng):
    """SegNet layout: train/ images, trainannot/ grey L labels 0..11 (11 = Unlabelled)."""
    os.makedirs(root / "trainannot", exist_ok=True)
    for stem in STEMS:
        _image(str(root / "train" / (stem + ".png")), rng)
        Image.fromarray(_blocks(rng, list(rng.permutation(12))), "L").save(str(root / "trainannot" / (stem + ".png")))
    (root / "classes.txt").write_text("\n".join(CAMVID) + "\n")


def palette_set(root, rng):
    """Palette `_L.png` labels whose palette order is not class_dict.csv's (alphabetical)."""
    colors = dict(CLASS_DICT)
    flat = [v for name in PALETTE_ORDER for v in colors[name]]
    flat += [224, 224, 192] * (256 - len(PALETTE_ORDER))  # VOC-like: the rest of the palette unused
    for stem in STEMS:
        _image(str(root / "images" / (stem + ".png")), rng)
        im = Image.fromarray(_blocks(rng, list(rng.permutation(4))), "P")
        im.putpalette(flat)
        os.makedirs(root / "labels", exist_ok=True)
        im.save(str(root / "labels" / (stem + "_L.png")))
    (root / "class_dict.csv").write_text("name,r,g,b\n" + "".join("%s,%d,%d,%d\n" % (n, *c) for n, c in CLASS_DICT))


def rgb_set(root, rng, white=True):
    """RGB colour-coded `_L.png` labels; some pixels white (255,255,255), which class_dict.csv does not list."""
    colors = [c for _, c in CLASS_DICT]
    for stem in STEMS:
        _image(str(root / "images" / (stem + ".png")), rng)
        idx = _blocks(rng, list(rng.permutation(4)))
        rgb = np.asarray(colors, np.uint8)[idx]
        if white:
            rgb[:3, :5] = 255
        os.makedirs(root / "labels", exist_ok=True)
        Image.fromarray(rgb, "RGB").save(str(root / "labels" / (stem + "_L.png")))
    (root / "class_dict.csv").write_text("name,r,g,b\n" + "".join("%s,%d,%d,%d\n" % (n, *c) for n, c in CLASS_DICT))


def stored_labels(job_dir, split="train"):
    """Every label of a split, decoded from its Datum as stored in the LMDB (keys in order)."""
    env = lmdb.open(os.path.join(job_dir, split + "_db", "labels"), readonly=True, lock=False)
    out = []
    with env.begin() as txn:
        for _, value in txn.cursor():
            d = decode_datum(value)
            out.append(np.asarray(Image.open(io.BytesIO(d.data))) if d.encoded
                       else np.frombuffer(d.data, np.uint8).reshape(d.height, d.width))
    env.close()
    return out


def build(tmp_path, settings, raw, **declared):
    """Create a dataset in-process from form-like params (`class_names`, a layout's inline list, added after)."""
    inline = {k: declared.pop(k) for k in ("class_names",) if k in declared}
    params = validate_params(dict(raw, val_pct=0, **declared), settings)
    params.update(inline)
    job = tmp_path / "job"
    os.makedirs(job, exist_ok=True)
    lines = []
    create_dataset(str(job), params, log=lines.append, workers=1)
    import json
    return json.loads((job / "dataset.json").read_text()), stored_labels(str(job)), lines


def test_palette_order_differs_from_colour_file_maps_by_colour(tmp_path, settings):
    palette_set(tmp_path, np.random.default_rng(1))
    raw = {"images": str(tmp_path / "images"), "labels": str(tmp_path / "labels"),
           "colormap_file": str(tmp_path / "class_dict.csv")}
    info, labels, _ = build(tmp_path, settings, raw)
    names = [n for n, _ in CLASS_DICT]
    assert info["classes"] == names
    # expected: palette index → its colour → the class_dict row of that colour
    by_index = np.array([names.index(n) for n in PALETTE_ORDER], np.uint8)
    for stem, got in zip(STEMS, labels):
        raw_idx = np.asarray(Image.open(tmp_path / "labels" / (stem + "_L.png")))
        np.testing.assert_array_equal(got, by_index[raw_idx])
    text = info["label_mapping"]["text"]
    assert "palette index 3 (64,128,64) → class 0 Animal" in text
    assert "palette index 0 (0,0,0) → class 3 Void" in text
    report = check_folders(validate_params(dict(raw, val_pct=0), settings), settings)
    assert report.ok and any(w["code"] == "palette_order" for w in report.warnings)
    assert any(w["code"] == "void_class" and "0,0,0" in w["message"] for w in report.warnings)


def test_palette_with_ignored_void_colour_drops_the_class(tmp_path, settings):
    palette_set(tmp_path, np.random.default_rng(2))
    raw = {"images": str(tmp_path / "images"), "labels": str(tmp_path / "labels"),
           "colormap_file": str(tmp_path / "class_dict.csv")}
    info, labels, _ = build(tmp_path, settings, raw, ignore_colors=[[0, 0, 0]])
    assert info["classes"] == ["Animal", "Road", "Sky"] and info["colormap"][2] == [128, 128, 128]
    lut = np.array([255, 2, 1, 0], np.uint8)  # Void, Sky, Road, Animal by palette index
    for stem, got in zip(STEMS, labels):
        np.testing.assert_array_equal(got, lut[np.asarray(Image.open(tmp_path / "labels" / (stem + "_L.png")))])
    assert info["splits"]["train"]["ignore_pixels"] == sum(int((g == 255).sum()) for g in labels) > 0


def test_camvid_segnet_ignore_11(tmp_path, settings):
    camvid_segnet(tmp_path, np.random.default_rng(3))
    raw = {"images": str(tmp_path / "train"), "labels": str(tmp_path / "trainannot"),
           "classes_file": str(tmp_path / "classes.txt")}
    report = check_folders(validate_params(dict(raw, val_pct=0), settings), settings)
    offered = [c for c in report.summary["ignore_choices"]["values"] if c["suggested"]]
    assert [c["value"] for c in offered] == [11]
    assert any("Unlabelled" in w["message"] and "--ignore 11" in w["message"] for w in report.warnings)
    info, labels, _ = build(tmp_path, settings, raw, ignore_values="11")
    assert info["classes"] == CAMVID[:11] and info["num_classes"] == 11
    for stem, got in zip(STEMS, labels):
        a = np.asarray(Image.open(tmp_path / "trainannot" / (stem + ".png")))
        np.testing.assert_array_equal(got, np.where(a == 11, 255, a))
    assert "value 11 → ignore (255)" in info["label_mapping"]["text"]
    assert info["label_mapping"]["ignore_values"] == [11]


def test_ignore_0_reduces_zero_label(tmp_path, settings):
    """ADE20K: 0 = "other" → ignore, every class moves down by one."""
    camvid_segnet(tmp_path, np.random.default_rng(4))
    raw = {"images": str(tmp_path / "train"), "labels": str(tmp_path / "trainannot")}
    info, labels, _ = build(tmp_path, settings, raw, ignore_values=[0])
    assert info["num_classes"] == 11
    for stem, got in zip(STEMS, labels):
        a = np.asarray(Image.open(tmp_path / "trainannot" / (stem + ".png"))).astype(int)
        np.testing.assert_array_equal(got, np.where(a == 0, 255, a - 1))


def test_label_map_lists_every_value_or_refuses(tmp_path, settings):
    camvid_segnet(tmp_path, np.random.default_rng(5))
    raw = {"images": str(tmp_path / "train"), "labels": str(tmp_path / "trainannot")}
    params = validate_params(dict(raw, val_pct=0), settings)
    lmap = {str(v): (v // 2 if v < 10 else 255) for v in range(12) if v != 7}
    with pytest.raises(ValidationError) as e:
        preflight(dict(params, label_map=lmap, class_names=["c%d" % i for i in range(5)]))
    assert "label value 7 in file " in e.value.message and "is not in the label map" in e.value.message
    lmap["7"] = 3
    info, labels, _ = build(tmp_path, settings, raw, label_map=lmap, class_names=["c%d" % i for i in range(5)])
    lut = np.array([v // 2 if v < 10 else 255 for v in range(256)], np.uint8)
    for stem, got in zip(STEMS, labels):
        np.testing.assert_array_equal(got, lut[np.asarray(Image.open(tmp_path / "trainannot" / (stem + ".png")))])


def test_rgb_unlisted_white_refused_then_ignored(tmp_path, settings):
    rgb_set(tmp_path, np.random.default_rng(6))
    raw = {"images": str(tmp_path / "images"), "labels": str(tmp_path / "labels"),
           "colormap_file": str(tmp_path / "class_dict.csv")}
    params = validate_params(dict(raw, val_pct=0), settings)
    with pytest.raises(ValidationError) as e:
        preflight(params)
    assert "(255,255,255): 60 px" in e.value.message
    colors = [c for _, c in CLASS_DICT]

    def expected(stem):
        a = np.asarray(Image.open(tmp_path / "labels" / (stem + "_L.png"))).astype(np.int64)
        packed = a[..., 0] | a[..., 1] << 8 | a[..., 2] << 16
        out = np.full(packed.shape, 255, np.uint8)
        for k, (r, g, b) in enumerate(colors):
            out[packed == (r | g << 8 | b << 16)] = k
        return out

    for declared in ({"ignore_colors": "255,255,255"}, {"unknown_colors": "ignore"}):
        assert preflight(validate_params(dict(raw, val_pct=0, **declared), settings)).ok
        info, labels, lines = build(tmp_path, settings, raw, **declared)
        assert info["num_classes"] == 4
        for stem, got in zip(STEMS, labels):
            np.testing.assert_array_equal(got, expected(stem))
        assert info["splits"]["train"]["ignore_pixels"] == 60


def test_fake_png_is_named_not_a_bytesio(tmp_path, settings):
    camvid_segnet(tmp_path, np.random.default_rng(7))
    (tmp_path / "trainannot" / (STEMS[1] + ".png")).write_text("version https://git-lfs.github.com/spec/v1\n")
    params = validate_params({"images": str(tmp_path / "train"), "labels": str(tmp_path / "trainannot"),
                              "val_pct": 0}, settings)
    with pytest.raises(ValidationError) as e:
        preflight(params)
    assert STEMS[1] + ".png is not an image" in e.value.message and "BytesIO" not in e.value.message
    assert "version https" in e.value.message
    assert preflight(dict(params, skip_bad=True)).warnings  # skipping the bad pair is allowed...
    for stem in STEMS:
        (tmp_path / "trainannot" / (stem + ".png")).write_text("not a png")
    with pytest.raises(ValidationError) as e:
        preflight(dict(params, skip_bad=True))  # ...but not skipping every pair
    assert "every pair has a problem" in e.value.message


def test_check_reports_same_folder_rgba_and_empty_validation(tmp_path, settings):
    rng = np.random.default_rng(8)
    for stem in STEMS[:2]:
        os.makedirs(tmp_path / "images", exist_ok=True)
        rgba = np.concatenate([rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), np.full((8, 8, 1), 255, np.uint8)], 2)
        rgba[0, 0, 3] = 0
        Image.fromarray(rgba, "RGBA").save(str(tmp_path / "images" / (stem + ".png")))
        os.makedirs(tmp_path / "labels", exist_ok=True)
        Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(str(tmp_path / "labels" / (stem + ".png")))
    r = check_folders(validate_params({"images": str(tmp_path / "images"), "labels": str(tmp_path / "labels"),
                                       "val_pct": 0}, settings), settings)
    codes = {w["code"] for w in r.warnings}
    assert {"rgba_images", "no_val_pairs"} <= codes
    assert any("varying transparency" in w["message"] for w in r.warnings)
    same = check_folders(validate_params({"images": str(tmp_path / "labels"), "labels": str(tmp_path / "labels"),
                                          "val_pct": 0}, settings), settings)
    assert "same_folder" in {e["code"] for e in same.errors}


def test_16bit_labels_through_a_label_map(tmp_path, settings):
    """16-bit label PNGs (I;16) with ids above 255: the label map names every one, or the file is refused."""
    rng = np.random.default_rng(9)
    raw_ids = np.array([0, 7, 26, 1000], np.uint16)
    for stem in STEMS[:2]:
        _image(str(tmp_path / "images" / (stem + ".png")), rng, size=(8, 8))
        os.makedirs(tmp_path / "labels", exist_ok=True)
        a = raw_ids[rng.integers(0, 4, (8, 8))]
        Image.frombytes("I;16", (8, 8), a.astype("<u2").tobytes()).save(str(tmp_path / "labels" / (stem + ".png")))
    raw = {"images": str(tmp_path / "images"), "labels": str(tmp_path / "labels")}
    with pytest.raises(ValidationError) as e:
        preflight(validate_params(dict(raw, val_pct=0, label_map="0:255 7:0 26:1"), settings))
    assert "label value 1000 in file " in e.value.message and "not in the label map" in e.value.message
    info, labels, _ = build(tmp_path, settings, raw, label_map="0:255 7:0 26:1 1000:2")
    assert info["num_classes"] == 3 and "value 1000 → class 2 class_2" in info["label_mapping"]["text"]
    lut = {0: 255, 7: 0, 26: 1, 1000: 2}
    for stem, got in zip(STEMS, labels):
        a = np.asarray(Image.open(tmp_path / "labels" / (stem + ".png"))).astype(np.int64)
        np.testing.assert_array_equal(got, np.vectorize(lut.get)(a).astype(np.uint8))
