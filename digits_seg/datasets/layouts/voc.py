"""PASCAL VOC segmentation (`VOCdevkit/VOC20xx`) and SBD-style list files (`SegmentationClassAug`, `cls/*.mat`).

VOC: `JPEGImages/*.jpg`, `SegmentationClass/*.png` (palette PNGs, index = class, 255 = the
object borders, "void"), split lists `ImageSets/Segmentation/{train,val}.txt` (one image id
per line). Only the listed ids are labelled (JPEGImages holds ~17k photos, ~2.9k labelled).

SBD-style lists (DeepLab's `train_aug.txt`): lines `/JPEGImages/x.jpg /SegmentationClassAug/x.png`,
paths relative to the VOC folder; the label PNGs are greyscale indices, same classes.
SBD as released (`benchmark_RELEASE/dataset`: `img/`, `cls/*.mat`, `train.txt`, `val.txt`):
each `cls/<id>.mat` holds the struct `GTcls` whose `Segmentation` field is the index image;
read with scipy and converted to index PNGs before building (`convert`).
"""

import os

import numpy as np

from ..palette import voc_palette
from .detection import Detection, NotThisLayout, missing_report, read_list

CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
"""The 20 VOC object classes plus background, in id order (VOC2012 devkit, `VOCcode/VOCinit.m`, `VOCopts.classes`)."""

LIST_NAMES = {"train": ("train_aug.txt", "train.txt", "trainaug.txt"), "val": ("val.txt", "val_aug.txt")}
"""SBD-style list files, by split, in order of preference."""

LIST_DIRS = ("", "list", "lists", "ImageSets/SegmentationAug", "ImageSets/Segmentation")


def _voc_folder(root):
    """The VOC20xx folder under `root` (root itself, root/VOC20xx, root/VOCdevkit/VOC20xx), newest year first."""
    if os.path.isdir(os.path.join(root, "JPEGImages")):
        return root, []
    for base in (os.path.join(root, "VOCdevkit"), root):
        if not os.path.isdir(base):
            continue
        years = sorted((d for d in os.listdir(base) if d.startswith("VOC") and os.path.isdir(os.path.join(base, d, "JPEGImages"))),
                       reverse=True)
        if years:
            return os.path.join(base, years[0]), [os.path.join(base, y) for y in years[1:]]
    return None, []


def _two_column_list(folder, split):
    """The first SBD-style list file of `split` in the usual places whose lines are `image label` pairs."""
    for sub in LIST_DIRS:
        for name in LIST_NAMES[split]:
            path = os.path.join(folder, sub, name)
            if os.path.isfile(path):
                lines = read_list(path)
                if lines and len(lines[0].split()) == 2:
                    return path, lines
    return None, None


def _resolve(folder, list_path, rel):
    """A path from a list file: relative to the VOC folder (leading `/` as DeepLab writes it) or to the list's folder."""
    rel = rel.lstrip("/")
    for base in (folder, os.path.dirname(list_path), os.path.dirname(folder)):
        path = os.path.join(base, rel)
        if os.path.exists(path):
            return path
    return os.path.join(folder, rel)


def _voc_lists(folder, lists):
    seg = os.path.join(folder, "ImageSets", "Segmentation")
    images, labels = os.path.join(folder, "JPEGImages"), os.path.join(folder, "SegmentationClass")
    splits, notes = {}, []
    for split in ("train", "val"):
        path = os.path.join(seg, split + ".txt")
        if lists == "aug" or not os.path.isfile(path) or not os.path.isdir(labels):
            lpath, lines = _two_column_list(folder, split)
            if lpath is None:
                if split == "val" and splits.get("train"):
                    splits["val"] = []
                    notes.append("no val list found: the dataset has no validation split")
                    continue
                raise NotThisLayout("no PASCAL VOC split list: looked for ImageSets/Segmentation/%s.txt with "
                                    "SegmentationClass/, and SBD-style lists (%s) in %s" % (split, ", ".join(LIST_NAMES[split]), folder))
            pairs, missing = [], []
            for line in lines:
                img, lbl = (_resolve(folder, lpath, p) for p in line.split())
                if not (os.path.isfile(img) and os.path.isfile(lbl)):
                    missing.append(line)
                pairs.append((os.path.splitext(os.path.basename(img))[0], img, lbl))
            if missing:
                raise missing_report("files of %d list entries" % len(missing), missing, lpath)
            splits[split] = sorted(pairs)
            notes.append("%s: %d pairs from the list file %s" % (split, len(pairs), os.path.relpath(lpath, folder)))
        else:
            ids = read_list(path)
            pairs, missing = [], []
            for i in ids:
                img, lbl = os.path.join(images, i + ".jpg"), os.path.join(labels, i + ".png")
                if not (os.path.isfile(img) and os.path.isfile(lbl)):
                    missing.append(i)
                pairs.append((i, img, lbl))
            if missing:
                raise missing_report("listed images or labels (JPEGImages/<id>.jpg, SegmentationClass/<id>.png)",
                                     missing, path)
            splits[split] = sorted(pairs)
            notes.append("%s: %d ids from ImageSets/Segmentation/%s.txt" % (split, len(ids), split))
    return splits, notes


