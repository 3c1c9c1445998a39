"""Does the training path learn on real photos? Train a standard network on the CamVid samples; print JSON.

Trains on `../shared/data/camvid`'s 24 train pairs, validates on its 8 val pairs (void,
class 11, ignored), at a reduced size on the CPU, with the network's default recipe (the
form's and CLI's defaults) except the epoch count, which the time budget sets. Prints the
final validation scores (the four FCN metrics) next to the majority-class baseline measured
on the same validation pixels in the same run, and their ratio.

    python bench/learning_camvid.py [--network unet] [--size 128x96] [--epochs 12] [--data DIR]

A regression anywhere in dataset creation, augmentation, the solver defaults, the loss or
the metrics shows up here as a ratio near 1 (the network learned nothing beyond the
majority class) instead of only on synthetic scenes.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

VOID = 11
"""CamVid's `Unlabelled` class id, stored as 255 (ignore) here."""


def _ignore_void(src, dst):
    """Copy CamVid's index labels with void (11) set to 255, the value training and scoring skip."""
    import numpy as np
    from PIL import Image

    os.makedirs(dst)
    for name in sorted(os.listdir(src)):
        a = np.array(Image.open(os.path.join(src, name)))
        a[a == VOID] = 255
        Image.fromarray(a.astype(np.uint8), "L").save(os.path.join(dst, name))


def build_dataset(data, work, size):
    """A dataset job folder from CamVid train/val, resized to `size` (w, h); returns its path."""
    from digits_seg.config import load_settings
    from digits_seg.datasets.create import create_dataset
    from digits_seg.datasets.params import validate_params

    for split in ("train", "val"):
        _ignore_void(os.path.join(data, "labels", split), os.path.join(work, "labels", split))
    with open(os.path.join(data, "classes.txt"), encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()][:VOID]
    with open(os.path.join(work, "classes.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(names) + "\n")
    settings = load_settings({"jobs_dir": work, "data_roots": "%s%s%s" % (work, os.pathsep, data)}, environ={})
    params = validate_params({
        "images": os.path.join(data, "images", "train"), "labels": os.path.join(work, "labels", "train"),
        "val_images": os.path.join(data, "images", "val"), "val_labels": os.path.join(work, "labels", "val"),
        "classes_file": os.path.join(work, "classes.txt"), "resize": "%dx%d" % size}, settings)
    out = os.path.join(work, "dataset")
    os.makedirs(out)
    create_dataset(out, params, settings=settings, log=lambda t: None)
    return out, settings


def train_default(dataset_dir, settings, network, epochs, seed, overrides=None):
    """Train `network` with its default recipe (plus `overrides`, to try another) for `epochs`."""
    from digits_seg.datasets.info import DatasetInfo
    from digits_seg.training.metrics_log import read_metrics
    from digits_seg.training.params import validate_params
    from digits_seg.training.trainer import train

    raw = {"network": network, "dataset_id": "dataset", "epochs": epochs, "seed": seed, "device": "cpu"}
    raw.update(overrides or {})
    params = validate_params(raw, settings, DatasetInfo.load(dataset_dir))
    model_dir = os.path.join(os.path.dirname(dataset_dir), "model")
    os.makedirs(model_dir)
    lines = []
    t0 = time.time()
    train(model_dir, params, dataset_dir=dataset_dir, on_progress=lambda *a: None, should_stop=lambda: False,
          log=lines.append)
    seconds = time.time() - t0
    vals = read_metrics(model_dir, kind="val")
    recipe = {k: params[k] for k in ("solver_type", "base_lr", "lr_policy", "batch_size", "crop_size", "hflip",
                                     "random_scale", "class_weighting", "mean_subtraction")}
    return vals[-1], seconds, recipe, [v["mean_iou"] for v in vals]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", default="unet")
    ap.add_argument("--size", default="128x96", help="training size WxH (CamVid is 480x360)")
    ap.add_argument("--epochs", type=int, default=12, help="the time budget (the network's recipe says 60 for unet)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data",
                                                   "camvid"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="try a recipe change, e.g. --set batch_size=2 (default: the network's recipe)")
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from digits_seg.training.metrics import most_frequent_class_baseline

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    size = tuple(int(v) for v in args.size.lower().split("x"))
    work = tempfile.mkdtemp(prefix="learning-camvid-", dir=args.workdir)
    try:
        dataset_dir, settings = build_dataset(args.data, work, size)
        overrides = dict(item.split("=", 1) for item in args.set)
        last, seconds, recipe, curve = train_default(dataset_dir, settings, args.network, args.epochs, args.seed,
                                                     overrides)
        conf = np.asarray(last["confusion"])
        base = most_frequent_class_baseline(conf)
        keys = ("pixel_acc", "mean_acc", "mean_iou", "fw_iou")
        result = {
            "bench": "learning_camvid", "network": args.network, "size": list(size), "epochs": args.epochs,
            "train_pairs": 24, "val_pairs": 8, "recipe": recipe, "train_seconds": round(seconds, 1),
            "val": {k: round(last[k], 4) for k in keys},
            "baseline_majority_class": {k: round(base[k], 4) for k in keys},
            "ratio_mean_iou": round(last["mean_iou"] / base["mean_iou"], 3) if base["mean_iou"] else None,
            "ratio_pixel_acc": round(last["pixel_acc"] / base["pixel_acc"], 3) if base["pixel_acc"] else None,
            "val_mean_iou_curve": [round(v, 4) for v in curve],
        }
        print(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
