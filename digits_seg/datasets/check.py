"""Pre-flight check of image/label folders: every problem, with file names, before anything is written."""

import collections

import numpy as np

from ..errors import JobAborted
from . import plan as plan_mod
from .pool import ordered_map
from .process import DEFAULT_MAX_PIXELS, process_pair

MAX_FILES_LISTED = 20
"""File names listed per problem in a report (the count is always exact)."""

ERROR_CODES = ("empty_folder", "missing_label", "missing_image", "duplicate_stem", "unreadable", "truncated",
               "bomb", "size_mismatch", "bad_values", "unknown_colors", "label_mode")
"""Codes of report errors (the web page and API clients may switch on them)."""


class CheckReport:
    """Errors and warnings (each {code, message, files, count}) plus a summary of what was found."""

    def __init__(self):
        self.errors = []
        self.warnings = []
        self.summary = {}

    @property
    def ok(self):
        return not self.errors

    def add(self, severity, code, message, files=()):
        files = list(files)
        entry = {"code": code, "message": message, "files": files[:MAX_FILES_LISTED], "count": len(files)}
        (self.errors if severity == "error" else self.warnings).append(entry)

    def to_dict(self):
        return {"ok": self.ok, "errors": self.errors, "warnings": self.warnings, "summary": self.summary}

    def lines(self):
        """Human-readable lines for the CLI and the job log."""
        out = []
        for kind, entries in (("ERROR", self.errors), ("warning", self.warnings)):
            for e in entries:
                out.append("%s: %s" % (kind, e["message"]))
                for f in e["files"]:
                    out.append("    %s" % f)
                if e["count"] > len(e["files"]):
                    out.append("    ... and %d more" % (e["count"] - len(e["files"])))
        return out


class Collector:
    """Aggregate per-pair results into grouped report entries and dataset-wide observations."""

    def __init__(self):
        self.by_code = collections.OrderedDict()  # code -> [(message, file)]
        self.unknown = {}  # "r,g,b" -> [pixels, files]
        self.sizes = collections.Counter()
        self.label_modes = collections.Counter()
        self.image_modes = collections.Counter()
        self.values = np.zeros(256, dtype=np.int64)
        self.value_images = np.zeros(256, dtype=np.int64)
        self.palettes = collections.OrderedDict()  # palette checksum -> first file
        self.notes = collections.OrderedDict()
        self.nearest_pixels = 0
        self.bad_pairs = []  # (stem, image_path, label_path, first message)
        self.value_files = {}  # value -> first files holding it
        self._listed = np.zeros(256, dtype=np.int64)  # len(value_files[v]), to skip full lists fast
        self.nearest = {}  # "r,g,b" -> [class index, pixels] mapped through the tolerance

    def add(self, r):
        for p in r["problems"]:
            self.by_code.setdefault(p["code"], []).append((p["message"], p["files"][0]))
        for color, n in r.get("unknown_colors", {}).items():
            entry = self.unknown.setdefault(color, [0, []])
            entry[0] += n
            if len(entry[1]) < 5:
                entry[1].append(r["label_path"])
        if r["problems"]:
            self.bad_pairs.append((r["stem"], r["image_path"], r["label_path"], r["problems"][0]["message"]))
        if "size" in r:
            self.sizes["%dx%d" % tuple(r["size"])] += 1
            self.label_modes[r["label_mode"]] += 1
            self.image_modes[r["image_mode"]] += 1
        if "label_counts" in r:
            self.values += r["label_counts"]
            self.value_images += r["label_counts"] > 0
            for v in np.flatnonzero((r["label_counts"] > 0) & (self._listed < MAX_FILES_LISTED)):
                self.value_files.setdefault(int(v), []).append(r["label_path"])
                self._listed[v] += 1
        if "palette" in r and len(self.palettes) < 10:
            self.palettes.setdefault(r["palette"], r["label_path"])
        for n in r["notes"]:
            self.notes.setdefault(n.split(": ", 1)[-1], []).append(n.split(": ", 1)[0])
        self.nearest_pixels += r.get("nearest_pixels", 0)
        for color, (cls, n) in r.get("nearest_colors", {}).items():
            entry = self.nearest.setdefault(color, [cls, 0])
            entry[1] += n

    def finish(self, report, tolerance=0, names=None):
        """Add grouped problems and warnings to `report` (`names`: class names for messages)."""
        for code, items in self.by_code.items():
            if code == "unknown_colors":
                continue
            files = [f for _, f in items]
            if len(items) == 1:
                report.add("error", code, items[0][0], files)
            else:
                report.add("error", code, "%d files: %s (first: %s)" % (len(items), code.replace("_", " "), items[0][0]), files)
        if self.unknown:
            total = sum(v[0] for v in self.unknown.values())
            worst = sorted(self.unknown.items(), key=lambda kv: -kv[1][0])[:10]
            desc = "; ".join("(%s): %d px, e.g. %s" % (c, v[0], v[1][0]) for c, v in worst)
            files = sorted({f for v in self.unknown.values() for f in v[1]})
            report.add("error", "unknown_colors", "%d label pixels in %d colours are not in the colour map%s: %s. Fix the "
                       "colour map, or allow nearest-colour matching within a tolerance (e.g. 2 levels) if these are "
                       "compression noise" % (total, len(self.unknown),
                                              " (tolerance %d)" % tolerance if tolerance else "", desc), files)
        if len(self.palettes) > 1:
            report.add("warning", "palettes_differ", "label files use %d different palettes (first of each listed); "
                       "class indices are used as they are, colours come from the first file" % len(self.palettes),
                       list(self.palettes.values()))
        for note, files in self.notes.items():
            report.add("warning", "note", "%s (%d file(s))" % (note, len(files)), files)
        if self.nearest_pixels:
            worst = sorted(self.nearest.items(), key=lambda kv: -kv[1][1])[:8]
            desc = ", ".join("(%s) → %s: %d px" % (c, names[k] if names and k < len(names) else "class %d" % k, n)
                             for c, (k, n) in worst)
            report.add("warning", "nearest_colour", "%d label pixels were off the colour map and mapped to the nearest "
                       "colour within tolerance %d: %s" % (self.nearest_pixels, tolerance, desc))


