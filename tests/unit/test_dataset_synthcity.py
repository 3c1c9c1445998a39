"""SynthCity: deterministic, all classes present, palette PNG labels that match the images."""

import hashlib
import os

import numpy as np
from PIL import Image

from digits_seg.datasets import synthcity


def digest(folder):
    h = hashlib.sha256()
    for sub in ("images", "labels"):
        for name in sorted(os.listdir(os.path.join(folder, sub))):
            h.update(open(os.path.join(folder, sub, name), "rb").read())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    synthcity.generate(str(tmp_path / "a"), 3, size=(48, 32), seed=1)
    synthcity.generate(str(tmp_path / "b"), 3, size=(48, 32), seed=1)
    synthcity.generate(str(tmp_path / "c"), 3, size=(48, 32), seed=2)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_labels_are_palette_pngs_covering_all_classes(tmp_path):
    info = synthcity.generate(str(tmp_path), 16, size=(96, 64), seed=0)
    assert len(info["classes"]) >= 10 and all(n > 0 for n in info["class_pixels"].values())
    lbl = Image.open(tmp_path / "labels" / "scene_00000.png")
    img = Image.open(tmp_path / "images" / "scene_00000.png")
    assert lbl.mode == "P" and lbl.size == img.size == (96, 64) and img.mode == "RGB"
    assert lbl.getpalette()[:6] == list(synthcity.COLORMAP[0] + synthcity.COLORMAP[1])
    assert np.asarray(lbl).max() < len(synthcity.CLASSES)
    assert open(tmp_path / "classes.txt").read().splitlines() == list(synthcity.CLASSES)


def test_scenes_vary_in_layout_and_lighting(tmp_path):
    synthcity.generate(str(tmp_path), 6, size=(64, 48), seed=3)
    labels = [np.asarray(Image.open(tmp_path / "labels" / ("scene_%05d.png" % i))) for i in range(6)]
    means = [np.asarray(Image.open(tmp_path / "images" / ("scene_%05d.png" % i))).mean() for i in range(6)]
    assert len({lbl.tobytes() for lbl in labels}) == 6
    assert max(means) - min(means) > 5
    horizons = {int(np.argmax((lbl == synthcity.SKY).sum(axis=1) < 32)) for lbl in labels}
    assert len(horizons) > 1
