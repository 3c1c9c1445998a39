"""Per-image and aggregate scores of predictions against ground truth (numpy, no torch).

Rows of the confusion matrix are the true class, columns the predicted class; pixels
labelled 255 (ignore) or with a true id beyond the model's classes are left out. A class
absent from the ground truth has no IoU (None, not 0: the net was never asked about it).
The formulas match the trainer's validation metrics so "test many" on the validation
split reproduces the numbers on the model page.
"""

import numpy as np

from .visualize import IGNORE_LABEL


def confusion(pred, gt, num_classes, ignore_label=IGNORE_LABEL):
    """Return the K×K int64 confusion matrix of two H×W class-id masks."""
    gt = np.asarray(gt).reshape(-1).astype(np.int64)
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    valid = (gt >= 0) & (gt < num_classes) & (gt != ignore_label)
    idx = gt[valid] * num_classes + np.clip(pred[valid], 0, num_classes - 1)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(conf):
    """Return pixel_acc, mean_acc, mean_iou, fw_iou, per_class_iou/acc (None where undefined)."""
    conf = np.asarray(conf, dtype=np.float64)
    total = conf.sum()
    tp = np.diag(conf)
    gt = conf.sum(axis=1)
    union = gt + conf.sum(axis=0) - tp
    present = gt > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(present, tp / np.where(union > 0, union, 1), np.nan)
        acc = np.where(present, tp / np.where(gt > 0, gt, 1), np.nan)

    def opt(x):
        return None if np.isnan(x) else float(x)

    any_present = bool(present.any())
    return {
        "pixel_acc": float(tp.sum() / total) if total > 0 else None,
        "mean_acc": opt(np.nanmean(acc)) if any_present else None,
        "mean_iou": opt(np.nanmean(iou)) if any_present else None,
        "fw_iou": float(np.nansum((gt / total) * np.nan_to_num(iou))) if any_present else None,
        "per_class_iou": [opt(v) for v in iou],
        "per_class_acc": [opt(v) for v in acc],
        "labelled_pixels": int(total),
    }


def image_scores(pred, gt, num_classes, ignore_label=IGNORE_LABEL):
    """Return (scores dict, confusion matrix) for one image."""
    conf = confusion(pred, gt, num_classes, ignore_label)
    return scores(conf), conf


def sort_key_worst_first(item, metric="mean_iou"):
    """Sort key putting the worst-scored images first and images without ground truth last."""
    value = (item.get("scores") or {}).get(metric)
    return (value is None, value if value is not None else 0.0, item.get("index", 0))
