"""Label images → class-index arrays (palette, greyscale, 16-bit, RGB colour-coded, RGBA, 0/255 binary).

One function, `decode_label`, used by the pre-flight check and by creation alike so both
agree on every pixel. It never guesses silently: unknown colours, values missing from a
label map and out-of-range values are returned for the caller to report (with pixel counts
and file names). The lookup tables come from `mapping` (ignore values/colours, label maps).
"""

import dataclasses
import functools

import numpy as np
from PIL import Image

from ..errors import ValidationError
from .mapping import OUT_OF_RANGE, UNMAPPED, color_entries
from .palette import IGNORE_LABEL, hatch_ignore, palette_of

GREY_MODES = ("L", "I;16", "I;16L", "I;16B", "I;16N", "I", "1")


@dataclasses.dataclass(frozen=True)
class LabelRules:
    """How label pixels become class indices.

    Args:
        colormap: tuple of (r, g, b) per class, used for RGB/RGBA labels (None: RGB labels are an error).
        tolerance: accept an RGB colour whose channels all lie within this many levels of a
            colour-map entry (0 = exact colours only).
        binary: treat a 0/255 greyscale mask as classes 0/1 (255 is then "foreground", not ignore).
        num_classes: when known, stored values >= num_classes (except 255) are reported.
        ignore_colors: (r, g, b) colours stored as 255; colour-map entries among them are dropped
            and the classes after them move down (see `mapping.color_entries`).
        palette_by_color: palette (P) labels are read by colour: index → its palette RGB →
            the colour-map class of that colour (needs `colormap`).
        value_lut: raw single-channel value → stored id (`mapping.value_lut`); None keeps values.
        unknown_colors: "refuse" (report them) or "ignore" (store them as 255, reported as a note).
    """

    colormap: tuple = None
    tolerance: int = 0
    binary: bool = False
    num_classes: int = None
    ignore_colors: tuple = ()
    palette_by_color: bool = False
    value_lut: tuple = None
    unknown_colors: str = "refuse"


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
    unmapped: dict = dataclasses.field(default_factory=dict)  # raw value -> pixel count, not in the label map
    ignored_colors: dict = dataclasses.field(default_factory=dict)  # (r, g, b) -> pixels sent to 255 as unknown
    palette_used: dict = dataclasses.field(default_factory=dict)  # palette index -> ((r, g, b), stored id, pixels)
    counts: np.ndarray = None  # pixels per stored value (256 int64)
    raw_values: list = None  # raw values seen, when a lookup mapped them


def index_counts(indices):
    """Pixels per value of an H×W uint8 array: Pillow's C histogram, 3x faster than `np.bincount`."""
    a = np.ascontiguousarray(indices, dtype=np.uint8)
    return np.asarray(Image.fromarray(a.reshape(a.shape[0], -1), "L").histogram(), dtype=np.int64)


def _counts(values, counts):
    return {int(v): int(c) for v, c in zip(values, counts)}


UNKNOWN_COLOR = -3
"""Lookup entry of a palette index whose colour no colour-map entry (or ignore colour) has."""


@functools.lru_cache(maxsize=16)
def _table(colormap, ignore_colors):
    """(colours m×3 int32, stored ids m) of the colour map after ignore (see `mapping.color_entries`)."""
    entries, _ = color_entries(colormap, ignore_colors)
    colors = np.asarray([c for c, _ in entries], dtype=np.int32).reshape(-1, 3)
    return colors, np.asarray([k for _, k in entries], dtype=np.int32)


def lookup_colors(colors, rules):
    """Stored id per colour (n×3), `UNKNOWN_COLOR` where none lies within the tolerance; and which
    colours matched only through the tolerance."""
    table, ids = _table(rules.colormap, tuple(map(tuple, rules.ignore_colors or ())))
    colors = np.asarray(colors, dtype=np.int32).reshape(-1, 3)
    if not len(table):
        return np.full(len(colors), UNKNOWN_COLOR, dtype=np.int32), np.zeros(len(colors), dtype=bool)
    dist = np.abs(colors[:, None, :] - table[None, :, :]).max(axis=2)
    nearest = dist.argmin(axis=1)
    d = dist[np.arange(len(colors)), nearest]
    out = np.where(d <= rules.tolerance, ids[nearest], UNKNOWN_COLOR).astype(np.int32)
    return out, (d > 0) & (d <= rules.tolerance)


