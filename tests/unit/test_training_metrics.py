import numpy as np
import torch

from digits_seg.training.metrics import confusion_matrix, most_frequent_class_baseline, scores_from_confusion


def direct_scores(pred, gt, c, ignore=255):
    """Independent computation: per-class boolean masks, no confusion matrix.

    A class predicted but absent from the ground truth has IoU 0; absent from both: None.
    """
    keep = gt != ignore
    pred, gt = pred[keep], gt[keep]
    ious, accs, freqs = [], [], []
    for k in range(c):
        g, p = gt == k, pred == k
        ious.append((g & p).sum() / float((g | p).sum()) if (g | p).any() else None)
        accs.append((g & p).sum() / float(g.sum()) if g.any() else None)
        freqs.append(g.sum() / float(gt.size))
    present = [i for i in ious if i is not None]
    fw = sum(f * i for f, i in zip(freqs, ious) if i is not None)
    return {"pixel_acc": (pred == gt).mean(), "mean_iou": np.mean(present),
            "mean_acc": np.mean([a for a in accs if a is not None]), "fw_iou": fw, "per_class_iou": ious}


def fcn_scores(hist):
    """The FCN reference definitions (score.py of Long et al.), written out in numpy."""
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.diag(hist).sum() / hist.sum()
        acc_cls = np.nanmean(np.diag(hist) / hist.sum(1))
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        freq = hist.sum(1) / hist.sum()
    return acc, acc_cls, np.nanmean(iu), (freq[freq > 0] * iu[freq > 0]).sum(), iu


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
    # class 4 is predicted but never true: IoU 0 (it counts in the mean), accuracy undefined
    assert got["per_class_iou"][4] == 0.0 and got["per_class_acc"][4] is None
    for g, w in zip(got["per_class_iou"], want["per_class_iou"]):
        assert abs(g - w) < 1e-12


def test_hand_computed_confusion_with_a_predicted_but_absent_class():
    # rows = truth, columns = prediction. Class 2 is never true but predicted 2 times;
    # class 3 is neither true nor predicted.
    conf = np.array([[6, 2, 1, 0],
                     [1, 3, 1, 0],
                     [0, 0, 0, 0],
                     [0, 0, 0, 0]])
    s = scores_from_confusion(conf)
    # by hand: 14 labelled pixels, 9 right. IoU0 = 6/(9+7-6) = 6/10, IoU1 = 3/(5+5-3) = 3/7,
    # IoU2 = 0/(0+2-0) = 0, IoU3 undefined. Acc0 = 6/9, acc1 = 3/5.
    assert s["pixel_acc"] == 9 / 14
    assert abs(s["mean_iou"] - (6 / 10 + 3 / 7 + 0) / 3) < 1e-12
    assert abs(s["mean_acc"] - (6 / 9 + 3 / 5) / 2) < 1e-12
    assert abs(s["fw_iou"] - (9 / 14 * 6 / 10 + 5 / 14 * 3 / 7)) < 1e-12
    assert s["per_class_iou"][2] == 0.0 and s["per_class_iou"][3] is None
    assert s["per_class_acc"][2] is None and s["per_class_acc"][3] is None


def test_toy_case_from_the_issue_scores_half_not_three_quarters():
    # IoU0 = 1/2, IoU1 = 2/2, class 2 predicted once but never true: IoU 0 -> mIoU 0.5
    # (leaving class 2 out of the mean gave 0.75)
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 2, 1, 1]])
    s = scores_from_confusion(confusion_matrix(torch.from_numpy(pred), torch.from_numpy(gt), 3).numpy())
    assert abs(s["mean_iou"] - 0.5) < 1e-12


def test_matches_fcn_reference_definitions():
    rng = np.random.default_rng(3)
    for trial in range(20):
        c = int(rng.integers(2, 7))
        hist = rng.integers(0, 50, size=(c, c)) * (rng.random((c, c)) < 0.6)
        hist[int(rng.integers(0, c))] = 0  # a class never in the ground truth (maybe predicted)
        if hist.sum() == 0:
            continue
        acc, acc_cls, mean_iu, fwavacc, iu = fcn_scores(hist.astype(np.float64))
        s = scores_from_confusion(hist)
        assert abs(s["pixel_acc"] - acc) < 1e-12 and abs(s["mean_acc"] - acc_cls) < 1e-12
        assert abs(s["mean_iou"] - mean_iu) < 1e-12 and abs(s["fw_iou"] - fwavacc) < 1e-12
        assert [None if np.isnan(v) else round(v, 12) for v in iu] == \
            [None if v is None else round(v, 12) for v in s["per_class_iou"]]


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
