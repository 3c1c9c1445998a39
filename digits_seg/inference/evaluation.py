"""Score prediction masks made elsewhere against ground-truth masks: FCN's four metrics, per class and per image.

People compare our models with other tools' results, so both folders may hold index PNGs
(palette or greyscale: pixel value = class id) or colour PNGs (mapped through the colour
map). Masks pair by file stem. Nothing is guessed: an unpaired file, a size mismatch, a
colour outside the colour map or a value beyond the classes is an error naming the file.
The numbers come from `training.metrics` (one implementation for training, test-many and
this), so scores of our own predictions here equal the model page's.
"""

import os

import numpy as np
from PIL import Image

from ..errors import ValidationError
from ..training.metrics import scores_from_confusion
from .scoring import confusion

MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif")
"""Lossless formats a mask may come in (JPEG would blur class ids and colours)."""

IGNORE = 255
"""Ground-truth value that is never scored (also the value ignored classes are mapped to)."""


def load_classes(classes_file=None, colormap_file=None, dataset_dir=None):
    """Return (class names, colour map or None) from a dataset folder or a classes file (+ colour map file)."""
    from ..datasets import palette as pal

    if dataset_dir:
        from ..datasets.info import DatasetInfo

        info = DatasetInfo.load(dataset_dir)
        return list(info.classes), [list(c) for c in info.colormap] if info.colormap else None
    if not classes_file and not colormap_file:
        raise ValidationError("give the classes: a dataset (--dataset ID) or a classes file (--classes FILE, one "
                              "name per line) with, for colour masks, a colour map (--colormap FILE)", field="classes")
    colors, names = pal.parse_colormap_file(colormap_file) if colormap_file else (None, None)
    if classes_file:
        names = pal.parse_classes_file(classes_file)
    if names is None:
        names = pal.default_class_names(len(colors))
    if colors is not None and len(colors) != len(names):
        raise ValidationError("%d class names but %d colours in %s: they must match line for line"
                              % (len(names), len(colors), os.path.basename(colormap_file)), field="colormap")
    return names, colors


INFER_MASK_SUFFIX = "_mask"
"""`digits-seg infer` (and test-many) write `<stem>_mask.png` beside `<stem>_color.png` and `<stem>_overlay.png`."""

INFER_PICTURE_SUFFIXES = ("_color", "_overlay")
"""Pictures our own inference writes next to each mask: never scored as predictions."""


def pair_masks(pred_dir, labels_dir):
    """Return [(stem, prediction path, label path)] sorted by stem; every prediction needs its label.

    A prediction folder written by `digits-seg infer` pairs as it is: `<stem>_mask.png` goes with
    the label `<stem>`, and its `_color`/`_overlay` pictures are left out. Labels without a
    prediction are allowed when at least one pair exists (scoring predictions of the validation
    images against a folder holding every label is the common case); `evaluate_folders` reports
    how many were not scored.
    """
    preds, labels = _listing(pred_dir, "pred"), _listing(labels_dir, "labels")
    renamed = {}
    for stem, path in preds.items():
        base = stem[:-len(INFER_MASK_SUFFIX)] if stem.endswith(INFER_MASK_SUFFIX) else None
        if stem not in labels and base and base in labels and base not in preds:
            renamed[base] = path
        elif not (stem not in labels and any(stem.endswith(s) and stem[:-len(s)] + INFER_MASK_SUFFIX in preds
                                             for s in INFER_PICTURE_SUFFIXES)):
            renamed[stem] = path
    preds = renamed
    lonely_p = sorted(set(preds) - set(labels))
    if lonely_p or not set(preds) & set(labels):
        parts = ["%d prediction(s) without a label: %s" % (len(lonely_p), _names(preds, lonely_p))] if lonely_p else []
        lonely_l = sorted(set(labels) - set(preds))
        if lonely_l:
            parts.append("%d label(s) without a prediction: %s" % (len(lonely_l), _names(labels, lonely_l)))
        raise ValidationError("masks pair by file name (without extension; `<stem>_mask` of digits-seg infer "
                              "also pairs with `<stem>`); " + "; ".join(parts), field="pred")
    return [(stem, preds[stem], labels[stem]) for stem in sorted(preds)]


def _listing(folder, field):
    if not folder or not os.path.isdir(folder):
        raise ValidationError("%s %s" % (folder, "is not a folder" if folder and os.path.exists(folder)
                                          else "does not exist"), field=field)
    out = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in MASK_EXTENSIONS and os.path.isfile(os.path.join(folder, name)):
            if stem in out:
                raise ValidationError("%s has two masks named %s (%s and %s): keep one"
                                      % (folder, stem, os.path.basename(out[stem]), name), field=field)
            out[stem] = os.path.join(folder, name)
    if not out:
        raise ValidationError("%s holds no mask images (%s)" % (folder, ", ".join(MASK_EXTENSIONS)), field=field)
    return out


def _names(paths, stems, limit=5):
    shown = [os.path.basename(paths[s]) for s in stems[:limit]]
    return ", ".join(shown) + (" and %d more" % (len(stems) - limit) if len(stems) > limit else "")


