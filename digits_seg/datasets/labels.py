"""Label images → class-index arrays (palette, greyscale, 16-bit, RGB colour-coded, RGBA, 0/255 binary).

One function, `decode_label`, used by the pre-flight check and by creation alike so both
agree on every pixel. It never guesses silently: unknown colours and out-of-range values
are returned for the caller to report (with pixel counts and file names).
"""

import dataclasses
import functools

import numpy as np

from ..errors import ValidationError
from .palette import IGNORE_LABEL

GREY_MODES = ("L", "I;16", "I;16L", "I;16B", "I;16N", "I", "1")


@dataclasses.dataclass(frozen=True)
class LabelRules:
    """How label pixels become class indices.

    Args:
        colormap: tuple of (r, g, b) per class, used for RGB/RGBA labels (None: RGB labels are an error).
        tolerance: accept an RGB colour whose channels all lie within this many levels of a
            colour-map entry (0 = exact colours only).
        binary: treat a 0/255 greyscale mask as classes 0/1 (255 is then "foreground", not ignore).
        num_classes: when known, values >= num_classes (except 255) are reported.
    """

    colormap: tuple = None
    tolerance: int = 0
    binary: bool = False
    num_classes: int = None


@dataclasses.dataclass
class LabelResult:
    """Decoded label: `indices` (H×W uint8); `changed` (the stored bytes must be re-encoded)."""

    indices: np.ndarray
    changed: bool
    mode: str
    notes: list = dataclasses.field(default_factory=list)
    unknown_colors: dict = dataclasses.field(default_factory=dict)  # (r, g, b) -> pixel count
    bad_values: dict = dataclasses.field(default_factory=dict)  # value -> pixel count
    nearest_pixels: int = 0  # pixels mapped to a colour-map entry through the tolerance
    nearest_colors: dict = dataclasses.field(default_factory=dict)  # (r, g, b) -> (class, pixel count)


def _counts(values, counts):
    return {int(v): int(c) for v, c in zip(values, counts)}


def _grey(image, rules, res):
    a = np.asarray(image)
    if a.dtype == bool:
        a = a.astype(np.uint8)
        res.changed = True
    if a.dtype != np.uint8:
        big = a > 255
        if big.any():
            vals, cnt = np.unique(a[big], return_counts=True)
            res.bad_values.update(_counts(vals[:20], cnt[:20]))
            a = np.where(big, IGNORE_LABEL, a)
        a = a.astype(np.uint8)
        res.changed = True
    if rules.binary:
        other = (a != 0) & (a != 255)
        if other.any():
            vals, cnt = np.unique(a[other], return_counts=True)
            res.bad_values.update(_counts(vals[:20], cnt[:20]))
        a = (a == 255).astype(np.uint8)
        res.changed = True
    return a


def _rgb(image, rules, res):
    if image.mode != "RGB":
        if "A" in image.mode:
            res.notes.append("alpha channel ignored")
        image = image.convert("RGB")
        res.changed = True
    a = np.asarray(image)  # RGB, not an RGBA uint32 view: Pillow's RGBA export is 3x slower
    if rules.colormap is None:
        if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
            res.notes.append("RGB label with equal channels read as greyscale indices")
            res.changed = True
            return _grey(a[..., 0], rules, res) if rules.binary else a[..., 0].copy()
        raise ValidationError("RGB colour-coded label needs a colour map: choose `colour map from a text file` "
                              "and give one `R G B` line per class")
    res.changed = True
    packed = a[..., 0].astype(np.uint32)
    packed |= a[..., 1].astype(np.uint32) << 8
    packed |= a[..., 2].astype(np.uint32) << 16
    cmap = np.asarray(rules.colormap, dtype=np.int32).reshape(-1, 3)
    out = np.take(_color_lut(tuple(map(tuple, cmap.tolist()))), packed)
    miss = out == _UNKNOWN
    if miss.any():
        vals, inverse, cnt = np.unique(packed[miss], return_inverse=True, return_counts=True)
        rgb = np.stack([vals & 255, (vals >> 8) & 255, (vals >> 16) & 255], axis=1).astype(np.int32)
        dist = np.abs(rgb[:, None, :] - cmap[None, :, :]).max(axis=2)
        nearest = dist.argmin(axis=1)
        ok = dist[np.arange(len(vals)), nearest] <= rules.tolerance
        out[miss] = np.where(ok, nearest, IGNORE_LABEL).astype(np.uint8)[inverse.ravel()]
        res.nearest_pixels = int(cnt[ok].sum())
        for (r, g, b), k, c, good in zip(rgb.tolist(), nearest, cnt, ok):
            if good:
                res.nearest_colors[(r, g, b)] = (int(k), int(c))
            else:
                res.unknown_colors[(r, g, b)] = int(c)
    return out


_UNKNOWN = 255  # colour-map lookups never yield 255 (classes are 0..254), so it marks "not in the map"


@functools.lru_cache(maxsize=4)
def _color_lut(colormap):
    """A 2**24-entry table colour → class (16 MiB), built once per colour map and process: the
    lookup is then one gather per pixel instead of a search."""
    lut = np.full(1 << 24, _UNKNOWN, dtype=np.uint8)
    cm = np.asarray(colormap, dtype=np.int64).reshape(-1, 3)
    lut[cm[:, 0] | (cm[:, 1] << 8) | (cm[:, 2] << 16)] = np.arange(len(cm), dtype=np.uint8)
    lut.setflags(write=False)
    return lut


def decode_label(image, rules):
    """Decode a loaded PIL label image into class indices per `rules`; see `LabelResult`."""
    res = LabelResult(indices=None, changed=False, mode=image.mode)
    if image.mode == "P":
        if rules.colormap is not None and rules.binary:
            raise ValidationError("a palette label cannot also be a 0/255 binary mask")
        a = np.asarray(image)
        if rules.binary:
            a = _grey(a, rules, res)
    elif image.mode in GREY_MODES:
        a = _grey(image, rules, res)
    elif image.mode == "LA":
        res.notes.append("alpha channel ignored")
        res.changed = True
        a = _grey(image.getchannel("L"), rules, res)
    elif image.mode in ("RGB", "RGBA", "RGBX", "RGBa", "PA"):
        a = _rgb(image, rules, res)
    else:
        raise ValidationError("label mode %s is not supported; save labels as palette PNG, greyscale PNG "
                              "(class index per pixel) or RGB colour-coded PNG" % image.mode)
    if rules.num_classes is not None:
        over = (a >= rules.num_classes) & (a != IGNORE_LABEL)
        if over.any():
            vals, cnt = np.unique(a[over], return_counts=True)
            res.bad_values.update(_counts(vals, cnt))
    res.indices = np.ascontiguousarray(a, dtype=np.uint8)
    return res


def is_binary_mask(values):
    """True when the greyscale values seen are exactly {0, 255} or {255}: a 0/255 mask (classes 0/1)."""
    values = set(values)
    return 255 in values and values <= {0, 255}


def colorize(indices, colormap):
    """Return an H×W×3 uint8 image of class colours (ignore and unknown values black)."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    cm = np.asarray(colormap, dtype=np.uint8).reshape(-1, 3)[:255]
    lut[:len(cm)] = cm
    return lut[indices]