def _sbd_release(root):
    """`benchmark_RELEASE/dataset` (or `dataset/`, or root itself) with img/, cls/, train.txt, val.txt."""
    for sub in ("", "dataset", "benchmark_RELEASE/dataset"):
        folder = os.path.join(root, sub)
        if all(os.path.exists(os.path.join(folder, p)) for p in ("img", "cls", "train.txt")):
            return folder
    return None


def detect(root, options=None, masks_dir=None):
    """Recognise VOC (or SBD lists / the SBD release) under `root`; `options["lists"]`: "voc" | "aug"."""
    options = dict(options or {})
    folder, others = _voc_folder(root)
    notes = []
    if folder is None:
        sbd = _sbd_release(root)
        if sbd is None:
            raise NotThisLayout("not PASCAL VOC: looked for VOCdevkit/VOC20xx/ (or a folder) with JPEGImages/ and "
                                "SegmentationClass/ + ImageSets/Segmentation/{train,val}.txt, SBD-style list files, "
                                "or SBD's dataset/ with img/, cls/*.mat and train.txt")
        return _detect_sbd(sbd, masks_dir)
    splits, list_notes = _voc_lists(folder, options.get("lists", "voc"))
    if others:
        notes.append("also found %s; using %s (point at another folder to use it)"
                     % (", ".join(os.path.basename(o) for o in others), os.path.basename(folder)))
    notes += list_notes
    aug = any("list file" in n for n in list_notes)
    if not aug and _two_column_list(folder, "train")[0]:
        notes.append("SBD-style list files are present too: to use them instead, give `--lists aug` (CLI) or "
                     "\"lists\": \"aug\" (API)")
    notes.append("21 classes (background + 20 objects), PASCAL VOC colours; label value 255 (object borders) = ignore")
    return Detection(layout="voc", title="PASCAL VOC" + (" (SBD-style lists)" if aug else ""), root=folder,
                     splits=splits, classes=list(CLASSES), colors=voc_palette(len(CLASSES)), label_map=None,
                     ignore_values=[255], notes=notes, options={"lists": "aug" if aug else "voc"})


def _detect_sbd(folder, masks_dir):
    splits, notes = {}, []
    placeholder = masks_dir or os.path.join(folder, "(converted when the dataset is built)")
    for split in ("train", "val"):
        path = os.path.join(folder, split + ".txt")
        if not os.path.isfile(path):
            splits[split] = []
            notes.append("no %s.txt: the %s split is empty" % (split, split))
            continue
        ids = read_list(path)
        missing = [i for i in ids if not (os.path.isfile(os.path.join(folder, "img", i + ".jpg"))
                                          and os.path.isfile(os.path.join(folder, "cls", i + ".mat")))]
        if missing:
            raise missing_report("listed images or labels (img/<id>.jpg, cls/<id>.mat)", missing, path)
        splits[split] = sorted((i, os.path.join(folder, "img", i + ".jpg"), os.path.join(placeholder, split, i + ".png"))
                               for i in ids)
        notes.append("%s: %d ids from %s.txt" % (split, len(ids), split))
    notes.append("SBD release: cls/<id>.mat (GTcls.Segmentation) is converted to index PNGs when the dataset is built")
    notes.append("21 classes (background + 20 objects), PASCAL VOC colours; 255 = ignore")
    return Detection(layout="voc", title="SBD (Semantic Boundaries Dataset)", root=folder, splits=splits,
                     classes=list(CLASSES), colors=voc_palette(len(CLASSES)), ignore_values=[255], notes=notes,
                     options={"lists": "sbd"}, converted=True)


def read_sbd_mat(path):
    """The class-index image of an SBD `cls/<id>.mat` (MATLAB v5 struct `GTcls`, field `Segmentation`)."""
    from ...errors import ValidationError

    try:
        from scipy.io import loadmat
    except ImportError:
        raise ValidationError("reading SBD's cls/*.mat labels needs scipy (pip install scipy); or use the "
                              "SegmentationClassAug PNGs with SBD-style list files (layout voc, lists aug)")
    try:
        gt = loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"]
        seg = np.asarray(gt.Segmentation)
    except Exception as e:  # scipy raises several types for damaged or foreign files
        raise ValidationError("cannot read the SBD label %s: %s (expected a MATLAB struct GTcls with a "
                              "Segmentation field)" % (path, e))
    if seg.ndim != 2 or seg.min() < 0 or seg.max() > 255:
        raise ValidationError("SBD label %s: Segmentation is %s with values %s..%s, expected a 2-D image of class ids"
                              % (path, "x".join(map(str, seg.shape)), seg.min(), seg.max()))
    return seg.astype(np.uint8)


def convert(detection, masks_dir, on_item):
    """Write each SBD .mat label as an index PNG `masks_dir/<split>/<id>.png`."""
    from PIL import Image

    for split, pairs in detection.splits.items():
        os.makedirs(os.path.join(masks_dir, split), exist_ok=True)
        for stem, _, _ in pairs:
            seg = read_sbd_mat(os.path.join(detection.root, "cls", stem + ".mat"))
            Image.fromarray(seg, "L").save(os.path.join(masks_dir, split, stem + ".png"), compress_level=1)
            on_item()