def read_mask(path, num_classes, colormap, role):
    """Return the H×W uint8 class ids of one mask (index or colour PNG), or raise naming the problem."""
    from ..datasets.labels import LabelRules, decode_label

    try:
        with Image.open(path) as img:
            img.load()
            rules = LabelRules(colormap=tuple(tuple(int(v) for v in c) for c in colormap) if colormap else None,
                               num_classes=num_classes)
            res = decode_label(img, rules)
    except ValidationError as exc:
        raise ValidationError("%s %s: %s" % (role, path, exc.message), field=role)
    except OSError as exc:
        raise ValidationError("%s %s is not a readable image (%s)" % (role, path, exc), field=role)
    if res.unknown_colors:
        colors = sorted(res.unknown_colors.items(), key=lambda kv: -kv[1])
        raise ValidationError("%s %s has colours that are not in the colour map: %s; give the colour map the masks "
                              "were drawn with" % (role, path, ", ".join("(%d, %d, %d) × %d px" % (c + (n,))
                                                                          for c, n in colors[:5])), field=role)
    if res.bad_values:
        vals = sorted(res.bad_values.items())
        raise ValidationError("%s %s has values beyond the %d classes (0-%d, 255 = ignore): %s" % (
            role, path, num_classes, num_classes - 1, ", ".join("%d × %d px" % kv for kv in vals[:5])), field=role)
    return res.indices


def evaluate_folders(pred_dir, labels_dir, classes, colormap=None, ignore=(), on_progress=None, should_stop=None):
    """Score every prediction mask against its label; return a JSON-able report.

    Args:
        ignore: ground-truth class ids (or raw values) left out of the scores, besides 255;
            ignored classes are also left out of the means.
    Returns:
        {"count", "classes", "colormap", "ignore", "aggregate": {the four metrics, per_class_iou,
        per_class_acc, per_class: [{id, name, iou, acc, pixels}]}, "confusion": K×K,
        "images": [{"index", "name", "scores", "labelled_pixels"}] worst mean IoU first}.
    """
    n = len(classes)
    ignore = sorted({int(v) for v in ignore or ()})
    pairs = pair_masks(pred_dir, labels_dir)
    unscored = len(_listing(labels_dir, "labels")) - len(pairs)
    total = np.zeros((n, n), dtype=np.int64)
    images = []
    for i, (stem, pred_path, label_path) in enumerate(pairs):
        if should_stop is not None and should_stop():
            from ..errors import JobAborted

            raise JobAborted()
        gt = read_mask(label_path, n if not ignore else max([n] + [v + 1 for v in ignore if v != IGNORE]),
                       colormap, "labels")
        pred = read_mask(pred_path, n, colormap, "pred")
        if pred.shape != gt.shape:
            raise ValidationError("prediction %s is %d×%d but its label %s is %d×%d: predict at the label's size"
                                  % (pred_path, pred.shape[1], pred.shape[0], label_path, gt.shape[1], gt.shape[0]),
                                  field="pred")
        if ignore:
            gt = np.where(np.isin(gt, ignore), IGNORE, gt).astype(np.uint8)
        if (pred == IGNORE).any():
            raise ValidationError("prediction %s has %d pixels of value 255 (ignore): a prediction must give every "
                                  "pixel a class" % (pred_path, int((pred == IGNORE).sum())), field="pred")
        conf = confusion(pred, gt, n, IGNORE)
        total += conf
        images.append({"index": i, "name": os.path.basename(label_path), "prediction": os.path.basename(pred_path),
                       "scores": _summary(scores_from_confusion(conf, exclude=ignore)),
                       "labelled_pixels": int(conf.sum())})
        if on_progress is not None:
            on_progress((i + 1) / float(len(pairs)), "scored %d/%d masks" % (i + 1, len(pairs)))
    agg = scores_from_confusion(total, exclude=ignore)
    agg["per_class"] = [{"id": k, "name": classes[k], "iou": agg["per_class_iou"][k], "acc": agg["per_class_acc"][k],
                         "pixels": int(total[k].sum()), "ignored": k in ignore} for k in range(n)]
    images.sort(key=lambda e: (e["scores"]["mean_iou"] is None, e["scores"]["mean_iou"] or 0.0, e["index"]))
    return {"count": len(pairs), "unscored_labels": unscored, "classes": list(classes), "colormap": colormap, "ignore": ignore,
            "aggregate": agg, "confusion": total.tolist(), "images": images}


def _summary(sc):
    return {k: sc[k] for k in ("pixel_acc", "mean_acc", "mean_iou", "fw_iou")}


