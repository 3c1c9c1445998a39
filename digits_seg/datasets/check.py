"""Pre-flight check of image/label folders: every problem, with file names, before anything is written."""

import collections

import numpy as np

from ..errors import JobAborted
from . import mapping, sixteen_bit
from .palette import IGNORE_LABEL, default_class_names, parse_colormap_file
from . import plan as plan_mod
from .pool import ordered_map
from .process import DEFAULT_MAX_PIXELS, process_pair

MAX_FILES_LISTED = 20
"""File names listed per problem in a report (the count is always exact)."""

ERROR_CODES = ("empty_folder", "missing_label", "missing_image", "duplicate_stem", "unreadable", "truncated",
               "bomb", "size_mismatch", "bad_values", "unknown_colors", "label_mode", "unmapped_values", "same_folder",
               "channels", "no_train_pairs", "no_good_pairs", "image_range")
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
        self.raw_values = np.zeros(256, dtype=bool)  # raw single-channel values seen (before any mapping)
        self.raw_big = set()  # raw 16-bit values above 255 seen (the first 256)
        self.palette_used = {}  # (palette index, (r, g, b)) -> stored id, palette labels read by colour
        self.unmapped = {}  # raw value -> [pixels, files] missing from the label map
        self.ignored_unknown = {}  # "r,g,b" -> [pixels, files] sent to ignore as unknown colours
        self.alpha = {True: [], False: []}  # uniform alpha? -> RGBA image files
        self.split_values = {}  # split -> stored-value pixel counts
        self.grey16 = sixteen_bit.Survey()  # 16-bit greyscale images: value range, sBIT

    def add(self, r, split=None):
        for p in r["problems"]:
            self.by_code.setdefault(p["code"], []).append((p["message"], p["files"][0]))
        for v in r.get("raw_values", ()):
            if v < 256:
                self.raw_values[v] = True
            elif len(self.raw_big) < 256:
                self.raw_big.add(v)  # 16-bit labels
        for i, c, k, _ in r.get("palette_used", ()):
            self.palette_used[(i, tuple(c))] = k
        for v, n in r.get("unmapped", {}).items():
            entry = self.unmapped.setdefault(int(v), [0, []])
            entry[0] += n
            entry[1].append(r["label_path"])
        for color, n in r.get("ignored_colors", {}).items():
            entry = self.ignored_unknown.setdefault(color, [0, []])
            entry[0] += n
            if len(entry[1]) < 5:
                entry[1].append(r["label_path"])
        if "grey16" in r:
            self.grey16.add(r["grey16"], r["image_path"])
        if "alpha" in r and len(self.alpha[r["alpha"]]) < 1000:
            self.alpha[r["alpha"]].append(r["image_path"])
        if split is not None and "label_counts" in r and not r["problems"]:
            self.split_values.setdefault(split, np.zeros(256, dtype=np.int64))
            self.split_values[split] += r["label_counts"]
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

    def seen_raw(self):
        """Raw single-channel label values seen, sorted (16-bit ones too)."""
        return np.flatnonzero(self.raw_values).tolist() + sorted(self.raw_big)

    def finish(self, report, tolerance=0, names=None, by_color=False, plan=None):
        """Add grouped problems and warnings to `report` (`names`: class names for messages;
        `by_color`: palette labels are read by colour; `plan`: whose colours unknown colours are measured against)."""
        for code, items in self.by_code.items():
            if code in ("unknown_colors", "unmapped_values"):
                continue
            items = sorted(items, key=lambda item: item[1])  # by file, not by the train/val order they were read in
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
            report.add("error", "unknown_colors", "%d label pixels in %d colours are not in the colour map%s: %s. %s%s"
                       % (total, len(self.unknown), " (tolerance %d)" % tolerance if tolerance else "", desc,
                          unknown_colors_fix(self.unknown, plan),
                          "; palette labels are read by colour when a colour file is given: if their palette "
                          "indices already are the class ids, give a class-names file instead" if by_color else ""),
                       files)
        for v, (n, files) in sorted(self.unmapped.items()):
            report.add("error", "unmapped_values", "label value %d in file %s is not in the label map (%d px in %d "
                       "file(s)): add it to the label map (e.g. %d:255 to ignore it)" % (v, files[0], n, len(files), v),
                       files)
        if self.ignored_unknown:
            total = sum(v[0] for v in self.ignored_unknown.values())
            worst = sorted(self.ignored_unknown.items(), key=lambda kv: -kv[1][0])[:10]
            report.add("warning", "unknown_colors_ignored", "%d label pixels in %d colours in no class were stored as "
                       "ignore (255), as asked: %s" % (total, len(self.ignored_unknown), "; ".join(
                           "(%s): %d px, e.g. %s" % (c, v[0], v[1][0]) for c, v in worst)),
                       sorted({f for v in self.ignored_unknown.values() for f in v[1]}))
        if self.alpha[False]:
            report.add("warning", "rgba_images", "%d RGBA image(s) have varying transparency: the alpha channel is "
                       "dropped, so the network sees the colour under transparent pixels; flatten them onto a "
                       "background first if that colour is meaningless" % len(self.alpha[False]), self.alpha[False])
        if self.alpha[True]:
            report.add("warning", "rgba_images", "%d RGBA image(s) with uniform alpha: the alpha channel is dropped "
                       "(harmless)" % len(self.alpha[True]), self.alpha[True])
        if len(self.palettes) > 1:
            report.add("warning", "palettes_differ", "label files use %d different palettes (first of each listed); "
                       "%s" % (len(self.palettes), "each file's indices are read by its own palette's colours" if by_color else
                              "class indices are used as they are, colours come from the first file"),
                       list(self.palettes.values()))
        for note, files in self.notes.items():
            report.add("warning", "note", "%s (%d file(s))" % (note, len(files)), files)
        if self.nearest_pixels:
            worst = sorted(self.nearest.items(), key=lambda kv: -kv[1][1])[:8]
            desc = ", ".join("(%s) → %s: %d px" % (c, names[k] if names and k < len(names) else "class %d" % k, n)
                             for c, (k, n) in worst)
            report.add("warning", "nearest_colour", "%d label pixels were off the colour map and mapped to the nearest "
                       "colour within tolerance %d: %s" % (self.nearest_pixels, tolerance, desc))


