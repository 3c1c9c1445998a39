"""COCO-style instance annotations (`annotations/instances_<split>.json`) rasterised into semantic masks.

Classes: 0 = background, then the picked categories (all by default) in category-id order.
Overlaps: instances are painted largest first, so a smaller instance lying on a larger one
(a cup on a table) stays visible — "smaller on top". Crowd regions (`iscrowd: 1`, RLE) of a
picked category become ignore (255) where no single instance covers them: they mix objects
and background, so neither label is right. Crowds of other categories are background.
Images listed in the JSON without a picked instance become all-background masks.
This is how COCO-derived segmentation sets are built (e.g. person vs background) and what
annotation tools export; polygons and RLE (compressed or not) are decoded by pycocotools.
"""

import collections
import functools
import json
import os
import re
import warnings

import numpy as np

from ...errors import ValidationError
from ..palette import IGNORE_LABEL, MAX_CLASSES, voc_palette
from ..pool import DEFAULT_WORKERS, ordered_map
from .detection import Detection, NotThisLayout, missing_report

ANNOTATION_RE = re.compile(r"^instances_(.+)\.json$")
SPLIT_WORDS = (("train", "train"), ("val", "val"))
"""A JSON `instances_<name>.json` feeds the split whose word occurs in <name> (train2017 → train)."""


def _split_of(name):
    for word, split in SPLIT_WORDS:
        if word in name.lower():
            return split
    return None


def find_annotations(root):
    """{split: (json path, name)} for `annotations/instances_*.json` (or in root itself)."""
    found = {}
    for folder in (os.path.join(root, "annotations"), root):
        if not os.path.isdir(folder):
            continue
        for fname in sorted(os.listdir(folder)):
            m = ANNOTATION_RE.match(fname)
            split = _split_of(m.group(1)) if m else None
            if split and split not in found:
                found[split] = (os.path.join(folder, fname), m.group(1))
        if found:
            break
    return found


def _image_dir(root, name):
    for cand in (os.path.join(root, name), os.path.join(root, "images", name), os.path.join(root, "images")):
        if os.path.isdir(cand):
            return cand
    return None


def load(path):
    """Read an instances JSON; a clear error for a file that is not one."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ValidationError("cannot read the COCO annotation file %s: %s" % (path, e), field="layout_root")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValidationError("COCO annotation file %s has no `%s` list (is it an instances_*.json?)" % (path, key),
                                  field="layout_root")
    return data


def index(path):
    """What detection needs from an instances JSON — images, categories, instance counts — without the polygons.

    COCO's train2017 file is ~450 MB and takes tens of seconds to parse; the form's Detect, the
    submit and the plan each detect, so the small index is kept per file version (path, size, mtime).
    """
    st = os.stat(path)
    return _index(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _index(path, size, mtime_ns):
    data = load(path)
    counts = collections.Counter((a.get("category_id"), bool(a.get("iscrowd"))) for a in data["annotations"])
    images = tuple((im["id"], im["file_name"]) for im in data["images"])
    return {"images": images, "categories": tuple(data["categories"]), "counts": dict(counts)}


def pick_categories(categories, wanted):
    """The picked categories (dicts, in id order) for names or ids in `wanted` (empty: all)."""
    cats = sorted(categories, key=lambda c: c["id"])
    if not wanted:
        return cats
    by_name = {str(c["name"]).lower(): c for c in cats}
    by_id = {str(c["id"]): c for c in cats}
    out, unknown = [], []
    for w in wanted:
        c = by_name.get(str(w).strip().lower()) or by_id.get(str(w).strip())
        (out.append(c) if c else unknown.append(str(w)))
    if unknown:
        raise ValidationError("unknown COCO categor%s %s; available: %s" % ("y" if len(unknown) == 1 else "ies",
                              ", ".join(unknown), ", ".join(c["name"] for c in cats)), field="categories")
    return sorted({c["id"]: c for c in out}.values(), key=lambda c: c["id"])


def parse_categories(value):
    """Categories as given in a form or CLI: a list, or a comma-separated string; [] for all."""
    if not value:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip() and str(v).strip().lower() != "all"]


def _count(n, noun):
    return "%d %s%s" % (n, noun, "" if n == 1 else "s")


def detect(root, options=None, masks_dir=None):
    """Recognise COCO-style annotations under `root`; `options["categories"]`: names or ids ([] = all)."""
    options = dict(options or {})
    found = find_annotations(root)
    if "train" not in found:
        raise NotThisLayout("not COCO-style: looked for annotations/instances_<split>.json (e.g. instances_train2017.json) "
                            "with the images in <split>/ (train2017/)")
    wanted = parse_categories(options.get("categories"))
    placeholder = masks_dir or os.path.join(root, "(rasterised when the dataset is built)")
    splits, notes, picked = {"train": [], "val": []}, [], None
    for split, (path, name) in sorted(found.items()):
        data = index(path)
        cats = pick_categories(data["categories"], wanted)
        if picked is None:
            picked = cats
        elif [c["id"] for c in cats] != [c["id"] for c in picked]:
            raise ValidationError("the train and val annotation files have different categories", field="categories")
        images_dir = _image_dir(root, name)
        if images_dir is None:
            raise NotThisLayout("COCO annotations %s found but no image folder %s/ (or images/%s/) next to annotations/"
                                % (os.path.basename(path), name, name))
        pairs, missing = [], []
        present = set(os.listdir(images_dir))
        for _, fname in data["images"]:
            img = os.path.join(images_dir, fname)
            if fname not in present and not os.path.isfile(img):  # file names may hold a sub-folder
                missing.append(fname)
            stem = os.path.splitext(os.path.basename(fname))[0]
            pairs.append((stem, img, os.path.join(placeholder, split, stem + ".png")))
        if missing:
            raise missing_report("images named in %s" % os.path.basename(path), missing)
        ids = {c["id"] for c in cats}
        singles = sum(n for (cat, crowd), n in data["counts"].items() if cat in ids and not crowd)
        crowd = sum(n for (cat, crowd), n in data["counts"].items() if cat in ids and crowd)
        splits[split] = sorted(pairs)
        notes.append("%s: %s from %s/, %s of the picked categories (%s) in %s"
                     % (split, _count(len(pairs), "image"), os.path.relpath(images_dir, root),
                        _count(singles, "instance"), _count(crowd, "crowd region"), os.path.relpath(path, root)))
    if len(picked) + 1 > MAX_CLASSES:
        raise ValidationError("%d categories are too many (at most %d besides background)" % (len(picked), MAX_CLASSES - 1),
                              field="categories")
    notes.append("classes: background + %d categor%s (%s)" % (len(picked), "y" if len(picked) == 1 else "ies",
                                                              "all" if not wanted else ", ".join(c["name"] for c in picked)))
    notes.append("masks are rasterised when the dataset is built: larger instances first, smaller on top; crowd "
                 "regions → ignore where no instance covers them")
    classes = ["background"] + [c["name"] for c in picked]
    return Detection(layout="coco", title="COCO-style instance annotations", root=os.path.realpath(root), splits=splits,
                     classes=classes, colors=voc_palette(len(classes)), ignore_values=[], notes=notes,
                     options={"categories": [c["name"] for c in picked] if wanted else []}, converted=True)


def _rle(segm, h, w):
    from pycocotools import mask as cmask

    if isinstance(segm, list):  # polygons: [[x1, y1, x2, y2, ...], ...]
        polys = [p for p in segm if len(p) >= 6]
        if not polys:
            return None
        return cmask.merge(cmask.frPyObjects(polys, h, w))
    if isinstance(segm, dict) and "counts" in segm:
        if isinstance(segm["counts"], list):  # uncompressed RLE (what iscrowd annotations use)
            return cmask.frPyObjects(segm, h, w)
        counts = segm["counts"]
        return {"size": segm["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise ValidationError("annotation segmentation must be polygons or RLE, got %r" % type(segm).__name__)


def rasterise(image, anns, class_of):
    """The semantic mask (H×W uint8) of one image's annotations; `class_of`: category id → class (or missing)."""

    with warnings.catch_warnings():  # pycocotools' decode warns about numpy 2's copy keyword on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        return _paint(image, anns, class_of)