def format_report(report, worst=5):
    """The report as text for a terminal: the four metrics, the per-class table, the worst images."""
    a = report["aggregate"]

    def pct(x):
        return "%6.2f%%" % (100 * x) if x is not None else "     –"

    lines = ["%d mask pairs%s" % (report["count"], "; %d label(s) without a prediction not scored"
                                  % report["unscored_labels"] if report.get("unscored_labels") else ""),
             "pixel accuracy %s   mean accuracy %s   mean IoU %s   frequency-weighted IoU %s" % (
                 pct(a["pixel_acc"]), pct(a["mean_acc"]), pct(a["mean_iou"]), pct(a["fw_iou"])),
             "", "%-24s %8s %8s %12s" % ("class", "IoU", "acc", "gt pixels")]
    for c in a["per_class"]:
        lines.append("%-24s %8s %8s %12d%s" % (c["name"][:24], pct(c["iou"]), pct(c["acc"]), c["pixels"],
                                               "  (ignored)" if c["ignored"] else ""))
    lines += ["", "worst images (mean IoU):"]
    for e in report["images"][:worst]:
        lines.append("  %-40s %s" % (e["name"], pct(e["scores"]["mean_iou"])))
    return "\n".join(lines)


EVALUATION_FILE = "evaluation.json"
"""The report of an evaluation job (see `evaluate_folders`), written atomically when it is done."""


def parse_ignore(value):
    """Ground-truth ids to leave out, from '11', '0, 11', a list or None."""
    items = value if isinstance(value, (list, tuple)) else str(value or "").replace(" ", ",").split(",")
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if not text.isdigit() or int(text) > 255:
            raise ValidationError("ignore takes class ids 0-255 separated by commas, got %r" % text, field="ignore")
        out.append(int(text))
    return sorted(set(out))


FORM_LABELS = {"pred_dir": "Prediction folder", "pred": "Prediction folder", "labels_dir": "Label folder", "dataset_id": "Classes of dataset",
               "classes_file": "Classes file", "colormap_file": "Colour map file", "ignore": "Ignore classes"}
"""The "Evaluate predictions" form's words for its fields (messages and the API's error list use them)."""


def validate_params(raw, settings):
    """The "Evaluate predictions" form (or JSON body) → job params; folders must lie under the data roots.

    Every field problem is reported at once, named by its form label.
    """
    from ..datasets.params import resolve_data_path

    raw = dict(raw or {})
    errors = []

    def check(field, fn):
        try:
            return fn()
        except ValidationError as exc:
            message = exc.message
            for name in (field.replace("_", " ").capitalize(), field.replace("_", " ")):
                if message.startswith(name + " "):
                    message = FORM_LABELS[field] + message[len(name):]
                    break
            errors.append({"field": field, "label": FORM_LABELS[field], "message": message})
            return None

    p = {"pred_dir": check("pred_dir", lambda: resolve_data_path(raw.get("pred_dir"), settings, "pred_dir")),
         "labels_dir": check("labels_dir", lambda: resolve_data_path(raw.get("labels_dir"), settings, "labels_dir")),
         "dataset_id": str(raw.get("dataset_id") or "").strip() or None, "classes_file": None, "colormap_file": None,
         "ignore": check("ignore", lambda: parse_ignore(raw.get("ignore")))}
    if not p["dataset_id"]:
        for key in ("classes_file", "colormap_file"):
            if str(raw.get(key) or "").strip():
                p[key] = check(key, lambda key=key: resolve_data_path(raw[key], settings, key, kind="file"))
        if not str(raw.get("classes_file") or "").strip() and not str(raw.get("colormap_file") or "").strip():
            errors.append({"field": "dataset_id", "label": FORM_LABELS["dataset_id"],
                           "message": "choose the dataset whose classes the masks use, or give a classes file"})
    if p["pred_dir"] and p["labels_dir"]:  # unpaired files: say so now, not after queueing
        check("pred", lambda: pair_masks(p["pred_dir"], p["labels_dir"]))
    if errors:
        raise ValidationError.of(errors)
    return p


def evaluate_job(job_dir, params, *, on_progress, should_stop, log, dataset_dir=None, **_extra):
    """The evaluation task: score the folders and write `evaluation.json`; return the four metrics."""
    from ..fsutil import write_json_atomic

    classes, colormap = load_classes(params.get("classes_file"), params.get("colormap_file"), dataset_dir)
    log("Scoring %s against %s (%d classes%s)" % (params["pred_dir"], params["labels_dir"], len(classes),
                                                  ", ignoring %s" % params["ignore"] if params["ignore"] else ""))
    report = evaluate_folders(params["pred_dir"], params["labels_dir"], classes, colormap, params.get("ignore"),
                              on_progress=on_progress, should_stop=should_stop)
    write_json_atomic(os.path.join(job_dir, EVALUATION_FILE), report)
    a = report["aggregate"]
    if report["unscored_labels"]:
        log("%d label(s) in %s have no prediction: not scored" % (report["unscored_labels"], params["labels_dir"]))
    log("%d mask pairs: pixel acc %.4f, mean acc %.4f, mIoU %.4f, fw IoU %.4f" % (
        report["count"], a["pixel_acc"] or 0, a["mean_acc"] or 0, a["mean_iou"] or 0, a["fw_iou"] or 0))
    return {"count": report["count"], **{k: a[k] for k in ("pixel_acc", "mean_acc", "mean_iou", "fw_iou")}}
