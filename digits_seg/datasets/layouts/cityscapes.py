"""Cityscapes (`leftImg8bit/<split>/<city>/*_leftImg8bit.png` + `gtFine/<split>/<city>/*_gtFine_labelIds.png`).

The labelIds images store the 34 label ids (0..33) of the official table; training uses the
19 train ids, every other id is ignored (255), exactly as the authors' `createTrainIdLabelImgs`
does. `license plate` (id -1) is never written into labelIds images, so it has no entry here.
"""

import os

from ..palette import IGNORE_LABEL
from .detection import Detection, NotThisLayout, missing_report

LABELS = (
    # id, train id, name, colour
    (0, 255, "unlabeled", (0, 0, 0)),
    (1, 255, "ego vehicle", (0, 0, 0)),
    (2, 255, "rectification border", (0, 0, 0)),
    (3, 255, "out of roi", (0, 0, 0)),
    (4, 255, "static", (0, 0, 0)),
    (5, 255, "dynamic", (111, 74, 0)),
    (6, 255, "ground", (81, 0, 81)),
    (7, 0, "road", (128, 64, 128)),
    (8, 1, "sidewalk", (244, 35, 232)),
    (9, 255, "parking", (250, 170, 160)),
    (10, 255, "rail track", (230, 150, 140)),
    (11, 2, "building", (70, 70, 70)),
    (12, 3, "wall", (102, 102, 156)),
    (13, 4, "fence", (190, 153, 153)),
    (14, 255, "guard rail", (180, 165, 180)),
    (15, 255, "bridge", (150, 100, 100)),
    (16, 255, "tunnel", (150, 120, 90)),
    (17, 5, "pole", (153, 153, 153)),
    (18, 255, "polegroup", (153, 153, 153)),
    (19, 6, "traffic light", (250, 170, 30)),
    (20, 7, "traffic sign", (220, 220, 0)),
    (21, 8, "vegetation", (107, 142, 35)),
    (22, 9, "terrain", (152, 251, 152)),
    (23, 10, "sky", (70, 130, 180)),
    (24, 11, "person", (220, 20, 60)),
    (25, 12, "rider", (255, 0, 0)),
    (26, 13, "car", (0, 0, 142)),
    (27, 14, "truck", (0, 0, 70)),
    (28, 15, "bus", (0, 60, 100)),
    (29, 255, "caravan", (0, 0, 90)),
    (30, 255, "trailer", (0, 0, 110)),
    (31, 16, "train", (0, 80, 100)),
    (32, 17, "motorcycle", (0, 0, 230)),
    (33, 18, "bicycle", (119, 11, 32)),
)
"""The official Cityscapes label table (id, trainId, name, color), from the `labels` list in
cityscapesScripts, `cityscapesscripts/helpers/labels.py` (github.com/mcordts/cityscapesScripts)."""

SPLIT_DIRS = {"train": "train", "val": "val"}
IMAGE_SUFFIX = "_leftImg8bit"
LABEL_SUFFIX = "_gtFine_labelIds"


def train_classes():
    """(names, colours) of the 19 training classes in train-id order."""
    rows = sorted((t, n, c) for _, t, n, c in LABELS if t != IGNORE_LABEL)
    return [n for _, n, _ in rows], [list(c) for _, _, c in rows]


def label_map():
    """Label id → train id (255 for the ids training ignores)."""
    return {i: t for i, t, _, _ in LABELS}


def _top(root):
    for sub in ("", "cityscapes", "Cityscapes"):
        folder = os.path.join(root, sub)
        if os.path.isdir(os.path.join(folder, "leftImg8bit")) and os.path.isdir(os.path.join(folder, "gtFine")):
            return folder
    return None


def _scan(folder, suffix, ext=".png"):
    out = {}
    if not os.path.isdir(folder):
        return out
    for city in sorted(os.listdir(folder)):
        cdir = os.path.join(folder, city)
        if city.startswith(".") or not os.path.isdir(cdir):
            continue
        for name in sorted(os.listdir(cdir)):
            if name.endswith(suffix + ext):
                out[name[:-len(suffix + ext)]] = os.path.join(cdir, name)
    return out


def detect(root, options=None, masks_dir=None):
    """Recognise the Cityscapes fine-annotation layout under `root`."""
    top = _top(root)
    if top is None:
        raise NotThisLayout("not Cityscapes: looked for leftImg8bit/ and gtFine/ side by side (leftImg8bit/train/<city>/"
                            "*_leftImg8bit.png, gtFine/train/<city>/*_gtFine_labelIds.png)")
    splits, notes = {}, []
    for split, sub in SPLIT_DIRS.items():
        images = _scan(os.path.join(top, "leftImg8bit", sub), IMAGE_SUFFIX)
        labels = _scan(os.path.join(top, "gtFine", sub), LABEL_SUFFIX)
        missing = sorted(os.path.relpath(p, top) for s, p in images.items() if s not in labels)
        if missing:
            raise missing_report("labelIds files (gtFine/%s/<city>/<name>_gtFine_labelIds.png) for images like %s"
                                 % (sub, missing[0]), missing)
        splits[split] = [(s, images[s], labels[s]) for s in sorted(images)]
        cities = sorted({os.path.basename(os.path.dirname(p)) for p in images.values()})
        notes.append("%s: %d images from %d cities (%s)" % (split, len(images), len(cities), ", ".join(cities[:6])
                                                              + (", ..." if len(cities) > 6 else "")))
    if not splits["train"]:
        raise NotThisLayout("not Cityscapes: leftImg8bit/train/ holds no <city>/*_leftImg8bit.png files")
    if os.path.isdir(os.path.join(top, "leftImg8bit", "test")):
        notes.append("the test split is left out (its public labels are empty)")
    names, colors = train_classes()
    ignored = [i for i, t, _, _ in LABELS if t == IGNORE_LABEL]
    notes.append("labelIds 0..33 → the 19 train ids of the official table; ids %s → ignore"
                 % ", ".join(map(str, ignored)))
    return Detection(layout="cityscapes", title="Cityscapes (gtFine)", root=top, splits=splits, classes=names,
                     colors=colors, label_map=label_map(), ignore_values=ignored, notes=notes)
