"""What a model job feeds its network, and whether its BatchNorm layers keep learning statistics.

Preprocessing is part of a trained model: its first layers learned on inputs with one
channel order, scale and mean. A job that starts from a pretrained or previous model
therefore inherits that model's recipe (`mean_subtraction: "model"`, the default for those
network kinds) instead of computing a new mean from its own dataset; a user who picks another
recipe gets a warning in the log, because the start weights then see shifted inputs. The
recipe is written to `preprocess.json` (docs/CONTRACTS.md → training), which inference,
export and publish read back through `inference.preprocess.load_preprocess`.

BatchNorm with small batches: statistics of one or two images are noisy, and with
`moving_average_fraction` 0.999 the running statistics that validation and inference use
barely follow them. For networks started from trained weights and batches below
`FREEZE_BN_BELOW`, BatchNorm uses the loaded running statistics in training too (Caffe's
`use_global_stats: true` in TRAIN, as DeepLab fine-tunes), so training and inference see the
same normalisation.
"""

import os

import numpy as np

from ..errors import ValidationError

INHERIT = "model"
"""`mean_subtraction` value meaning "the preprocessing of the model this job starts from"."""

FREEZE_BN_CHOICES = ("auto", "on", "off")
"""`freeze_bn`: auto (on for trained start weights and batches below FREEZE_BN_BELOW), on, off."""

FREEZE_BN_BELOW = 8
"""Batch size (per process) below which `freeze_bn: auto` freezes BatchNorm statistics."""


def _dataset_recipe(mode, info, dataset_id):
    mean = getattr(info, "mean_pixel", None)
    return {
        "channels": int(info.channels or 3), "channel_order": "RGB", "mean_subtraction": mode,
        "mean_pixel": None if mode == "none" or mean is None else [float(v) for v in np.asarray(mean).ravel()],
        "scale": 1.0, "mean_image_dataset": dataset_id if mode == "image" else None,
    }


def _source_recipe(source_dir, info, dataset_id, log):
    """The recipe of the model in `source_dir`, made usable on this job's dataset."""
    from ..fsutil import read_json
    from ..inference.preprocess import load_preprocess

    src = load_preprocess(source_dir)
    rec = {"channels": int(info.channels or 3), "channel_order": src.channel_order,
           "mean_subtraction": src.mean_subtraction,
           "mean_pixel": list(src.mean_pixel) if src.mean_pixel is not None else None,
           "scale": list(src.scale) if isinstance(src.scale, tuple) else float(src.scale),
           "inherited_from": os.path.basename(os.path.normpath(source_dir))}
    if src.mean_subtraction == "image":
        job_path = os.path.join(source_dir, "job.json")
        src_ds = (read_json(job_path).get("params") or {}).get("dataset_id") if os.path.isfile(job_path) else None
        if src_ds is not None and src_ds == dataset_id:
            rec["mean_image_dataset"] = dataset_id  # same dataset, same mean image
        else:
            # The mean image belongs to another dataset (maybe of another size): its
            # per-channel mean is the closest input this dataset can be given.
            pixel = src.mean_pixel
            if src.mean_image is not None:
                pixel = tuple(np.asarray(src.mean_image, np.float64).reshape(-1, src.channels).mean(axis=0))
            rec["mean_subtraction"] = "pixel"
            rec["mean_pixel"] = [float(v) for v in pixel] if pixel is not None else None
            log("The model this job starts from subtracted its dataset's mean image; this dataset differs, so "
                "its per-channel mean is subtracted instead")
    if src.channels != rec["channels"]:
        log("warning: the model this job starts from takes %d-channel input but the dataset has %d channels"
            % (src.channels, rec["channels"]))
        if rec["mean_pixel"] is not None and len(rec["mean_pixel"]) != rec["channels"]:
            rec["mean_pixel"] = [float(np.mean(rec["mean_pixel"]))] * rec["channels"]
    return rec


