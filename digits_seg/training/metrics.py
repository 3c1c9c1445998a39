"""Segmentation metrics from a confusion matrix accumulated on the device.

Rows of the confusion matrix are the true class, columns the predicted class. The scores are
FCN's (Long et al., `score.py`): pixel accuracy, mean (per-class) accuracy, mean IU and
frequency-weighted IU, as MMSegmentation and the benchmarks compute them, so numbers can be
compared with published ones. A class predicted but absent from the ground truth has IoU 0
(every pixel given to it is a false positive); only a class absent from both the ground truth
and the prediction has no IoU (None) and is left out of the mean. Accuracy is recall, so it
is undefined (None) for a class absent from the ground truth.
"""

import numpy as np


def confusion_matrix(pred, target, num_classes, ignore_label=255):
    """Return the C×C int64 confusion matrix of `pred` vs `target` (same shape), on their device.

    Pixels labelled `ignore_label` (or any value >= num_classes) are left out.
    """
    import torch

    target = target.reshape(-1).long()
    pred = pred.reshape(-1).long()
    valid = (target >= 0) & (target < num_classes)
    if ignore_label is not None:
        valid &= target != ignore_label
    idx = target[valid] * num_classes + pred[valid].clamp_(0, num_classes - 1)
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores_from_confusion(conf, exclude=()):
    """Pixel acc, mean acc, mean IoU, frequency-weighted IoU and per-class IoU/acc from a confusion matrix.

    Args:
        exclude: class ids left out of the per-class values and the means (void classes a
            scorer was told to ignore; their ground-truth pixels must already be left out).
    """
    conf = np.asarray(conf, dtype=np.float64)
    total = conf.sum()
    tp = np.diag(conf)
    gt = conf.sum(axis=1)
    predicted = conf.sum(axis=0)
    present = gt > 0
    union = gt + predicted - tp
    seen = union > 0  # in the ground truth or the prediction
    iou = np.full(conf.shape[0], np.nan)
    acc = np.full(conf.shape[0], np.nan)
    iou[seen] = tp[seen] / union[seen]
    acc[present] = tp[present] / gt[present]
    dropped = [k for k in exclude if 0 <= k < conf.shape[0]]
    iou[dropped] = np.nan
    acc[dropped] = np.nan
    present[dropped] = False
    freq = gt / total if total > 0 else np.zeros_like(gt)

    def opt(x):
        return None if np.isnan(x) else float(x)

    return {
        "pixel_acc": float(tp.sum() / total) if total > 0 else None,
        "mean_acc": opt(np.nanmean(acc)) if present.any() else None,
        "mean_iou": opt(np.nanmean(iou)) if present.any() else None,
        "fw_iou": float((freq[present] * iou[present]).sum()) if present.any() else None,
        "per_class_iou": [opt(v) for v in iou],
        "per_class_acc": [opt(v) for v in acc],
    }


def most_frequent_class_baseline(conf):
    """Scores of always predicting the most frequent ground-truth class (for learning checks)."""
    conf = np.asarray(conf, dtype=np.int64)
    gt = conf.sum(axis=1)
    base = np.zeros_like(conf)
    base[:, int(np.argmax(gt))] = gt
    return scores_from_confusion(base)