def task_config(plan, params, build, mean_image=False, significant_bits=None):
    """The plain-data config passed to `process_pair` (`significant_bits`: found by creation for `bits`)."""
    return {"rules": plan.rules, "channels": params.get("channels", "rgb"), "encoding": params.get("encoding", "png"),
            "resize": params.get("resize"), "resize_mode": params.get("resize_mode", "squash"),
            "max_pixels": params.get("max_pixels", DEFAULT_MAX_PIXELS), "build": build, "mean_image": mean_image,
            "significant_bits": significant_bits or sixteen_bit.explicit_bits(params.get("sixteen_bit"))}


def sixteen_bit_report(report, col, params, bits=None):
    """Say what happens to 16-bit greyscale images; a warning when the choice crushes them; the record.

    Args:
        bits: the significant bits creation resolved (None: resolve them from what `col` saw).
    """
    rec = col.grey16.describe(params.get("sixteen_bit"), bits)
    if rec.get("crushed"):
        report.add("warning", "sixteen_bit", rec["advice"], col.grey16.files)
    if col.grey16.sbit_exceeded:
        path, sbit, top = col.grey16.sbit_exceeded
        report.add("warning", "sixteen_bit", "%s declares %d significant bits (sBIT) but has values up to %d: "
                   "its sBIT chunk is wrong; `bits` goes by the values" % (path, sbit, top), [path])
    return rec


NEAR_LEVELS = 16
"""Colours farther than this (levels, in the worst channel) from every colour-map colour are not compression noise."""