def task_config(plan, params, build, mean_image=False):
    """The plain-data config passed to `process_pair`."""
    return {"rules": plan.rules, "channels": params.get("channels", "rgb"), "encoding": params.get("encoding", "png"),
            "resize": params.get("resize"), "resize_mode": params.get("resize_mode", "squash"),
            "max_pixels": params.get("max_pixels", DEFAULT_MAX_PIXELS), "build": build, "mean_image": mean_image}


def check_folders(params, settings=None, workers=2, on_progress=None, should_stop=None):
    """Decode every pair and report all problems and what was found; writes nothing.

    `should_stop()` returning True raises `JobAborted` between pairs (the workers are stopped).
    """
    report = CheckReport()
    raw_plan = plan_mod.make_plan(dict(params, binary="no"))
    for sev, code, msg, files in raw_plan.problems:
        report.add(sev, code, msg, files)
    pairs = [(split, p) for split in ("train", "val") for p in raw_plan.splits[split]]
    raw_cfg = task_config(raw_plan, params, build=False)
    raw_cfg["rules"] = dict(raw_cfg["rules"], num_classes=None)
    col = Collector()
    tasks = [(i, p[0], p[1], p[2]) for i, (_, p) in enumerate(pairs)]
    with ordered_map(process_pair, tasks, workers, shared=raw_cfg) as results:
        for n, r in enumerate(results, 1):
            if should_stop and should_stop():
                raise JobAborted()
            col.add(r)
            if on_progress:
                on_progress(n / max(1, len(tasks)), "checked %d of %d pairs" % (n, len(tasks)))
    seen = [int(v) for v in np.nonzero(col.values)[0]]
    plan = plan_mod.make_plan(params, binary_values=seen)
    values = col.values
    value_images = col.value_images
    if plan.binary:
        values = np.zeros(256, dtype=np.int64)
        values[:2] = col.values[0], col.values[255]
        value_images = np.zeros(256, dtype=np.int64)
        value_images[:2] = col.value_images[0], col.value_images[255]
        col.by_code.pop("bad_values", None)
    elif plan.rules["num_classes"] is not None:
        n = plan.rules["num_classes"]
        bad = [v for v in seen if v >= n and v != 255]
        if bad:
            files = sorted({f for v in bad for f in col.value_files.get(v, [])})
            report.add("error", "bad_values", "label values %s are ≥ the number of classes (%d) and are not 255 "
                       "(ignore): fix the labels or the class list" % (bad, n), files)
        col.by_code.pop("bad_values", None)
    col.finish(report, plan.rules["tolerance"], plan.class_names)
    for note in plan.notes:
        report.add("warning", "note", note)
    if plan.pairings[0][1].suggested_suffix:
        report.add("warning", "suffix", "label names end with %r: set the label suffix to %r to pair them"
                   % ((plan.pairings[0][1].suggested_suffix,) * 2))
    names = plan.class_names or ["class_%d" % i for i in range(max([v for v in seen if v != 255] or [-1]) + 1)]
    report.summary = {
        "pairs": {s: len(plan.splits[s]) for s in ("train", "val")},
        "label_suffix": plan.pairings[0][1].suffix,
        "sizes": dict(col.sizes.most_common()),
        "variable_size": len(col.sizes) > 1 and not params.get("resize"),
        "image_modes": dict(col.image_modes), "label_modes": dict(col.label_modes),
        "binary_mask": plan.binary,
        "num_classes": len(names),
        "colormap_source": plan.colormap_source,
        "classes": [{"index": i, "name": names[i] if i < len(names) else "class_%d" % i,
                     "color": list(plan.colormap[i]) if i < len(plan.colormap) else [0, 0, 0],
                     "pixels": int(values[i]), "images": int(value_images[i])}
                    for i in range(max(len(names), 1))],
        "ignore_pixels": int(values[255]) if not plan.binary else 0,
        "values_seen": seen,
    }
    return report
