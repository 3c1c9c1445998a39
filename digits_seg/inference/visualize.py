"""Render class-id masks for people: colourise, blend, error maps, cut-outs, contours, PNGs.

Pure numpy + Pillow so the web process, the worker and the CLI share one implementation
and tests run without torch. Masks are H×W uint8 class ids; 255 means "ignore/unlabelled".
"""

import io

import numpy as np
from PIL import Image

from ..datasets.palette import hatch_ignore
from ..errors import ValidationError
from ..fsutil import write_bytes_atomic

IGNORE_LABEL = 255
"""Label value meaning unlabelled / ignore (Caffe and DIGITS convention)."""

DEFAULT_IGNORE_COLOR = (0, 0, 0)
"""RGB drawn for ignore pixels (255) and for ids beyond the colour map."""

ERROR_COLOR = (255, 0, 0)
"""RGB drawn for wrongly predicted pixels in an error overlay."""


def voc_colormap(n=256):
    """Return the PASCAL VOC palette (n×3 uint8): the default for greyscale index labels."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def palette_array(colormap, ignore_color=DEFAULT_IGNORE_COLOR):
    """Return a 256×3 uint8 lookup table from a per-class colour list (rest: `ignore_color`)."""
    table = np.empty((256, 3), dtype=np.uint8)
    table[:] = np.asarray(ignore_color, dtype=np.uint8)
    if colormap is not None and len(colormap):
        colors = np.asarray(colormap, dtype=np.int64).reshape(-1, 3)
        if colors.shape[0] > 255:
            raise ValidationError("colour map has %d entries; at most 255 classes are supported (255 is 'ignore')"
                                  % colors.shape[0], field="colormap")
        if colors.min() < 0 or colors.max() > 255:
            raise ValidationError("colour map values must be 0..255", field="colormap")
        table[: colors.shape[0]] = colors.astype(np.uint8)
    return table


def _check_mask(mask, name="mask"):
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValidationError("%s must be H×W class ids, got shape %s" % (name, mask.shape), field=name)
    if mask.dtype != np.uint8:
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValidationError("%s values must lie in 0..255" % name, field=name)
        mask = mask.astype(np.uint8)
    return mask


def as_rgb(image):
    """Return `image` as H×W×3 uint8 (greyscale repeated, alpha dropped)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValidationError("image must be uint8, got %s" % image.dtype, field="image")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return np.ascontiguousarray(image[:, :, :3])
    raise ValidationError("image must be H×W, H×W×1, H×W×3 or H×W×4, got shape %s" % (image.shape,), field="image")


def colorize(mask, colormap, ignore_color=None):
    """Return the H×W×3 uint8 colour image of a class-id mask using the dataset's palette.

    Ignore (255) pixels are hatched grey (never a class colour: black is VOC's background)
    unless `ignore_color` asks for one flat colour; ids beyond the colour map are black.
    """
    mask = _check_mask(mask)
    rgb = palette_array(colormap, ignore_color or DEFAULT_IGNORE_COLOR)[mask]
    return rgb if ignore_color is not None else hatch_ignore(rgb, mask, IGNORE_LABEL)


def _same_size(image, mask):
    if image.shape[:2] != mask.shape[:2]:
        raise ValidationError("image is %dx%d but mask is %dx%d (width x height); they must match"
                              % (image.shape[1], image.shape[0], mask.shape[1], mask.shape[0]), field="mask")


