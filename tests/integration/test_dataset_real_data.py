"""Create a dataset from each real sample in ../shared/data and compare with the source files."""

import os

import numpy as np
import pytest
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets.check import check_folders
from digits_seg.datasets.create import create_dataset
from digits_seg.datasets.info import DatasetInfo
from digits_seg.datasets.params import validate_params
from digits_seg.datasets.reader import SegmentationLMDB
from digits_seg.errors import ValidationError


def build(shared_data, tmp_path, **raw):
    settings = load_settings(environ={"DIGITS_SEG_DATA_ROOTS": shared_data})
    params = validate_params({k: os.path.join(shared_data, v) if k in ("images", "labels", "val_images", "val_labels",
                                                                        "classes_file", "colormap_file") else v
                              for k, v in raw.items()}, settings)
    lines = []
    job = tmp_path / "job"
    os.makedirs(job, exist_ok=True)
    create_dataset(str(job), params, log=lines.append, settings=settings)
    return DatasetInfo.load(str(job)), str(job), lines, params


def test_camvid_greyscale_index_labels(shared_data, tmp_path):
    info, job, lines, _ = build(shared_data, tmp_path, images="camvid/images/train", labels="camvid/labels/train",
                                val_images="camvid/images/val", val_labels="camvid/labels/val",
                                classes_file="camvid/classes.txt", colormap_file="camvid/colormap.txt")
    assert info.splits == {"train": {"count": 24, "size": [480, 360]}, "val": {"count": 8, "size": [480, 360]}}
    assert info.classes[0] == "Sky" and info.classes[11] == "Unlabelled" and info.colormap[3] == [128, 64, 128]
    ds = SegmentationLMDB(os.path.join(job, "val_db"))
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(shared_data, "camvid/labels/val")))
    src = np.asarray(Image.open(os.path.join(shared_data, "camvid/labels/val", stems[0] + ".png")))
    img = np.asarray(Image.open(os.path.join(shared_data, "camvid/images/val", stems[0] + ".png")).convert("RGB"))
    image, label = ds[0]
    assert np.array_equal(label, src) and np.array_equal(image, img)
    assert "re-encoded 0 images and 0 labels" in " ".join(lines)


def test_membrane_binary_masks_and_greyscale_images(shared_data, tmp_path):
    info, job, lines, _ = build(shared_data, tmp_path, images="membrane/images", labels="membrane/labels",
                                channels="keep", val_pct=10, seed=1)
    assert info.num_classes == 2 and info.channels == 1
    assert info.splits["train"]["count"] + info.splits["val"]["count"] == 30
    ds = SegmentationLMDB(os.path.join(job, "train_db"))
    image, label = ds[0]
    assert image.shape == (512, 512, 1) and set(np.unique(label).tolist()) == {0, 1}
    # find the source of record 0 by image content, then compare the label pixel for pixel
    for name in sorted(os.listdir(os.path.join(shared_data, "membrane/images"))):
        src_img = np.asarray(Image.open(os.path.join(shared_data, "membrane/images", name)))
        if np.array_equal(src_img, image[:, :, 0]):
            src = np.asarray(Image.open(os.path.join(shared_data, "membrane/labels", name)))
            assert np.array_equal(label, (src == 255).astype(np.uint8))
            break
    else:
        pytest.fail("record 0 matches no source image")
    assert info.class_pixel_counts("train").sum() > 0 and not info.to_dict()["splits"]["train"]["ignore_pixels"]


@pytest.mark.parametrize("sub,count,values", [("semantic", 3, {0, 5, 6, 7, 9, 15, 18, 255}), ("video", 5, {0, 1, 2})])
def test_voc_palette_labels_keep_255_as_ignore(shared_data, tmp_path, sub, count, values):
    info, job, _, _ = build(shared_data, tmp_path, images="voc_palette/%s/images" % sub,
                            labels="voc_palette/%s/labels" % sub, classes_file="voc_palette/%s/class_names.txt" % sub,
                            val_pct=0)
    assert info.splits["train"]["count"] == count and info.variable_size == (sub == "semantic")
    assert info.colormap[1] == [128, 0, 0]  # taken from the label palette (VOC)
    ds = SegmentationLMDB(os.path.join(job, "train_db"))
    seen = set()
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(shared_data, "voc_palette", sub, "labels")))
    for i in range(len(ds)):
        label = ds[i][1]
        src = np.asarray(Image.open(os.path.join(shared_data, "voc_palette", sub, "labels", stems[i] + ".png")))
        assert np.array_equal(label, src)
        seen |= set(np.unique(label).tolist())
    assert seen == values


def test_industrial_rgb_needs_tolerance(shared_data, tmp_path):
    settings = load_settings(environ={"DIGITS_SEG_DATA_ROOTS": shared_data})
    raw = {"images": os.path.join(shared_data, "industrial_rgb/images"),
           "labels": os.path.join(shared_data, "industrial_rgb/labels"),
           "colormap_file": os.path.join(shared_data, "industrial_rgb/class_dict.csv"), "val_pct": 0}
    report = check_folders(validate_params(raw, settings), settings)
    assert [e["code"] for e in report.errors] == ["unknown_colors"]
    msg = report.errors[0]["message"]
    assert "(228,0,144)" in msg and "tolerance" in msg
    share = int(msg.split(" label pixels")[0]) / (20 * 1920 * 1080)
    assert 0.08 < share < 0.11
    with pytest.raises(ValidationError, match="not in the colour map"):
        build(shared_data, tmp_path, images="industrial_rgb/images", labels="industrial_rgb/labels",
              colormap_file="industrial_rgb/class_dict.csv", val_pct=0)
    assert not os.path.exists(tmp_path / "job" / "dataset.json")
    info, job, lines, _ = build(shared_data, tmp_path, images="industrial_rgb/images", labels="industrial_rgb/labels",
                                colormap_file="industrial_rgb/class_dict.csv", val_pct=0, color_tolerance=2)
    assert info.classes == ["scraper", "slag", "iron_water", "needle", "Void"] and info.splits["train"]["count"] == 20
    assert any("nearest colour" in ln for ln in lines)
    ds = SegmentationLMDB(os.path.join(job, "train_db"))
    label = ds[0][1]  # img_0 (sorted stems: img_0, img_124, ...)
    src = np.asarray(Image.open(os.path.join(shared_data, "industrial_rgb/labels/img_0_L.png")))
    assert tuple(src[label == 1][0]) in {(228, 0, 144), (227, 0, 144)}
    assert np.all(label[np.all(src == (255, 255, 255), axis=2)] == 4)
    assert set(np.unique(label).tolist()) <= {0, 1, 2, 3, 4}