@functools.lru_cache(maxsize=8)
def _palette_lut(palette, colormap, ignore_colors, tolerance):
    rules = LabelRules(colormap=colormap, ignore_colors=ignore_colors, tolerance=tolerance)
    return lookup_colors(np.asarray(palette, dtype=np.int32).reshape(-1, 3), rules)


def palette_lut(image, rules):
    """Per palette index of a `P` label: (stored id or `UNKNOWN_COLOR`, matched-by-tolerance, palette colours).

    Index 255 whose colour is in no class is ignore (VOC's border), as 255 is everywhere else;
    declared ignore values (`value_lut` entries 255) are palette indices here and win over colours.
    """
    colors = palette_of(image)
    flat = tuple(v for c in colors for v in c)
    ids, near = _palette_lut(flat, rules.colormap, tuple(map(tuple, rules.ignore_colors or ())), rules.tolerance)
    ids = ids.copy()
    if ids[IGNORE_LABEL] == UNKNOWN_COLOR:
        ids[IGNORE_LABEL] = IGNORE_LABEL
    if rules.value_lut is not None:
        declared = np.asarray(rules.value_lut[:256]) == IGNORE_LABEL
        declared[IGNORE_LABEL] = False
        ids[declared] = IGNORE_LABEL
    return ids, near, colors


def map_counts(counts, lut, res, rules, colors=None, near=None):
    """Apply a raw → stored lookup to a histogram of raw values; record what cannot be stored in `res`.

    Returns (uint8 lookup to apply to the pixels, whether any used value changes, stored-value counts).
    `colors`/`near`: the palette colours and tolerance matches when `lut` comes from `palette_lut`.
    """
    lut = np.asarray(lut, dtype=np.int32)
    if len(lut) < len(counts):  # 16-bit values beyond the table: missing from a label map, or too large
        fill = UNMAPPED if (lut == UNMAPPED).any() else OUT_OF_RANGE
        lut = np.concatenate([lut, np.full(len(counts) - len(lut), fill, dtype=np.int32)])
    used = np.flatnonzero(counts)
    for v in used[lut[used] < 0]:
        n, kind = int(counts[v]), lut[v]
        if kind == UNMAPPED:
            res.unmapped[int(v)] = n
        elif kind == OUT_OF_RANGE:
            res.bad_values[int(v)] = n
        else:
            rgb = tuple(colors[v])
            bucket = res.ignored_colors if rules.unknown_colors == "ignore" else res.unknown_colors
            bucket[rgb] = bucket.get(rgb, 0) + n
    if colors is not None:
        for v in used:
            res.palette_used[int(v)] = (tuple(colors[v]), int(lut[v]) if lut[v] >= 0 else IGNORE_LABEL, int(counts[v]))
            if near is not None and near[v]:
                res.nearest_pixels += int(counts[v])
                res.nearest_colors[tuple(colors[v])] = (int(lut[v]), int(counts[v]))
    stored = np.where(lut < 0, IGNORE_LABEL, lut).astype(np.uint8)
    changed = bool((stored[used] != used).any())
    mapped = np.bincount(stored[:len(counts)], weights=counts, minlength=256).astype(np.int64)
    return stored, changed, mapped


def _apply(a, lut, res, rules, colors=None, near=None):
    counts = np.bincount(a.ravel(), minlength=256)
    res.raw_values = np.flatnonzero(counts).tolist()
    stored, changed, res.counts = map_counts(counts, lut, res, rules, colors, near)
    if not changed:
        return a.astype(np.uint8, copy=False)
    res.changed = True
    return np.take(stored, a)


