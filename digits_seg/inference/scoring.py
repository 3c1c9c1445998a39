"""Per-image and aggregate scores of predictions against ground truth (numpy, no torch).

Rows of the confusion matrix are the true class, columns the predicted class; pixels
labelled 255 (ignore) or with a true id beyond the model's classes are left out. The scores are FCN's
standard definitions (training/metrics.py): a class predicted but absent from the ground
truth has IoU 0; one absent from both has none.
The scores come from the trainer's metric code, so "test many" on the validation split
reproduces the numbers on the model page.
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
    """Return pixel_acc, mean_acc, mean_iou, fw_iou, per_class_iou/acc (None where undefined), labelled_pixels.

    The formulas are the trainer's (one implementation), so "test many" on the validation
    split reproduces the model page's numbers.
    """
    from ..training.metrics import scores_from_confusion

    out = scores_from_confusion(conf)
    out["labelled_pixels"] = int(np.asarray(conf).sum())
    return out


def image_scores(pred, gt, num_classes, ignore_label=IGNORE_LABEL):
    """Return (scores dict, confusion matrix) for one image."""
    conf = confusion(pred, gt, num_classes, ignore_label)
    return scores(conf), conf


def sort_key_worst_first(item, metric="mean_iou"):
    """Sort key putting the worst-scored images first and images without ground truth last."""
    value = (item.get("scores") or {}).get(metric)
    return (value is None, value if value is not None else 0.0, item.get("index", 0))
