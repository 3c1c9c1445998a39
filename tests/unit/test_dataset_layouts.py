"""Standard layouts (VOC, SBD, Cityscapes, CamVid-SegNet, ADE20K, COCO) detected and built from generated
copies of their published structure; every stored label is decoded from the LMDB and compared, pixel by
pixel, with the raw label mapped by a few lines of numpy written here."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets import layouts
from digits_seg.datasets.create import create_dataset
from digits_seg.datasets.layouts.params import layout_params
from digits_seg.datasets.params import validate_params
from digits_seg.errors import ValidationError

from .. import layout_fixtures as F
from ..layout_fixtures import stored_labels


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={"DIGITS_SEG_DATA_ROOTS": str(tmp_path)})


def make(tmp_path, maker, name="data"):
    root = tmp_path / name
    root.mkdir()
    maker(str(root))
    return str(root)


def build(tmp_path, settings, raw):
    params, det = layout_params(raw, settings, validate_params)
    job = tmp_path / "job"
    job.mkdir()
    lines = []
    result = create_dataset(str(job), json.loads(json.dumps(params)), log=lines.append, settings=settings, workers=1)
    return str(job), params, det, result, lines


def raw_labels(det, split):
    return [np.asarray(Image.open(lbl)) for _, _, lbl in det.splits[split]]


def check_split(job, det, split, lut):
    got = stored_labels(job, split)
    want = [lut[a] for a in raw_labels(det, split)]
    assert len(got) == len(want) == len(det.splits[split]) > 0
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_voc_palette_labels_keep_ids_and_borders(tmp_path, settings):
    root = make(tmp_path, F.make_voc)
    job, params, det, result, _ = build(tmp_path, settings, {"layout": "auto", "layout_root": root})
    assert det.layout == "voc" and det.root.endswith(os.path.join("VOCdevkit", "VOC2012"))
    assert [s for s, _, _ in det.splits["train"]] == F.VOC_IDS["train"]  # the unlabelled 2012_004300 is not listed
    assert result["train"] == 3 and result["val"] == 2 and result["num_classes"] == 21
    identity = np.arange(256, dtype=np.uint8)  # palette index = class id; 255 (borders) stays ignore
    check_split(job, det, "train", identity)
    check_split(job, det, "val", identity)
    info = json.load(open(os.path.join(job, "dataset.json")))
    assert info["classes"][15] == "person" and info["colormap"][15] == [192, 128, 128]
    assert info["splits"]["train"]["ignore_pixels"] > 0


def test_sbd_list_files_and_release(tmp_path, settings):
    root = make(tmp_path, F.make_sbd_lists, "aug")
    job, params, det, result, _ = build(tmp_path, settings, {"layout": "voc", "layout_root": root})
    assert det.options["lists"] == "aug" and result["train"] == 3 and result["val"] == 1
    check_split(job, det, "train", np.arange(256, dtype=np.uint8))

    from scipy.io import loadmat

    rel = make(tmp_path, F.make_sbd_release, "sbd")
    det = layouts.detect(rel, "voc")
    assert det.converted and det.title.startswith("SBD")
    (tmp_path / "job").rename(tmp_path / "job-aug")
    job, params, det, result, lines = build(tmp_path, settings, {"layout": "voc", "layout_root": rel})
    got = stored_labels(job, "train")
    for g, (stem, _, _) in zip(got, det.splits["train"]):
        mat = loadmat(os.path.join(det.root, "cls", stem + ".mat"))["GTcls"][0, 0]["Segmentation"]
        np.testing.assert_array_equal(g, mat)
    assert not os.path.exists(os.path.join(job, layouts.MASKS_DIR))  # cleaned up once the dataset holds them
    assert any("converted 3 labels" in ln for ln in lines)


def test_cityscapes_label_ids_become_train_ids(tmp_path, settings):
    root = make(tmp_path, F.make_cityscapes)
    job, params, det, result, _ = build(tmp_path, settings, {"layout": "cityscapes", "layout_root": root})
    assert [s for s, _, _ in det.splits["val"]] == ["frankfurt_000000_000294", "lindau_000000_000019"]
    lut = np.full(256, 255, dtype=np.uint8)
    lut[[7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]] = np.arange(19)
    check_split(job, det, "train", lut)
    check_split(job, det, "val", lut)
    names = open(os.path.join(job, "labels.txt")).read().split("\n")
    assert names[0] == "road" and names[13] == "car" and names[18] == "bicycle" and len(names) == 20  # + final ""
    colormap = json.load(open(os.path.join(job, "colormap.json")))
    assert colormap[0] == [128, 64, 128] and colormap[13] == [0, 0, 142]


def test_camvid_segnet_void_is_ignored(tmp_path, settings):
    root = make(tmp_path, F.make_camvid)
    job, params, det, result, _ = build(tmp_path, settings, {"layout": "camvid-segnet", "layout_root": root})
    assert result["num_classes"] == 11 and result["train"] == 3 and result["val"] == 2  # test/ left out
    lut = np.arange(256, dtype=np.uint8)
    lut[11] = 255
    check_split(job, det, "train", lut)
    check_split(job, det, "val", lut)


def test_ade20k_zero_is_ignored_and_classes_shift(tmp_path, settings):
    root = make(tmp_path, F.make_ade20k)
    job, params, det, result, _ = build(tmp_path, settings, {"layout": "auto", "layout_root": root})
    assert det.layout == "ade20k" and result["num_classes"] == 150
    lut = (np.arange(256) - 1).astype(np.uint8)  # 0 → 255 (ignore), k → k - 1
    check_split(job, det, "train", lut)
    check_split(job, det, "val", lut)
    names = open(os.path.join(job, "labels.txt")).read().splitlines()
    assert names[:3] == ["wall", "building", "sky"]
    bare = make(tmp_path, lambda r: F.make_ade20k(r, object_info=False), "bare")
    assert layouts.detect(bare, "ade20k").classes[:2] == ["class_1", "class_2"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under numpy 2
def test_coco_rasterised_smaller_on_top_crowd_ignored(tmp_path, settings):
    root = make(tmp_path, F.make_coco)
    job, params, det, result, lines = build(tmp_path, settings, {"layout": "coco", "layout_root": root})
    assert det.classes == ["background", "person", "car", "dog"] and result["train"] == 3 and result["val"] == 1
    assert any(n.startswith("val: 1 image from val2017/, 1 instance of the picked categories (0 crowd regions)")
               for n in det.notes), det.notes  # was "1 images", "1 instances"
    from pycocotools import mask as cmask

    m = F.coco_masks()
    car = cmask.decode(cmask.merge(cmask.frPyObjects([F.CAR_POLYGON], F.H, F.W))).astype(bool)
    img9 = np.zeros((F.H, F.W), np.uint8)
    img9[car] = 2
    img9[m["person"] == 1] = 1  # the smaller person lies on the car
    img25 = np.zeros((F.H, F.W), np.uint8)
    img25[m["crowd"] == 1] = 255  # a crowd of people: ignore ...
    img25[m["dog"] == 1] = 3  # ... except where a single instance covers it
    got = stored_labels(job, "train")  # stems sorted: 000000000009, 000000000025, 000000000030
    assert (img9 == 1).any() and (img9 == 2).any() and (img25 == 255).any()
    np.testing.assert_array_equal(got[0], img9)
    np.testing.assert_array_equal(got[1], img25)
    np.testing.assert_array_equal(got[2], np.zeros((F.H, F.W), np.uint8))  # no annotations: background
    np.testing.assert_array_equal(stored_labels(job, "val")[0], np.where(car, 2, 0))
    assert not os.path.exists(os.path.join(job, layouts.MASKS_DIR))


def test_coco_picked_categories(tmp_path, settings):
    root = make(tmp_path, F.make_coco)
    job, params, det, result, _ = build(tmp_path, settings, {"layout": "coco", "layout_root": root, "categories": "person"})
    assert det.classes == ["background", "person"] and params["layout_options"] == {"categories": ["person"]}
    m = F.coco_masks()
    got = stored_labels(job, "train")
    np.testing.assert_array_equal(got[0], m["person"])  # the car is background now
    np.testing.assert_array_equal(got[1], np.where(m["crowd"] == 1, 255, 0))  # the dog too: the crowd stays ignore
    with pytest.raises(ValidationError, match="unknown COCO category giraffe; available: person, car, dog"):
        layouts.detect(root, "coco", {"categories": ["giraffe"]})


def test_auto_says_what_it_looked_for(tmp_path, settings):
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(ValidationError) as e:
        layouts.detect(str(empty))
    for expected in ("VOCdevkit", "leftImg8bit", "trainannot", "annotations/training", "instances_"):
        assert expected in e.value.message
    with pytest.raises(ValidationError, match="outside the allowed data folders"):
        layout_params({"layout": "voc", "layout_root": "/etc"}, settings, validate_params)


def test_voc_list_naming_a_missing_label_is_refused(tmp_path, settings):
    root = make(tmp_path, F.make_voc)
    os.unlink(os.path.join(root, "VOCdevkit", "VOC2012", "SegmentationClass", "2007_000039.png"))
    with pytest.raises(ValidationError, match=r"2007_000039.*train.txt|train.txt.*2007_000039"):
        layouts.detect(root, "voc")


def test_coco_bad_annotation_is_named(tmp_path):
    root = make(tmp_path, F.make_coco)
    path = os.path.join(root, "annotations", "instances_val2017.json")
    doc = json.load(open(path))
    doc["annotations"][0]["segmentation"] = {"points": [1, 2, 3]}
    json.dump(doc, open(path, "w"))
    det = layouts.detect(root, "coco")
    with pytest.raises(ValidationError, match="instances_val2017.json, image 000000000139.jpg: .*polygons or RLE"):
        layouts.LAYOUTS["coco"].convert(det, str(tmp_path / "masks"), lambda: None, workers=0)


def test_real_voc_labels_in_the_devkit_layout(tmp_path, settings, shared_data):
    """Real PASCAL VOC photos and palette labels (borders 255) arranged as VOCdevkit/VOC2012."""
    import shutil

    src = os.path.join(shared_data, "voc_palette", "semantic")
    voc = tmp_path / "data" / "VOCdevkit" / "VOC2012"
    stems = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(src, "labels")))
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    for s in stems:
        shutil.copy(os.path.join(src, "images", s + ".jpg"), voc / "JPEGImages")
        shutil.copy(os.path.join(src, "labels", s + ".png"), voc / "SegmentationClass")
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(stems[:2]) + "\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text(stems[2] + "\n")
    job, params, det, result, _ = build(tmp_path, settings, {"layout": "voc", "layout_root": str(tmp_path / "data")})
    raw = np.asarray(Image.open(voc / "SegmentationClass" / (stems[0] + ".png")))
    assert (raw == 255).any() and result["num_classes"] == 21
    check_split(job, det, "train", np.arange(256, dtype=np.uint8))
    check_split(job, det, "val", np.arange(256, dtype=np.uint8))