def unknown_colors_fix(unknown, plan):
    """The fix for colours in no class, from how far they are from the colours they are read against: a tolerance
    only when every one is near a colour-map colour, else the colour map itself (or, without one, giving it)."""
    generic = "Fix the colour map or declare them ignore (--ignore-color R,G,B)"
    colors = plan and (plan.rules["colormap"] or plan.colormap)
    if not colors:
        return generic + ", or allow nearest-colour matching within a tolerance if these are compression noise"
    cmap = np.asarray(colors, np.int64).reshape(-1, 3)
    dist = {c: int(np.abs(cmap - [int(v) for v in c.split(",")]).max(axis=1).min()) for c in unknown}
    source = plan.mapping.get("colors_from") or "the colour map"
    lead = ""
    if source == "the PASCAL VOC palette":
        lead = ("No colour-map file was given, so these RGB labels are read through the PASCAL VOC palette: give the "
                "file that lists the labels' colours (Colour map file, --colormap; e.g. class_dict.csv). ")
    near = sorted(d for d in dist.values() if d <= NEAR_LEVELS)
    if len(near) == len(dist):
        return lead + ("Every one is within %d level(s) of a colour in %s: if they are compression noise, set the "
                       "nearest-colour tolerance to %d (--color-tolerance %d); otherwise f%s"
                       % (near[-1], source, near[-1], near[-1], generic[1:]))
    if near:
        return lead + ("%d of them are within %d level(s) of a colour in %s (a nearest-colour tolerance of %d maps "
                       "those); the others are farther than %d levels from every colour in it. %s"
                       % (len(near), near[-1], source, near[-1], NEAR_LEVELS, generic))
    closest = min(dist, key=dist.get)
    return lead + ("None is within %d levels of a colour in %s (the closest, (%s), is %d levels away), so they are not "
                   "compression noise: check that it is the colour map of these labels. %s"
                   % (NEAR_LEVELS, source, closest, dist[closest], generic))