def resolve_recipe(params, info, input_size, source_dir, log):
    """Return the job's preprocess.json record.

    Args:
        info: the dataset's `DatasetInfo`.
        input_size: [w, h] of training crops / images, or None.
        source_dir: the pretrained or previous model the job starts from, or None.
    """
    mode = params.get("mean_subtraction") or "pixel"
    dataset_id = params.get("dataset_id")
    if mode == INHERIT:
        if source_dir is None:
            raise ValidationError("mean_subtraction 'model' (as the model it starts from) needs a pretrained or "
                                  "previous network; choose none, pixel or image", field="mean_subtraction")
        rec = _source_recipe(source_dir, info, dataset_id, log)
        log("Preprocessing as the model it starts from: %s" % describe(rec))
    else:
        rec = _dataset_recipe(mode, info, dataset_id)
        if source_dir is not None:
            src = _source_recipe(source_dir, info, dataset_id, lambda _t: None)
            if describe(src) != describe(rec):
                log("warning: the model this job starts from was trained with %s, but this job uses %s: its "
                    "first layers see shifted inputs, so fine-tuning starts from a worse model (leave mean "
                    "subtraction at its default to keep the model's preprocessing)" % (describe(src), describe(rec)))
    rec["input_size"] = list(input_size) if input_size else None
    # how the dataset stored 16-bit images: its own, never the start model's (the weights see stored images)
    rec["significant_bits"] = int(getattr(info, "significant_bits", 16) or 16)
    return rec


def describe(rec):
    """One line for the log: 'RGB, mean pixel [..], scale 1'."""
    mode = rec.get("mean_subtraction")
    if mode == "pixel" and rec.get("mean_pixel"):
        mean = "mean pixel [%s]" % ", ".join("%.1f" % v for v in rec["mean_pixel"])
    elif mode == "image":
        mean = "mean image of dataset %s" % rec.get("mean_image_dataset")
    else:
        mean = "no mean subtraction"
    scale = rec.get("scale", 1.0)
    scale = ("[%s]" % ", ".join("%.4g" % v for v in scale)) if isinstance(scale, (list, tuple)) else "%g" % float(scale)
    return "%s, %s, scale %s" % (rec.get("channel_order", "RGB"), mean, scale)


def input_tensors(rec, info, device):
    """(mean tensor or None, flip channels to BGR?, scale) for `augment.to_input`."""
    import torch

    from .augment import mean_tensor

    channels = int(rec["channels"])
    if rec["mean_subtraction"] == "image":
        mean = mean_tensor("image", info, channels, device)
    elif rec["mean_subtraction"] == "pixel" and rec.get("mean_pixel"):
        mean = torch.tensor([float(v) for v in rec["mean_pixel"]], dtype=torch.float32).view(1, -1, 1, 1).to(device)
    else:
        mean = None
    bgr = channels == 3 and str(rec.get("channel_order", "RGB")).upper() == "BGR"
    scale = rec.get("scale", 1.0)
    if isinstance(scale, (list, tuple)):  # one factor per channel (torchvision's ImageNet 1 / (255 std))
        return mean, bgr, torch.tensor([float(v) for v in scale], dtype=torch.float32).view(1, -1, 1, 1).to(device)
    return mean, bgr, float(scale or 1.0)


def should_freeze_bn(params, has_start_weights):
    """Whether BatchNorm layers use their loaded running statistics in training (see the module docstring)."""
    choice = str(params.get("freeze_bn") or "auto").lower()
    if choice not in FREEZE_BN_CHOICES:
        raise ValidationError("Unknown freeze_bn %r. Available: %s" % (choice, ", ".join(FREEZE_BN_CHOICES)),
                              field="freeze_bn")
    if choice == "auto":
        return bool(has_start_weights) and int(params.get("batch_size") or 1) < FREEZE_BN_BELOW
    return choice == "on"


def freeze_batchnorm(net):
    """Make BatchNorm layers that hold running statistics use them in training; return their names.

    Layers without statistics (a network-only start, or a layer re-initialised by net
    surgery) keep batch statistics: their stored ones are empty.
    """
    from ..networks.layers.normalization import BatchNorm

    frozen = []
    for name, module in net.named_modules():
        if isinstance(module, BatchNorm) and float(module.scale_factor.reshape(-1)[0]) > 0:
            module.use_global = True
            frozen.append(name)
    return frozen