def blend(image, color, alpha=0.5, where=None):
    """Return `image` with `color` laid over it at opacity `alpha` (0 = image, 1 = colour).

    Args:
        where: optional H×W bool; pixels outside it keep the image (e.g. ignore pixels).
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValidationError("alpha must be between 0 and 1, got %r" % alpha, field="alpha")
    base = as_rgb(image).astype(np.float32)
    over = as_rgb(color).astype(np.float32)
    _same_size(base, over)
    out = base * (1.0 - alpha) + over * alpha
    if where is not None:
        out = np.where(np.asarray(where, dtype=bool)[:, :, None], out, base)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def overlay(image, mask, colormap, alpha=0.5, ignore_label=IGNORE_LABEL):
    """Return the image with the colourised mask blended over it (ignore pixels left as is)."""
    mask = _check_mask(mask)
    return blend(image, colorize(mask, colormap), alpha, where=mask != ignore_label)


def error_map(pred, gt, ignore_label=IGNORE_LABEL):
    """Return H×W bool: True where the prediction differs from ground truth (ignore pixels False)."""
    pred, gt = _check_mask(pred, "pred"), _check_mask(gt, "gt")
    if pred.shape != gt.shape:
        raise ValidationError("prediction is %s but ground truth is %s; they must have the same size"
                              % (pred.shape, gt.shape), field="gt")
    return (pred != gt) & (gt != ignore_label)


def error_overlay(image, pred, gt, alpha=0.6, ignore_label=IGNORE_LABEL, color=ERROR_COLOR):
    """Return the image greyed out with wrongly predicted pixels painted in `color`."""
    wrong = error_map(pred, gt, ignore_label)
    grey = as_rgb(image).astype(np.float32).mean(axis=2, keepdims=True)
    base = np.repeat(np.clip(grey, 0, 255).astype(np.uint8), 3, axis=2)
    paint = np.empty_like(base)
    paint[:] = np.asarray(color, dtype=np.uint8)
    return blend(base, paint, alpha, where=wrong)


def cutout(image, mask, keep_classes):
    """Return H×W×4 RGBA: the image where the mask is in `keep_classes`, transparent elsewhere.

    The "remove the background" use: keep `person`, everything else gets alpha 0.
    """
    mask = _check_mask(mask)
    rgb = as_rgb(image)
    _same_size(rgb, mask)
    keep = np.asarray(sorted(set(int(c) for c in keep_classes)), dtype=np.int64)
    if keep.size and (keep.min() < 0 or keep.max() > 255):
        raise ValidationError("classes to keep must be ids 0..255, got %s" % keep.tolist(), field="keep")
    alpha = np.isin(mask, keep).astype(np.uint8) * 255
    return np.dstack([rgb, alpha])


def contour(mask, thickness=1):
    """Return H×W bool marking pixels whose 4-neighbour belongs to another class."""
    mask = _check_mask(mask)
    edge = np.zeros(mask.shape, dtype=bool)
    diff_v = mask[1:, :] != mask[:-1, :]
    diff_h = mask[:, 1:] != mask[:, :-1]
    edge[1:, :] |= diff_v
    edge[:-1, :] |= diff_v
    edge[:, 1:] |= diff_h
    edge[:, :-1] |= diff_h
    for _ in range(max(0, int(thickness) - 1)):
        grown = edge.copy()
        grown[1:, :] |= edge[:-1, :]
        grown[:-1, :] |= edge[1:, :]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown
    return edge


def contour_overlay(image, mask, colormap, thickness=1):
    """Return the image with class outlines drawn in each class's colour."""
    mask = _check_mask(mask)
    rgb = as_rgb(image).copy()
    _same_size(rgb, mask)
    edge = contour(mask, thickness)
    rgb[edge] = colorize(mask, colormap)[edge]
    return rgb


def class_histogram(mask, classes=None, colormap=None, ignore_label=IGNORE_LABEL):
    """Return per-class pixel counts and shares of a mask as JSON-able data.

    Shares are fractions of the labelled pixels (ignore pixels excluded). Returns
    `{"total", "ignored", "classes": [{"id", "name", "color", "pixels", "share"}...]}`
    listing every named class (pixels 0 when absent) plus any unnamed id that occurs.
    """
    mask = _check_mask(mask)
    counts = np.bincount(mask.ravel(), minlength=256)
    ignored = int(counts[ignore_label]) if 0 <= ignore_label < 256 else 0
    labelled = int(counts.sum()) - ignored
    names = list(classes or [])
    ids = set(range(len(names))) | set(int(i) for i in np.nonzero(counts)[0])
    ids.discard(ignore_label)
    table = palette_array(colormap) if colormap is not None else None
    rows = []
    for i in sorted(ids):
        rows.append({
            "id": i,
            "name": names[i] if i < len(names) else "class %d" % i,
            "color": table[i].tolist() if table is not None else None,
            "pixels": int(counts[i]),
            "share": (int(counts[i]) / labelled) if labelled else 0.0,
        })
    return {"total": int(mask.size), "ignored": ignored, "classes": rows}


def encode_png(array, colormap=None):
    """Return PNG bytes of an H×W (palette when `colormap` is given), H×W×3 or H×W×4 uint8 array."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValidationError("PNG data must be uint8, got %s" % array.dtype)
    if colormap is not None:
        img = Image.fromarray(_check_mask(array), mode="P")
        img.putpalette(palette_array(colormap).ravel().tolist())
    else:
        img = Image.fromarray(array)
    buf = io.BytesIO()
    # compress_level 1: masks and overlays are written per image in batch jobs; level 6
    # (Pillow's default) costs several times more CPU for a few percent smaller files.
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def save_palette_png(mask, colormap, path):
    """Write a mask as a palette PNG (pixel values = class ids, palette = dataset colours), atomically."""
    write_bytes_atomic(path, encode_png(mask, colormap))


def save_png(array, path):
    """Write an RGB/RGBA/greyscale uint8 array as PNG, atomically."""
    write_bytes_atomic(path, encode_png(array))
