import numpy as np
import torch

from digits_seg.training.metrics import confusion_matrix, most_frequent_class_baseline, scores_from_confusion


def direct_scores(pred, gt, c, ignore=255):
    """Independent computation: per-class boolean masks, no confusion matrix."""
    keep = gt != ignore
    pred, gt = pred[keep], gt[keep]
    ious, accs, freqs = [], [], []
    for k in range(c):
        g, p = gt == k, pred == k
        if g.sum() == 0:
            ious.append(None)
            accs.append(None)
            freqs.append(0.0)
            continue
        ious.append((g & p).sum() / float((g | p).sum()))
        accs.append((g & p).sum() / float(g.sum()))
        freqs.append(g.sum() / float(gt.size))
    present = [i for i in ious if i is not None]
    fw = sum(f * i for f, i in zip(freqs, ious) if i is not None)
    return {"pixel_acc": (pred == gt).mean(), "mean_iou": np.mean(present),
            "mean_acc": np.mean([a for a in accs if a is not None]), "fw_iou": fw, "per_class_iou": ious}


def test_matches_direct_formula_with_ignore_and_absent_class():
    rng = np.random.default_rng(0)
    c = 5
    gt = rng.integers(0, 4, size=(3, 17, 19)).astype(np.uint8)  # class 4 never in the ground truth
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, c, size=gt.shape)
    pred = np.where(rng.random(gt.shape) < 0.6, np.where(gt == 255, 0, gt), pred)
    conf = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(gt), c)
    assert conf.dtype == torch.int64 and int(conf.sum()) == int((gt != 255).sum())
    got = scores_from_confusion(conf.numpy())
    want = direct_scores(pred, gt, c)
    for key in ("pixel_acc", "mean_iou", "mean_acc", "fw_iou"):
        assert abs(got[key] - want[key]) < 1e-12, key
    assert got["per_class_iou"][4] is None and got["per_class_acc"][4] is None
    for g, w in zip(got["per_class_iou"][:4], want["per_class_iou"][:4]):
        assert abs(g - w) < 1e-12


def test_perfect_and_baseline():
    gt = np.array([[0, 0, 0, 1], [0, 0, 2, 255]])
    conf = confusion_matrix(torch.from_numpy(gt), torch.from_numpy(gt), 3).numpy()
    s = scores_from_confusion(conf)
    assert s["pixel_acc"] == 1.0 and s["mean_iou"] == 1.0 and s["fw_iou"] == 1.0
    b = most_frequent_class_baseline(conf)
    assert b["pixel_acc"] == 5 / 7.0
    assert abs(b["mean_iou"] - (5 / 7.0) / 3) < 1e-12


def test_empty_confusion_has_no_scores():
    s = scores_from_confusion(np.zeros((3, 3), dtype=np.int64))
    assert s["pixel_acc"] is None and s["mean_iou"] is None and s["per_class_iou"] == [None, None, None]
