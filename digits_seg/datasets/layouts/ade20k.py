"""ADE20K SceneParsing (MIT Scene Parsing benchmark, `ADEChallengeData2016`).

`images/{training,validation}/ADE_{train,val}_*.jpg` with `annotations/{training,validation}/*.png`
(greyscale, same names). Value 0 is "other objects" (unlabelled) and values 1..150 are the
150 classes, so training stores 0 as ignore and shifts every class down by one — what
mmsegmentation calls `reduce_zero_label`; forgetting it trains a 151st "other" class and
shifts every class name by one. Names come from `objectInfo150.txt`/`.csv` when present.
"""

import csv
import os

from ..palette import voc_palette
from .detection import Detection, NotThisLayout, files_by_stem

NUM_CLASSES = 150
SPLIT_DIRS = {"train": "training", "val": "validation"}
INFO_FILES = ("objectInfo150.txt", "objectInfo150.csv")
"""The class table shipped with the challenge data (columns Idx, Ratio, Train, Val, Name; tab or comma separated)."""


def _top(root):
    for sub in ("", "ADEChallengeData2016"):
        folder = os.path.join(root, sub)
        if os.path.isdir(os.path.join(folder, "images", "training")) and os.path.isdir(os.path.join(folder, "annotations", "training")):
            return folder
    return None


def read_object_info(path):
    """Class names by index 1..150 from objectInfo150 (first synonym of `Name`, e.g. `building;edifice` → building)."""
    with open(path, "r", encoding="utf-8-sig") as f:
        text = f.read()
    delim = "\t" if "\t" in text.splitlines()[0] else ","
    names = {}
    for row in csv.DictReader(text.splitlines(), delimiter=delim):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        try:
            idx = int(row["idx"])
        except (KeyError, ValueError):
            continue
        names[idx] = row.get("name", "").split(";")[0].strip() or "class_%d" % idx
    return names


def detect(root, options=None, masks_dir=None):
    """Recognise ADE20K SceneParsing under `root`."""
    top = _top(root)
    if top is None:
        raise NotThisLayout("not ADE20K SceneParsing: looked for images/training/ and annotations/training/ "
                            "(ADEChallengeData2016)")
    splits, notes = {}, []
    for split, sub in SPLIT_DIRS.items():
        idir, adir = os.path.join(top, "images", sub), os.path.join(top, "annotations", sub)
        if not os.path.isdir(adir):
            splits[split] = []
            continue
        images, labels = files_by_stem(idir), files_by_stem(adir)
        splits[split] = [(s, images[s], labels[s]) for s in sorted(images) if s in labels]
        unpaired = len(images) + len(labels) - 2 * len(splits[split])
        notes.append("%s: %d pairs (images/%s + annotations/%s)%s" % (split, len(splits[split]), sub, sub,
                                                                     "; %d unpaired files left out" % unpaired if unpaired else ""))
    if not splits["train"]:
        raise NotThisLayout("not ADE20K SceneParsing: images/training/ and annotations/training/ share no file names")
    names = {}
    for fname in INFO_FILES:
        if os.path.isfile(os.path.join(top, fname)):
            names = read_object_info(os.path.join(top, fname))
            notes.append("class names from %s" % fname)
            break
    else:
        notes.append("no objectInfo150.txt: classes are numbered (class_1 .. class_150, by their value in the PNGs)")
    classes = [names.get(v, "class_%d" % v) for v in range(1, NUM_CLASSES + 1)]
    notes.append("value 0 (other / unlabelled) → ignore; values 1..150 → classes 0..149 (shifted down by one, "
                 "mmsegmentation's reduce_zero_label)")
    notes.append("colours: the PASCAL VOC colour scheme by raw value, 1..150 (the challenge data defines none)")
    label_map = {0: 255}
    label_map.update({v: v - 1 for v in range(1, NUM_CLASSES + 1)})
    return Detection(layout="ade20k", title="ADE20K SceneParsing", root=top, splits=splits, classes=classes,
                     colors=voc_palette(NUM_CLASSES + 1)[1:], label_map=label_map, ignore_values=[0], notes=notes)
