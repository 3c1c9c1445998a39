"""Raw label values and colours → stored class ids: ignore/void, explicit label maps, palette
labels read by colour, and every mapping stated in words.

The plan turns dataset params into plain-data lookup tables here (`value_lut`,
`color_entries`); the workers apply them (`labels.decode_label`, `process._decode_label`);
the check and the dataset page show them (`describe`). Stored ids are 0..254; 255 is ignore.

Ignored values and colours are *removed* from the class list, and the classes after them
move down (compaction): CamVid's `--ignore 11` gives 11 classes, ADE20K's `--ignore 0` gives
classes 0..149 for raw 1..150 (mmsegmentation's `reduce_zero_label`). An explicit `label_map`
says every stored id itself instead.
"""

import numpy as np

from ..errors import ValidationError
from .palette import IGNORE_LABEL, MAX_CLASSES

UNMAPPED = -1
"""Lookup entry: the raw value is not in the label map (an error naming the file)."""

OUT_OF_RANGE = -2
"""Lookup entry: a 16-bit raw value that no class can hold (reported as a bad value)."""

UNKNOWN_COLOR_CHOICES = ("refuse", "ignore")
"""What happens to colours in no colour-file entry: refused (default) or stored as 255."""

VOID_NAMES = ("void", "unlabelled", "unlabeled", "ignore", "background-ignore", "background_ignore", "dontcare",
              "don't care", "unknown", "other", "none", "border")
"""Class names the check offers as ignore (compared lower-case, without surrounding `_`/space)."""

MAX_RAW_VALUE = 65535
"""Largest raw label value (16-bit labels)."""


def parse_color(value, field="ignore_colors"):
    """`"255,255,255"`, `"255 255 255"` or [255, 255, 255] → [r, g, b] (ValidationError otherwise)."""
    parts = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    try:
        rgb = [int(p) for p in parts]
    except (TypeError, ValueError):
        rgb = None
    if rgb is None or len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise ValidationError("%s: %r is not a colour; write R,G,B as three numbers 0-255, e.g. 255,255,255"
                              % (field, value), field=field)
    return rgb


def parse_value(value, field="ignore_values"):
    """A raw label value 0..65535 from an int or a string."""
    try:
        v = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValidationError("%s: %r is not a label value (a whole number 0-%d)" % (field, value, MAX_RAW_VALUE),
                              field=field)
    if not 0 <= v <= MAX_RAW_VALUE:
        raise ValidationError("%s: %d is outside 0-%d" % (field, v, MAX_RAW_VALUE), field=field)
    return v


def parse_values(values, field="ignore_values"):
    """Sorted distinct raw values from a list, or text like `"11"` / `"0, 11"`."""
    if values in (None, "", []):
        return []
    items = values.replace(";", ",").replace(",", " ").split() if isinstance(values, str) else list(values)
    return sorted({parse_value(v, field) for v in items})


def parse_colors(colors, field="ignore_colors"):
    """Sorted distinct [r, g, b] from a list of colours, or text like `"255,255,255; 0 0 0"`."""
    if colors in (None, "", []):
        return []
    items = [c for c in colors.split(";") if c.strip()] if isinstance(colors, str) else list(colors)
    return sorted({tuple(parse_color(c, field)) for c in items})


def parse_label_map(mapping, field="label_map"):
    """{raw: stored} from a dict (JSON string keys allowed) or `"7:0 8:1 0:255"` text; None when empty."""
    if mapping in (None, "", {}):
        return None
    if isinstance(mapping, str):
        items = []
        for part in mapping.replace(",", " ").split():
            if ":" not in part:
                raise ValidationError("%s: %r is not `raw:stored` (e.g. 7:0 26:13 0:255)" % (field, part), field=field)
            items.append(part.split(":", 1))
    elif isinstance(mapping, dict):
        items = list(mapping.items())
    else:
        raise ValidationError("%s must map raw label values to stored class ids, e.g. {\"7\": 0, \"0\": 255}" % field,
                              field=field)
    out = {}
    for raw, stored in items:
        raw, stored = parse_value(raw, field), parse_value(stored, field)
        if stored > IGNORE_LABEL:
            raise ValidationError("%s: raw value %d maps to %d; stored ids are 0-%d, or 255 for ignore"
                                  % (field, raw, stored, MAX_CLASSES - 1), field=field)
        out[raw] = stored
    return out