def check_folders(params, settings=None, workers=2, on_progress=None, should_stop=None):
    """Decode every pair with the rules creation uses and report all problems and what was found; writes nothing.

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
            col.add(r, pairs[r["index"]][0])
            if on_progress:
                on_progress(n / max(1, len(tasks)), "checked %d of %d pairs" % (n, len(tasks)))
    seen = [int(v) for v in np.nonzero(col.values)[0]]
    plan = plan_mod.make_plan(params, binary_values=seen)
    values = col.values
    value_images = col.value_images
    if plan.binary:
        values = _binary(col.values)
        value_images = _binary(col.value_images)
        col.split_values = {s: _binary(v) for s, v in col.split_values.items()}
        col.by_code.pop("bad_values", None)
    elif plan.rules["num_classes"] is not None:
        n = plan.rules["num_classes"]
        bad = [v for v in seen if v >= n and v != 255]
        if bad:
            files = sorted({f for v in bad for f in col.value_files.get(v, [])})
            report.add("error", "bad_values", "label values %s are ≥ the number of classes (%d) and are not 255 "
                       "(ignore): fix the labels or the class list%s" % (bad, n, _bad_values_hint(plan)), files)
        col.by_code.pop("bad_values", None)
    col.finish(report, plan.rules["tolerance"], plan.class_names, by_color=plan.rules["palette_by_color"], plan=plan)
    for note in plan.notes:
        report.add("warning", "note", note)
    if plan.pairings[0][1].suggested_suffix:
        report.add("warning", "suffix", "label names end with %r: set the label suffix to %r to pair them"
                   % ((plan.pairings[0][1].suggested_suffix,) * 2))
    names = plan.class_names or default_class_names(plan_mod.class_count(plan, [v for v in seen if v != 255]))
    _dataset_warnings(report, plan, params, col, names)
    grey16 = sixteen_bit_report(report, col, params)
    mapping_desc = plan_mod.describe(plan, names, col.seen_raw(), col.palette_used)
    refused = sum(v[0] for v in col.unknown.values())
    report.summary = {
        "pairs": {s: len(plan.splits[s]) for s in ("train", "val")},
        "bad_pairs": len(col.bad_pairs),
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
        # colours in no class are counted at 255 while checking, but they are refused, not ignored
        "ignore_pixels": int(values[255]) - refused if not plan.binary else 0,
        "ignore_share": float(values[255] - refused) / max(1, int(values.sum())) if not plan.binary else 0.0,
        "refused_pixels": refused, "refused_share": refused / max(1, int(values.sum())),
        "values_seen": seen,
        "raw_values_seen": col.seen_raw(),
        "mapping": mapping_desc,
        "ignore_choices": _ignore_choices(plan, params, col),
    }
    if grey16["images"]:
        report.summary["sixteen_bit"] = grey16
    return report


def _binary(counts):
    out = np.zeros(256, dtype=np.int64)
    out[:2] = counts[0], counts[255]
    return out


def _bad_values_hint(plan):
    if plan.mapping.get("label_map"):
        return ""
    return "; or declare values that mean \"unlabelled\" as ignore (--ignore VALUE), or give a label map"


def _dataset_warnings(report, plan, params, col, names):
    """What no single pair shows: empty validation, classes absent from a split, channel mixes, void classes."""
    if not plan.splits["val"] and plan.splits["train"]:
        report.add("warning", "no_val_pairs", "0 validation pairs: training cannot report validation accuracy or "
                   "keep the best snapshot; set a validation percentage or give validation folders")
    if not plan.splits["train"] and plan.splits["val"]:
        report.add("error", "no_train_pairs", "no training pairs: the validation share takes every pair; lower the "
                   "validation percentage")
    if not plan.binary:
        for split in ("train", "val"):
            counts = col.split_values.get(split)
            if counts is None or not plan.splits[split]:
                continue
            missing = [i for i in range(len(names)) if counts[i] == 0]
            if missing:
                shown = ", ".join("`%s` (%d)" % (names[i], i) for i in missing[:20])
                report.add("warning", "class_absent", "%d class(es) never occur in the %s split: %s%s" % (
                    len(missing), split, shown, ": the model cannot learn them" if split == "train" else
                    ": their accuracy cannot be measured"))
    if params.get("channels") == "keep":
        grey = {m for m in col.image_modes if m in ("L", "1", "I;16", "I;16B", "I;16L", "I", "F", "LA")}
        if grey and set(col.image_modes) - grey:
            report.add("error", "channels", "images mix greyscale and colour modes %s with channels=keep; choose RGB or "
                       "greyscale conversion" % sorted(col.image_modes))
    m = plan.mapping
    if plan.rules["palette_by_color"] and col.palette_used:
        moved = [(i, c, k) for (i, c), k in sorted(col.palette_used.items()) if k != i and k != 255]
        if moved:
            report.add("warning", "palette_order", "the labels' palette order differs from %s: the labels are mapped "
                       "by colour (%s)" % (m["colors_from"], "; ".join(
                           "palette index %d (%s) → class %d %s" % (i, ",".join(map(str, c)), k,
                                                                     names[k] if k < len(names) else "")
                           for i, c, k in moved[:8])))
    for choice in _void_classes(plan, params):
        report.add("warning", "void_class", "class %s is named like a void class: declare it ignore (%s) so it is "
                   "not learnt as a class" % (choice["what"], choice["how"]))


def _void_classes(plan, params):
    """Classes of the class/colour file named like void/unlabelled, with how to declare them ignore."""
    names = plan_mod._class_names(params)
    colors = None
    if params.get("class_colors") or params.get("colormap_source") == "file":
        colors, file_names = ((params["class_colors"], None) if params.get("class_colors")
                              else parse_colormap_file(params["colormap_file"]))
        names = names or file_names
    declared_v = set(plan.mapping.get("ignore_values") or ())
    declared_c = {tuple(c) for c in plan.mapping.get("ignore_colors") or ()}
    out = []
    for i, name in enumerate(names or ()):
        if not mapping.looks_void(name):
            continue
        by_color = plan.rules["colormap"] is not None and colors is not None and i < len(colors)
        if by_color and tuple(colors[i]) not in declared_c:
            rgb = ",".join(map(str, colors[i]))
            out.append({"what": "%d `%s` (%s)" % (i, name, rgb), "how": "--ignore-color %s" % rgb, "color": list(colors[i]),
                        "name": name})
        elif not by_color and i not in declared_v and not plan.mapping.get("label_map"):
            out.append({"what": "%d `%s`" % (i, name), "how": "--ignore %d" % i, "value": i, "name": name})
    return out


def _ignore_choices(plan, params, col):
    """Values and colours the form offers to declare ignore: what was seen, void-named classes first."""
    void = _void_classes(plan, params)
    values = [{"value": v, "suggested": any(c.get("value") == v for c in void)}  # 255 is ignore already
              for v in col.seen_raw() if v != IGNORE_LABEL] if not plan.binary else []  # 0/255 masks: both are classes
    colors = [{"color": [int(x) for x in c.split(",")], "pixels": n, "unknown": True}
              for c, (n, _) in sorted(col.unknown.items(), key=lambda kv: -kv[1][0])[:20]]
    colors += [{"color": c["color"], "name": c["name"], "suggested": True} for c in void if "color" in c]
    return {"values": values, "colors": colors}
