"""Colour maps and class names: the PASCAL VOC default palette and the text formats users bring."""

import csv
import io
import os

import numpy as np

from ..errors import ValidationError

IGNORE_LABEL = 255
"""Label value meaning "unlabelled / ignore" (never a class)."""

MAX_CLASSES = 255
"""Class indices are 0..254; 255 is reserved for ignore."""


IGNORE_HATCH = ((96, 96, 96), (176, 176, 176))
"""The two greys of the diagonal stripes that mark ignore (255) pixels in pictures: never a class colour."""

HATCH_PERIOD = 8
"""Pixels per stripe pair of the ignore hatch."""


def hatch_ignore(rgb, mask, ignore=IGNORE_LABEL):
    """Draw ignore pixels of `mask` as grey diagonal stripes in the H×W×3 `rgb` (in place; returned)."""
    where = mask == ignore
    if where.any():
        yy, xx = np.nonzero(where)
        dark = ((xx + yy) % HATCH_PERIOD) < HATCH_PERIOD // 2
        rgb[yy, xx] = np.where(dark[:, None], IGNORE_HATCH[0], IGNORE_HATCH[1]).astype(rgb.dtype)
    return rgb


def voc_palette(n=256):
    """Return the PASCAL VOC colour scheme as a list of n [r, g, b] (class i → bits of i spread over RGB)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append([r, g, b])
    return out


def _read_text(path, what):
    try:
        with open(path, "r", encoding="utf-8-sig") as f:
            return f.read()
    except FileNotFoundError:
        raise ValidationError("%s %s does not exist" % (what, path))
    except (OSError, UnicodeDecodeError) as e:
        raise ValidationError("cannot read %s %s: %s (it must be a UTF-8 text file)" % (what, path, e))


def parse_classes_file(path):
    """Read a class-names file: line i is the name of class i (blank lines and `#` comments skipped)."""
    names = []
    for line in _read_text(path, "class-names file").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        names.append(line)
    if not names:
        raise ValidationError("class-names file %s has no names (write one class name per line)" % path)
    if len(names) > MAX_CLASSES:
        raise ValidationError("class-names file %s lists %d classes; at most %d are supported (255 is the ignore value)"
                              % (path, len(names), MAX_CLASSES))
    return names


def _channel(value, path, lineno):
    try:
        v = int(float(value))
    except ValueError:
        raise ValidationError("colour map %s line %d: %r is not a number (expected `R G B` with values 0-255)"
                              % (path, lineno, value))
    if not 0 <= v <= 255:
        raise ValidationError("colour map %s line %d: value %d is outside 0-255" % (path, lineno, v))
    return v


def parse_colormap_text(text, path="<text>"):
    """Parse a colour map: `R G B [name]` per line (class i = line i), or a CSV with `name,r,g,b` columns.

    Returns (colors, names) where names is None when the file gives none.
    """
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        raise ValidationError("colour map %s is empty (write one `R G B` line per class)" % path)
    header = [h.strip().lower() for h in lines[0].split(",")]
    if "," in lines[0] and {"r", "g", "b"} <= set(header):
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        reader.fieldnames = [h.strip().lower() for h in reader.fieldnames]
        colors, names = [], []
        for lineno, row in enumerate(reader, start=2):
            colors.append([_channel(row[c].strip(), path, lineno) for c in ("r", "g", "b")])
            names.append((row.get("name") or "class_%d" % (lineno - 2)).strip())
        return _finish(colors, names, path)
    colors, names = [], []
    for lineno, line in enumerate(lines, start=1):
        parts = line.replace(",", " ").split()
        if len(parts) < 3:
            raise ValidationError("colour map %s line %d: %r has %d values, expected `R G B` (optionally a name)"
                                  % (path, lineno, line, len(parts)))
        colors.append([_channel(p, path, lineno) for p in parts[:3]])
        names.append(" ".join(parts[3:]) if len(parts) > 3 else None)
    return _finish(colors, names if all(names) else None, path)


def _finish(colors, names, path):
    if len(colors) > MAX_CLASSES:
        raise ValidationError("colour map %s has %d colours; at most %d classes are supported" % (path, len(colors), MAX_CLASSES))
    seen = {}
    for i, c in enumerate(colors):
        if tuple(c) in seen:
            raise ValidationError("colour map %s: classes %d and %d have the same colour %s; every class needs its own colour"
                                  % (path, seen[tuple(c)], i, tuple(c)))
        seen[tuple(c)] = i
    return colors, names


def parse_colormap_file(path):
    """Read a colour-map file (see `parse_colormap_text`)."""
    return parse_colormap_text(_read_text(path, "colour map"), path=os.path.basename(path))


def palette_of(image):
    """Return the palette of a `P` image as a list of [r, g, b] (256 entries, zero-padded)."""
    pal = image.getpalette() or []
    pal = list(pal[:768]) + [0] * (768 - len(pal[:768]))
    return [pal[i:i + 3] for i in range(0, 768, 3)]


def default_class_names(n):
    """Names for a dataset without a class-names file."""
    return ["class_%d" % i for i in range(n)]