def value_lut(ignore_values=(), label_map=None):
    """Lookup raw single-channel value → stored id (int list), or None when values are stored as they are.

    Entries are `UNMAPPED` for raw values missing from an explicit `label_map`, and
    `OUT_OF_RANGE` for 16-bit values no class can hold.
    """
    ignore = sorted(set(ignore_values or ()))
    if not ignore and not label_map:
        return None
    size = max([256] + [v + 1 for v in ignore] + [k + 1 for k in (label_map or {})])
    if label_map:
        lut = np.full(size, UNMAPPED, dtype=np.int32)
        lut[IGNORE_LABEL] = IGNORE_LABEL
        for raw, stored in label_map.items():
            lut[raw] = stored
    else:
        raw = np.arange(size, dtype=np.int32)
        ignored = np.zeros(size, dtype=bool)
        ignored[ignore] = True
        lut = raw - (np.cumsum(ignored) - ignored)  # minus the ignored values below
        lut[raw >= IGNORE_LABEL] = OUT_OF_RANGE
        lut[IGNORE_LABEL] = IGNORE_LABEL
    lut[ignore] = IGNORE_LABEL
    return lut.tolist()


def ignored_positions(names_count, ignore_values=(), label_map=None):
    """Class positions (of a names/colour list indexed by raw value) that ignore removes."""
    if label_map:
        return set()
    return {v for v in ignore_values or () if v < names_count}


def color_entries(colors, ignore_colors=()):
    """((r, g, b), stored id) per colour-file entry (ids compacted around ignored colours), then (colour, 255)
    per ignore colour; and the colour-file positions that ignore removed."""
    ignore = {tuple(c) for c in ignore_colors or ()}
    entries, dropped, k = [], set(), 0
    for i, c in enumerate(colors or ()):
        if tuple(c) in ignore:
            dropped.add(i)
            continue
        entries.append((tuple(int(v) for v in c), k))
        k += 1
    entries.extend((tuple(int(v) for v in c), IGNORE_LABEL) for c in sorted(ignore))
    return tuple(entries), dropped


def drop_positions(items, positions):
    """`items` without the entries at `positions` (the ignored classes)."""
    return [x for i, x in enumerate(items) if i not in positions]


def looks_void(name):
    """Is this class name one people use for "unlabelled / do not learn"?"""
    return name.strip(" _-").lower() in VOID_NAMES


def _class_words(stored, names):
    if stored == IGNORE_LABEL:
        return "ignore (255)"
    if stored == OUT_OF_RANGE:
        return "above the largest class id 254 (refused)"
    if stored < 0:
        return "not in the label map (refused)"
    name = names[stored] if names and stored < len(names) else "class_%d" % stored
    return "class %d %s" % (stored, name)


def entry(source, raw, to, names, color=None):
    """One mapping entry as data, with its words (`text`)."""
    what = "%s (%s)" % (_raw_words(source, raw), ",".join(map(str, color))) if color is not None else _raw_words(source, raw)
    return {"source": source, "raw": raw, "color": list(color) if color is not None else None, "to": int(to),
            "name": "ignore" if to == IGNORE_LABEL else (names[to] if names and 0 <= to < len(names) else "class_%d" % to),
            "text": "%s → %s" % (what, _class_words(int(to), names))}


def _raw_words(source, raw):
    if source == "colour":
        return "colour (%s)" % ",".join(map(str, raw))
    return "%s %d" % (source, raw)


MAX_DESCRIBED = 64
"""Mapping entries kept in a description (a 150-class set lists its first 64)."""


def describe(kind, entries, extra=()):
    """{"kind", "text": [lines], "entries": [...]} for the check and `dataset.json`; `extra`: leading lines."""
    entries = sorted(entries, key=lambda e: (e["to"] == IGNORE_LABEL, e["to"], str(e["raw"])))
    lines = list(extra) + [e["text"] for e in entries[:MAX_DESCRIBED]]
    if len(entries) > MAX_DESCRIBED:
        lines.append("... and %d more" % (len(entries) - MAX_DESCRIBED))
    return {"kind": kind, "text": lines, "entries": entries[:MAX_DESCRIBED]}
