"""What recognising a standard layout yields (`Detection`), and the file helpers layouts share.

A detection is pure data read from the file system: the pairs of each split, the class
table, how raw label values become class ids, and sentences saying what was found, so the
form, the CLI and the API can show the user exactly what will be built before anything is.
"""

import dataclasses
import os

from ...errors import ValidationError
from ..palette import IGNORE_LABEL

SPLITS = ("train", "val")
"""Splits a dataset holds; layouts map their own split names (training, validation) onto these."""

EXAMPLES = 3
"""File pairs listed per split in a detection summary."""


@dataclasses.dataclass
class Detection:
    """A recognised layout.

    Args:
        splits: "train"/"val" → [(stem, image_path, label_path)], sorted by stem. For layouts
            whose labels must first be converted (COCO JSON, SBD .mat), `label_path` is where the
            converted index PNG will be written (see `layouts.prepare`).
        label_map: raw label value → class id or 255 (None: raw values are class ids).
        ignore_values: raw values stored as 255 (ignore); listed for the user, also in `label_map`.
        options: layout-specific choices that reproduce this detection (e.g. COCO categories).
    """

    layout: str
    title: str
    root: str
    splits: dict
    classes: list
    colors: list
    label_map: dict = None
    ignore_values: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    options: dict = dataclasses.field(default_factory=dict)
    converted: bool = False

    def mapping_lines(self):
        """The raw value → class mapping in words, one line per run of values."""
        if not self.label_map:
            return ["label values are class ids (0..%d); 255 = ignore" % (len(self.classes) - 1)]
        out = []
        for raw in sorted(self.label_map):
            cls = self.label_map[raw]
            name = "ignore" if cls == IGNORE_LABEL else "class %d %s" % (cls, self.classes[cls])
            out.append("value %d → %s" % (raw, name))
        return out

    def to_dict(self):
        """The summary shown before creating: counts, example pairs, classes, mapping, notes."""
        return {
            "layout": self.layout, "title": self.title, "root": self.root,
            "splits": {s: {"count": len(p), "examples": [{"image": i, "label": lb} for _, i, lb in p[:EXAMPLES]]}
                       for s, p in self.splits.items()},
            "classes": [{"index": i, "name": n, "color": list(c)} for i, (n, c) in enumerate(zip(self.classes, self.colors))],
            "ignore_values": list(self.ignore_values),
            "label_map": {str(k): v for k, v in sorted((self.label_map or {}).items())},
            "mapping": self.mapping_lines(),
            "notes": list(self.notes), "options": dict(self.options), "converted": self.converted,
        }


class NotThisLayout(ValidationError):
    """The folder is not in this layout; the message says what was looked for."""


def find_dir(root, *candidates):
    """The first of `root/<candidate>` that is a folder (candidates may contain `/`), else None."""
    for c in candidates:
        path = os.path.join(root, c)
        if os.path.isdir(path):
            return path
    return None


def read_list(path):
    """Lines of a list file (ImageSets, SBD/`train.txt`), stripped, blank lines and `#` comments skipped."""
    try:
        with open(path, "r", encoding="utf-8-sig") as f:
            return [ln.strip() for ln in f if ln.strip() and not ln.strip().startswith("#")]
    except (OSError, UnicodeDecodeError) as e:
        raise ValidationError("cannot read the list file %s: %s (one entry per line, UTF-8 text)" % (path, e))


def files_by_stem(folder, suffix=""):
    """Map stem → path for files `<stem><suffix><ext>` directly in `folder` (no recursion)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        stem, ext = os.path.splitext(name)
        if not ext or (suffix and not stem.endswith(suffix)):
            continue
        out[stem[:len(stem) - len(suffix)] if suffix else stem] = os.path.join(folder, name)
    return out


def missing_report(what, missing, list_path=None):
    """A ValidationError for entries that name files which do not exist (first few listed)."""
    shown = ", ".join(missing[:5]) + (" and %d more" % (len(missing) - 5) if len(missing) > 5 else "")
    where = " (listed in %s)" % list_path if list_path else ""
    return ValidationError("%d %s do not exist%s: %s. Fix the list file or restore the files"
                           % (len(missing), what, where, shown), field="layout_root")


def identity_colors(n, palette):
    """The first `n` colours of `palette` (lists)."""
    return [list(c) for c in palette[:n]]
