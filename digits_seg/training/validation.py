"""Validation pass: loss, confusion matrix on the device, and a few prediction overlays for the job page."""

import io
import os

import numpy as np
from PIL import Image

from ..fsutil import write_bytes_atomic
from .metrics import confusion_matrix, scores_from_confusion

PREVIEW_MAX_SIDE = 192
"""Longest side of a validation preview PNG, in pixels (they are thumbnails for a strip)."""


def run_validation(net, loader, *, device, num_classes, ignore_label, loss_fn, prepare, autocast, preview_count=0,
                   preview_ids=None, reduce=None):
    """Evaluate `net` over `loader`; return (scores dict with loss and confusion, previews list).

    Args:
        prepare: callable(images_u8_on_device) → network input.
        autocast: a context manager factory for mixed precision (or a null context).
        preview_count: keep (image, label, prediction) of the first N samples (by index).
        preview_ids: the sample indices to keep instead (a DistributedDataParallel rank sees
            only its share of the samples).
        reduce: in-place sum over processes (DistributedDataParallel), applied to the
            confusion matrix, loss sum and pixel count before the scores are computed.
    """
    import torch

    net.eval()
    conf = torch.zeros((num_classes, num_classes), dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    pixels = torch.zeros((), dtype=torch.float64, device=device)
    previews = []
    keep = set(range(preview_count)) if preview_ids is None else set(preview_ids)
    with torch.no_grad():
        for images, labels, indices in loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with autocast():
                out = net(prepare(images))
            scores = out[net.score_blob].float()
            target = labels.long()
            valid = (target != ignore_label).sum() if ignore_label is not None else torch.tensor(target.numel())
            loss_sum += loss_fn(scores, target).double() * valid
            pixels += valid
            pred = scores.argmax(dim=1)
            conf += confusion_matrix(pred, target, num_classes, ignore_label)
            for j, idx in enumerate(indices.tolist()):
                if idx in keep:
                    previews.append((idx, images[j].cpu().numpy(), labels[j].cpu().numpy(), pred[j].cpu().numpy()))
    net.train()
    if reduce is not None:
        for t in (conf, loss_sum, pixels):
            reduce(t)
    conf = conf.cpu().numpy()
    result = scores_from_confusion(conf)
    px = float(pixels.item())
    result["loss"] = float(loss_sum.item() / px) if px > 0 else None
    result["confusion"] = conf.tolist()
    previews.sort(key=lambda p: p[0])
    return result, previews


def _colorize(label, colormap):
    from ..datasets.labels import colorize

    return colorize(label, colormap or [])  # ignore pixels hatched grey, as on every page


def _thumb(arr, nearest=False):
    img = Image.fromarray(arr)
    w, h = img.size
    s = min(1.0, PREVIEW_MAX_SIDE / float(max(w, h)))
    if s < 1.0:
        img = img.resize((max(1, int(w * s)), max(1, int(h * s))), Image.NEAREST if nearest else Image.BILINEAR)
    return img


def write_previews(job_dir, epoch_label, previews, colormap):
    """Write `val_previews/epoch_<k>/<i>.png`: image | ground truth | prediction blended on the image."""
    if not previews:
        return []
    folder = os.path.join(job_dir, "val_previews", "epoch_%s" % epoch_label)
    os.makedirs(folder, exist_ok=True)
    names = []
    for idx, image, label, pred in previews:
        rgb = image.transpose(1, 2, 0)
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        rgb = rgb[:, :, :3].astype(np.uint8)
        gt = _colorize(label.astype(np.uint8), colormap)
        pr = _colorize(pred.astype(np.uint8), colormap)
        blend = (0.5 * rgb + 0.5 * pr).astype(np.uint8)
        strip = np.concatenate([rgb, gt, blend], axis=1)
        buf = io.BytesIO()
        _thumb(strip, nearest=True).save(buf, format="PNG")
        name = "%d.png" % idx
        write_bytes_atomic(os.path.join(folder, name), buf.getvalue())
        names.append(name)
    return names