def _paint(image, anns, class_of):
    from pycocotools import mask as cmask

    h, w = int(image["height"]), int(image["width"])
    out = np.zeros((h, w), dtype=np.uint8)
    mine = [a for a in anns if a.get("category_id") in class_of]
    for a in (a for a in mine if a.get("iscrowd")):
        rle = _rle(a["segmentation"], h, w)
        if rle is not None:
            out[cmask.decode(rle).astype(bool)] = IGNORE_LABEL
    singles = [a for a in mine if not a.get("iscrowd")]
    singles.sort(key=lambda a: -float(a.get("area") or 0))  # larger first: smaller instances end up on top
    for a in singles:
        rle = _rle(a["segmentation"], h, w)
        if rle is not None:
            out[cmask.decode(rle).astype(bool)] = class_of[a["category_id"]]
    return out


def _write_mask(task, class_of, accumulator=None):
    """One image's mask, rasterised and saved (a pool task: (json name, image dict, annotations, out path)).

    Returns None, or the message of a bad annotation (the parent raises it: a worker's exception
    would reach the user as a traceback)."""
    from PIL import Image

    name, image, anns, out = task
    try:
        mask = rasterise(image, anns, dict(class_of))
    except (ValidationError, KeyError, TypeError, ValueError) as e:
        return "%s, image %s: %s" % (name, image.get("file_name"), getattr(e, "message", None) or
                                     "bad annotation (%s: %s); segmentation must be polygons or RLE" % (type(e).__name__, e))
    Image.fromarray(mask, "L").save(out, compress_level=1)
    return None


def convert(detection, masks_dir, on_item, workers=DEFAULT_WORKERS):
    """Rasterise every image of the detection's splits into `masks_dir/<split>/<stem>.png` (in worker processes)."""
    found = find_annotations(detection.root)
    names = detection.classes[1:]
    for split, (path, _) in sorted(found.items()):
        data = load(path)
        class_of = tuple((c["id"], names.index(c["name"]) + 1) for c in data["categories"] if c["name"] in names)
        by_image = {}
        for a in data["annotations"]:
            by_image.setdefault(a["image_id"], []).append(a)
        os.makedirs(os.path.join(masks_dir, split), exist_ok=True)
        tasks = [(os.path.basename(path), im, by_image.get(im["id"], []),
                  os.path.join(masks_dir, split, os.path.splitext(os.path.basename(im["file_name"]))[0] + ".png"))
                 for im in data["images"]]
        del data, by_image
        with ordered_map(_write_mask, tasks, workers, shared=class_of) as results:
            for problem in results:
                if problem:
                    raise ValidationError("cannot rasterise the COCO annotations: %s" % problem, field="layout_root")
                on_item()
