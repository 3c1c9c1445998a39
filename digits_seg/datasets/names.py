"""Where each record of a dataset came from: `records.json`, the file stem and paths per record.

The LMDBs key records by number only (DIGITS' layout), so without this file a user who sees a
bad label in the explorer cannot find the file to fix. Creation writes it (before
`dataset.json`) in the final key order, after skipped pairs were left out. Paths are stored
relative to one folder per split and role, so 100k pairs stay a few MB:

    {"format": "digits-seg records 1",
     "splits": {"train": {"stems": [...], "images": [...], "labels": [...],
                          "image_root": "/data/voc/JPEGImages", "label_root": "...",
                          "image_origin": "folder", "label_origin": "folder"}, "val": ...}}

An origin is `folder` (root is the server folder the files are still in), `upload` (root is
relative to the uploaded zip, whose files are removed once the dataset is built) or
`converted` (labels converted from COCO JSON / SBD .mat into a folder that is removed too: root
is the layout folder holding the annotations).
Datasets made before the file existed, and DIGITS-made folders, have none: readers return
None and pages show the record's number.
"""

import json
import os

from .. import fsutil

NAMES_FILE = "records.json"
"""The file beside `dataset.json` naming each record's source files."""

FORMAT = "digits-seg records 1"
UPLOAD_WORDS = " (in the uploaded zip)"
"""Said after a path inside an uploaded zip (its extracted files are gone once the dataset is built)."""


def _root_of(paths):
    dirs = {os.path.dirname(os.path.abspath(p)) for p in paths}
    return os.path.commonpath(sorted(dirs)) if dirs else ""


def _origin(root, job_dir, params):
    """(origin, root as stored) for a folder the files of one split and role lie in."""
    job = os.path.abspath(job_dir) if job_dir else None
    masks = params.get("masks_dir")
    if masks and _inside(root, masks):
        return "converted", params.get("layout_root") or ""  # the converted files go: name the annotations
    if job and _inside(root, job):
        # an uploaded zip is extracted into <upload>/data (possibly one top folder deeper)
        base = os.path.join(job, "upload", "data")
        if not _inside(root, base):
            base = job
        rel = os.path.relpath(root, base)
        return "upload", "" if rel == "." else rel
    return "folder", root


def _inside(path, folder):
    folder = os.path.abspath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def split_record(pairs, job_dir=None, params=None):
    """The stored form of one split: `pairs` are (stem, image path, label path) in key order."""
    params = params or {}
    out = {"stems": [p[0] for p in pairs]}
    for role, col in (("image", 1), ("label", 2)):
        paths = [os.path.abspath(p[col]) for p in pairs]
        root = _root_of(paths)
        origin, stored = _origin(root, job_dir, params)
        cut = len(root.rstrip(os.sep)) + 1  # every path lies under root: cut it off (relpath costs 10x more)
        out[role + "s"] = [p[cut:] for p in paths]
        out[role + "_root"] = stored
        out[role + "_origin"] = origin
    return out


def write_names(path, splits, job_dir=None, params=None):
    """Write `records.json` atomically; `splits` maps a split to its (stem, image, label) list in key order."""
    data = {"format": FORMAT, "splits": {s: split_record(pairs, job_dir, params) for s, pairs in splits.items()}}
    # compact: indentation would put each of 100k names on its own indented line
    fsutil.write_bytes_atomic(path, json.dumps(data, separators=(",", ":")).encode("utf-8"))


class RecordNames:
    """The sources of a dataset's records; `get(split, k)` → {stem, image, label} or None."""

    def __init__(self, data):
        self._splits = data.get("splits") or {}

    @classmethod
    def load(cls, dataset_dir):
        """Read `records.json`; None when the dataset has none (made before it existed, or by DIGITS)."""
        path = os.path.join(dataset_dir, NAMES_FILE)
        if not os.path.isfile(path):
            return None
        return cls(fsutil.read_json(path))

    def get(self, split, index):
        s = self._splits.get(split)
        if not s or not 0 <= index < len(s["stems"]):
            return None
        out = {"stem": s["stems"][index]}
        for role in ("image", "label"):
            root, origin = s.get(role + "_root") or "", s.get(role + "_origin", "folder")
            if origin == "converted":
                out[role] = "converted from the annotations in %s" % (root or "the dataset's layout folder")
            else:
                out[role] = os.path.join(root, s[role + "s"][index]) + (UPLOAD_WORDS if origin == "upload" else "")
        return out

    def find(self, stem, splits=("train", "val")):
        """(split, index) of the first record named `stem` (exact, else case-insensitive), or None."""
        for match in (lambda a: a == stem, lambda a: a.lower() == stem.lower()):
            for split in splits:
                for k, a in enumerate((self._splits.get(split) or {}).get("stems", [])):
                    if match(a):
                        return split, k
        return None

    def caption(self, split, index):
        """What a page calls record `index`: its file stem, else "#index"."""
        rec = self.get(split, index)
        return rec["stem"] if rec else "#%d" % index


def record_name(dataset_dir, split, index):
    """The source {stem, image, label} of record `index` of `split`, or None for datasets made before names."""
    names = RecordNames.load(dataset_dir)
    return names.get(split, index) if names else None


def caption(names, split, index):
    """A record's caption from a `RecordNames` or None: its stem, else "#index"."""
    return names.caption(split, index) if names else "#%d" % index
