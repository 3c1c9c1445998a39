"""Inference on the real samples in ../shared/data: label pairing and decoding for test many,
and large (480×360) CamVid images predicted with sliding windows through the CLI and a job."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from digits_seg.cli import main as cli_main
from digits_seg.config import load_settings
from digits_seg.inference.batch import infer_many, validate_params
from digits_seg.inference.predictor import Predictor
from digits_seg.inference.sliding import sliding_logits
from digits_seg.inference.sources import find_label, label_index, list_images, read_label
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.standard import standard_prototxt
from digits_seg.networks.weights import save_h5


def test_camvid_greyscale_labels_pair_and_decode(shared_data):
    images = os.path.join(shared_data, "camvid", "images", "val")
    labels = os.path.join(shared_data, "camvid", "labels", "val")
    files = list_images(images)
    assert len(files) == 8
    index = label_index(labels)
    for path in files:
        label = find_label(path, images, index)
        assert label and os.path.basename(label) == os.path.basename(path)
        ids = read_label(label, colormap=[], num_classes=12)
        raw = np.asarray(Image.open(label))
        assert ids.shape == (360, 480) and (ids == raw).all() and ids.max() <= 11


def test_voc_palette_keeps_255_as_ignore(shared_data):
    label = os.path.join(shared_data, "voc_palette", "semantic", "labels", "2011_000003.png")
    ids = read_label(label, colormap=[], num_classes=21)
    assert 255 in np.unique(ids) and set(np.unique(ids).tolist()) <= {0, 5, 6, 7, 9, 15, 18, 255}


def test_membrane_binary_mask_becomes_classes_0_1(shared_data):
    label = os.path.join(shared_data, "membrane", "labels", "0.png")
    raw = np.asarray(Image.open(label).convert("L"))
    assert set(np.unique(raw).tolist()) == {0, 255}
    ids = read_label(label, colormap=[], num_classes=2)
    assert set(np.unique(ids).tolist()) == {0, 1} and ((ids == 1) == (raw == 255)).all()


def test_industrial_rgb_labels_with_suffix_and_colour_map(shared_data):
    root = os.path.join(shared_data, "industrial_rgb")
    images, labels = os.path.join(root, "images"), os.path.join(root, "labels")
    colors = []
    with open(os.path.join(root, "class_dict.csv")) as f:
        next(f)
        for line in f:
            parts = [p.strip() for p in line.split(",")]
            colors.append([int(parts[1]), int(parts[2]), int(parts[3])])
    path = list_images(images)[0]
    label = find_label(path, images, label_index(labels))
    assert label.endswith("_L.png")
    ids = read_label(label, colormap=colors, num_classes=len(colors))
    ignored = float((ids == 255).mean())
    # exact colours map to classes; the few off-by-one colours become "ignore", never a wrong class
    assert 0 < ignored < 0.5 and ids[ids != 255].max() < len(colors)


@pytest.fixture(scope="module")
def camvid_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("camvid-model")
    text = standard_prototxt("tiny-fcn", 12)
    (d / "network.prototxt").write_text(text)
    torch.manual_seed(3)
    save_h5(compile_net(text, phase="train"), str(d / "best.h5"))
    (d / "preprocess.json").write_text(json.dumps({"channels": 3, "mean_subtraction": "pixel",
                                                   "mean_pixel": [100.0, 100.0, 100.0], "input_size": [128, 128]}))
    return str(d)


def test_cli_predicts_large_image_with_sliding_windows(shared_data, camvid_model, tmp_path):
    image_path = os.path.join(shared_data, "camvid", "images", "val", "0016E5_07959.png")
    out = tmp_path / "out"
    assert cli_main(["infer", "--model", camvid_model, image_path, "--out", str(out)]) == 0
    mask = np.asarray(Image.open(out / "0016E5_07959_mask.png"))
    assert mask.shape == (360, 480)
    p = Predictor.from_model_dir(camvid_model)
    img = np.asarray(Image.open(image_path).convert("RGB"))
    x = torch.from_numpy((img.astype(np.float32) - 100.0).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        want = sliding_logits(lambda t: p.net(t)[p.net.score_blob], x, (128, 128)).argmax(1)[0].numpy()
    assert (mask == want).all()
    assert p.classes[:2] == ["class 0", "class 1"] and len(p.classes) == 12


def test_infer_many_camvid_folder_with_labels(shared_data, camvid_model, tmp_path):
    camvid = os.path.join(shared_data, "camvid")
    settings = load_settings({"data_roots": shared_data}, environ={})
    params = validate_params({"source": "folder", "folder": os.path.join(camvid, "images", "val"),
                              "label_folder": os.path.join(camvid, "labels", "val"), "limit": 3,
                              "tile": 240, "stride": 200}, settings)
    job = tmp_path / "job"
    job.mkdir()
    summary = infer_many(str(job), params, on_progress=lambda f, m: None, should_stop=lambda: False,
                         log=lambda t: None, model_dir=camvid_model, settings=settings)
    assert summary["count"] == 3 and summary["with_gt"] == 3
    res = json.load(open(job / "results.json"))
    assert all(e["width"] == 480 and e["height"] == 360 and e["scores"]["pixel_acc"] is not None
               for e in res["images"])