def _grey(image, rules, res):
    a = np.asarray(image)
    if a.dtype == bool:
        a = a.astype(np.uint8)
        res.changed = True
    if rules.value_lut is not None and not rules.binary:
        if a.dtype != np.uint8:
            res.changed = True
            a = a.astype(np.int64)
        return _apply(a, rules.value_lut, res, rules)
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
    if rules.colormap is None:
        a = np.asarray(image)
        if np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
            res.notes.append("RGB label with equal channels read as greyscale indices")
            res.changed = True
            return _grey(a[..., 0], rules, res) if rules.binary or rules.value_lut is not None else a[..., 0].copy()
        raise ValidationError("RGB colour-coded label needs a colour map: choose `colour map from a text file` "
                              "and give one `R G B` line per class")
    res.changed = True
    packed = _packed_rgb(image)
    ignore = tuple(map(tuple, rules.ignore_colors or ()))
    out = np.take(_color_lut(rules.colormap, ignore), packed)
    res.counts = index_counts(out)
    if not res.counts[_UNKNOWN]:  # every colour is in the table: no per-pixel search for misses
        return out
    miss = out == _UNKNOWN
    if ignore:  # ignore colours are stored as 255 by the table itself: not misses
        miss[miss] = ~np.isin(packed[miss], [r | (g << 8) | (b << 16) for r, g, b in ignore])
    if miss.any():
        res.counts = None  # misses mapped to nearest classes change the counts
        vals, inverse, cnt = np.unique(packed[miss], return_inverse=True, return_counts=True)
        rgb = np.stack([vals & 255, (vals >> 8) & 255, (vals >> 16) & 255], axis=1).astype(np.int32)
        ids, near = lookup_colors(rgb, rules)
        out[miss] = np.where(ids >= 0, ids, IGNORE_LABEL).astype(np.uint8)[inverse.ravel()]
        res.nearest_pixels = int(cnt[near].sum())
        for (r, g, b), k, c, close in zip(rgb.tolist(), ids, cnt, near):
            if close:
                res.nearest_colors[(r, g, b)] = (int(k), int(c))
            elif k < 0:
                bucket = res.ignored_colors if rules.unknown_colors == "ignore" else res.unknown_colors
                bucket[(r, g, b)] = int(c)
    return out


def _packed_rgb(image):
    """H×W intp r | g << 8 | b << 16 of an RGB image, ready to index a colour table.

    Pillow's RGBX export is a plain copy of its 4-byte pixels (pad byte 255, masked off), 3x
    faster than combining three strided channel copies; and gathering with intp indices made
    once here is 4x faster than `np.take` with uint32 ones, which converts them itself.
    """
    packed = np.frombuffer(image.tobytes("raw", "RGBX"), dtype="<u4").astype(np.intp)
    packed &= 0xFFFFFF
    return packed.reshape(image.height, image.width)


_UNKNOWN = 255  # the colour table's entry for both "not in the map" and "ignore colour" (told apart after)


@functools.lru_cache(maxsize=4)
def _color_lut(colormap, ignore_colors=()):
    """A 2**24-entry table colour → stored id (16 MiB), built once per colour map and process: the
    lookup is then one gather per pixel instead of a search."""
    lut = np.full(1 << 24, _UNKNOWN, dtype=np.uint8)
    entries, _ = color_entries(colormap, ignore_colors)
    if entries:
        cm = np.asarray([c for c, _ in entries], dtype=np.int64).reshape(-1, 3)
        lut[cm[:, 0] | (cm[:, 1] << 8) | (cm[:, 2] << 16)] = np.asarray([k for _, k in entries], dtype=np.uint8)
    lut.setflags(write=False)
    return lut


def decode_label(image, rules):
    """Decode a loaded PIL label image into class indices per `rules`; see `LabelResult`."""
    res = LabelResult(indices=None, changed=False, mode=image.mode)
    if image.mode == "P":
        if (rules.palette_by_color or rules.value_lut is not None) and rules.binary:
            raise ValidationError("a palette label cannot also be a 0/255 binary mask")
        a = np.asarray(image)
        if rules.palette_by_color:
            ids, near, colors = palette_lut(image, rules)
            a = _apply(a, ids, res, rules, colors, near)
        elif rules.value_lut is not None:
            a = _apply(a, rules.value_lut, res, rules)
        elif rules.binary:
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
    res.indices = np.ascontiguousarray(a, dtype=np.uint8)
    if res.counts is None:
        res.counts = index_counts(res.indices)
    if rules.num_classes is not None:
        over = np.flatnonzero(res.counts[rules.num_classes:IGNORE_LABEL]) + rules.num_classes
        res.bad_values.update({int(v): int(res.counts[v]) for v in over})
    return res


def is_binary_mask(values):
    """True when the greyscale values seen are exactly {0, 255} or {255}: a 0/255 mask (classes 0/1)."""
    values = set(values)
    return 255 in values and values <= {0, 255}


def colorize(indices, colormap):
    """Return an H×W×3 uint8 image of class colours; ignore (255) hatched grey, unknown values black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    cm = np.asarray(colormap, dtype=np.uint8).reshape(-1, 3)[:255]
    lut[:len(cm)] = cm
    return hatch_ignore(lut[indices], indices)
