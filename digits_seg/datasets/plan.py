"""Turn validated params into a plan: paired files per split, class names, colour map, label rules.

Shared by the pre-flight check and by creation so both see the same pairs and rules.
"""

import dataclasses
import os

from ..errors import ValidationError
from . import mapping
from . import palette as pal
from .labels import is_binary_mask
from .pairing import pair_folders, split_pairs

IGNORE = pal.IGNORE_LABEL

BINARY_SAMPLE = 8
"""Labels decoded up front to auto-detect a 0/255 binary mask during creation."""


@dataclasses.dataclass
class Plan:
    """What a dataset job will read and how it interprets labels."""

    splits: dict  # "train"/"val" -> [(stem, image_path, label_path)]
    pairings: list  # (split or "all", Pairing)
    label_mode: str  # mode of the first label
    class_names: list  # None when unknown until all labels are read
    colormap: list  # [r, g, b] per class (may be longer than the classes while unknown)
    colormap_source: str
    rules: dict  # LabelRules fields
    binary: bool
    problems: list = dataclasses.field(default_factory=list)  # (severity, code, message, files)
    notes: list = dataclasses.field(default_factory=list)
    skipped_files: list = dataclasses.field(default_factory=list)  # unpaired files left out with "skip bad pairs"
    mapping: dict = dataclasses.field(default_factory=dict)  # kind + what was declared (see `describe`)
    first_palette: list = None  # the first palette label's palette, for describing index mappings


def _pairing_problems(pairing, images_dir, labels_dir, problems):
    if not pairing.pairs and not pairing.images_without_label and not pairing.duplicate_stems:
        problems.append(("error", "empty_folder", "image folder %s contains no images (looked for .png, .jpg, "
                         ".jpeg, .bmp, .tif, ... recursively)" % images_dir, [images_dir]))
    if not pairing.pairs and not pairing.labels_without_image and not pairing.duplicate_stems:
        problems.append(("error", "empty_folder", "label folder %s contains no label images" % labels_dir, [labels_dir]))
    hint = pairing.hint()
    if pairing.images_without_label:
        problems.append(("error", "missing_label", "%d image(s) in %s have no label with the same name%s"
                         % (len(pairing.images_without_label), images_dir, " (%s)" % hint if hint else ""),
                         pairing.images_without_label))
    if pairing.labels_without_image:
        problems.append(("error", "missing_image", "%d label(s) in %s have no image with the same name%s"
                         % (len(pairing.labels_without_image), labels_dir, " (%s)" % hint if hint else ""),
                         pairing.labels_without_image))
    if _one_tree(pairing, images_dir, labels_dir, problems):
        return
    for stem, paths in sorted(pairing.duplicate_stems.items()):
        problems.append(("error", "duplicate_stem", "name %r occurs %d times (%s): pairs are matched by file name "
                         "without extension, so rename or remove the extra files" % (stem, len(paths), ", ".join(paths)),
                         paths))


def _one_tree(pairing, images_dir, labels_dir, problems):
    """Both folders are one top folder holding images and labels in subfolders: every name is found twice on each
    side, so nothing pairs; one error naming the subfolders replaces a duplicate-name error per file."""
    if pairing.pairs or not pairing.duplicate_stems or os.path.realpath(images_dir) != os.path.realpath(labels_dir):
        return False
    subs = sorted(d for d in os.listdir(images_dir) if os.path.isdir(os.path.join(images_dir, d)))
    stem, paths = min(pairing.duplicate_stems.items())
    example = sorted(set(paths))[:4]
    problems.append(("error", "same_folder", "the image folder and the label folder are the same folder (%s), which "
                     "holds images and labels under the same names (%d names, e.g. %r: %s), so nothing pairs: give its "
                     "image subfolder as the image folder and its label subfolder as the label folder%s"
                     % (images_dir, len(pairing.duplicate_stems), stem, ", ".join(example),
                        " (subfolders: %s)" % ", ".join(subs[:8]) if subs else ""), example))
    return True


def _same_folder(pairing, images_dir, labels_dir, problems):
    """Each file paired with itself: the label folder was given as the image folder (or vice versa)."""
    real = {}  # one realpath per folder, not per file: 1000 per-file realpaths cost 40 ms of a 0.7 s creation

    def where(path):
        folder, name = os.path.split(path)
        if folder not in real:
            real[folder] = os.path.realpath(folder)
        return real[folder], name
    selves = [img for _, img, lbl in pairing.pairs if where(img) == where(lbl)]
    if selves:
        problems.append(("error", "same_folder", "the image folder and the label folder are the same folder (%s): "
                         "%d file(s) would be paired with themselves; give the folder that holds the label images "
                         "(or set the label suffix, e.g. _L, if labels sit beside their images)"
                         % (images_dir, len(selves)), selves))


def _first_label_image(plan_splits):
    for pairs in plan_splits.values():
        if pairs:
            return pairs[0][2]
    return None


def _sample_binary(pairs):
    """Decode a few greyscale labels spread over the set; True when all hold only 0 and 255."""
    import numpy as np
    from PIL import Image

    if not pairs:
        return False
    step = max(1, len(pairs) // BINARY_SAMPLE)
    values = set()
    for _, _, path in pairs[::step][:BINARY_SAMPLE]:
        try:
            with Image.open(path) as im:
                if im.mode not in ("L", "I;16", "I"):
                    return False
                values.update(np.unique(np.asarray(im)).tolist())
        except Exception:
            continue
        if not values <= {0, 255}:
            return False
    return is_binary_mask(values)


def make_plan(params, binary_values=None):
    """Pair the folders and resolve classes, colour map and label rules.

    Args:
        binary_values: greyscale values seen in every label (the full check passes them);
            None samples a few labels instead.
    """
    problems = []
    if params.get("layout"):  # a standard layout lists its own pairs (layouts/params.py)
        from .layouts.params import layout_splits

        splits, pairings = layout_splits(params)
    else:
        splits, pairings = _pair(params, problems)
    return _finish_plan(params, splits, pairings, problems, binary_values)


def _pair(params, problems):
    main = pair_folders(params["images"], params["labels"], params.get("label_suffix", "auto"))
    _pairing_problems(main, params["images"], params["labels"], problems)
    _same_folder(main, params["images"], params["labels"], problems)
    pairings = [("train" if params.get("val_images") else "all", main)]
    if params.get("val_images"):
        val = pair_folders(params["val_images"], params["val_labels"], params.get("label_suffix", "auto"))
        _pairing_problems(val, params["val_images"], params["val_labels"], problems)
        _same_folder(val, params["val_images"], params["val_labels"], problems)
        pairings.append(("val", val))
        splits = {"train": main.pairs, "val": val.pairs}
    else:
        train, val = split_pairs(main.pairs, params.get("val_pct", 10), params.get("seed", 0))
        splits = {"train": train, "val": val}
    return splits, pairings


def _finish_plan(params, splits, pairings, problems, binary_values):
    first = _first_label_image(splits)
    label_mode = None
    first_palette = None
    if first:
        from PIL import Image
        try:
            with Image.open(first) as im:
                label_mode = im.mode
                if im.mode == "P":
                    first_palette = pal.palette_of(im)
        except Exception:
            label_mode = None  # reported per pair by the full pass

    names = _class_names(params)
    source = params.get("colormap_source", "labels")
    notes = []
    file_colors = None
    if params.get("class_colors"):
        source, file_colors, file_names = "file", [list(c) for c in params["class_colors"]], None
    elif source == "file":
        file_colors, file_names = pal.parse_colormap_file(params["colormap_file"])
    if file_colors is not None:
        if names and len(names) != len(file_colors):
            raise ValidationError("the class-names file lists %d classes but the colour map has %d colours; "
                                  "they must match line for line" % (len(names), len(file_colors)), field="classes_file")
        names = names or file_names
    elif source == "labels" and label_mode != "P":
        source = "default"  # greyscale/RGB labels carry no palette; the summary shows the source used

    ignore_values = sorted({int(v) for v in params.get("ignore_values") or ()})
    ignore_colors = sorted({tuple(int(c) for c in rgb) for rgb in params.get("ignore_colors") or ()})
    label_map = mapping.parse_label_map(params.get("label_map"))
    declared = bool(ignore_values or label_map)
    binary_opt = params.get("binary", "auto")
    grey = label_mode in ("L", "I;16", "I;16B", "I;16L", "I", "1", "LA")
    if binary_opt == "yes" and declared:
        raise ValidationError("a 0/255 binary mask cannot also have ignore values or a label map: set binary to "
                              "`no` to map values yourself", field="binary")
    if binary_opt == "yes":
        binary = True
    elif binary_opt == "no" or not grey or declared or (names and len(names) != 2):
        binary = False
    elif binary_values is not None:
        binary = is_binary_mask(binary_values)
    else:
        binary = _sample_binary(splits["train"] + splits["val"])
    if binary:
        names = names or ["background", "foreground"]
        if len(names) != 2:
            raise ValidationError("a 0/255 binary mask has 2 classes but the class-names file lists %d" % len(names),
                                  field="classes_file")
        notes.append("labels are 0/255 binary masks: 0 → class 0 (%s), 255 → class 1 (%s)" % tuple(names))

    if file_colors is not None:
        colormap = file_colors
    elif source == "labels" and first_palette:
        colormap = first_palette[:pal.MAX_CLASSES]
    else:
        colormap = pal.voc_palette(pal.MAX_CLASSES)
    if names:
        colormap = colormap[:len(names)]
        if len(colormap) < len(names):
            colormap = colormap + pal.voc_palette(256)[len(colormap):len(names)]
    rgb_labels = label_mode in ("RGB", "RGBA", "RGBX", "PA")
    by_color = label_mode == "P" and file_colors is not None and not label_map and not binary
    if rgb_labels and file_colors is None and params.get("colormap_source") in (None, "", "labels"):
        notes.append("RGB colour-coded labels without a colour-map file: their colours are read through the PASCAL "
                     "VOC palette (256 colours, e.g. (128,128,128) → class 7); give the labels' colour file "
                     "(Colour map file, --colormap; e.g. class_dict.csv) unless they are VOC-coloured")
        source = "default"
    color_mapped = (rgb_labels or by_color) and not binary
    raw_colormap = tuple(tuple(int(v) for v in c) for c in colormap)  # indexed by raw class position
    if color_mapped:
        _, dropped = mapping.color_entries(raw_colormap, ignore_colors)
        if ignore_values and rgb_labels:
            notes.append("ignore values %s apply to single-channel labels; these labels are RGB: declare ignore "
                         "colours instead" % ignore_values)
    else:
        dropped = mapping.ignored_positions(len(names) if names else len(colormap), ignore_values, label_map)
        if ignore_colors:
            notes.append("ignore colours %s apply to RGB labels and to palette labels read by colour; these labels "
                         "are read by value: declare ignore values instead" % [list(c) for c in ignore_colors])
    if names:
        names = mapping.drop_positions(names, dropped)
    if color_mapped or source != "default":  # default colours are by stored id, not by raw value
        colormap = mapping.drop_positions(colormap, dropped)
    num_classes = len(names) if names else (len(file_colors) - len(dropped) if file_colors else None)
    unknown = params.get("unknown_colors") or "refuse"
    lut = None if binary else mapping.value_lut(ignore_values, label_map)
    rules = {"colormap": raw_colormap if color_mapped else None,
             "tolerance": int(params.get("color_tolerance", 0)), "binary": binary, "num_classes": num_classes,
             "ignore_colors": tuple(ignore_colors) if color_mapped else (), "palette_by_color": by_color,
             "value_lut": tuple(lut) if lut is not None else None, "unknown_colors": unknown}
    kind = ("binary" if binary else "palette_by_color" if by_color else "colors" if rgb_labels
            else "palette_index" if label_mode == "P" else "values")
    mapping_info = {"kind": kind, "ignore_values": ignore_values, "ignore_colors": [list(c) for c in ignore_colors],
                    "label_map": {str(k): v for k, v in sorted(label_map.items())} if label_map else None,
                    "unknown_colors": unknown, "colors_from": _colors_from(params, source)}
    return Plan(splits=splits, pairings=pairings, label_mode=label_mode, class_names=names, colormap=colormap,
                colormap_source=source, rules=rules, binary=binary, problems=problems, notes=notes,
                mapping=mapping_info, first_palette=first_palette)


def class_count(plan, seen_ids):
    """Number of classes when no names are given: the colour file's classes (a class may have no pixel in
    these labels), else the largest class id seen + 1."""
    if plan.rules["num_classes"] is not None:
        return plan.rules["num_classes"]
    return max(seen_ids, default=-1) + 1


def _class_names(params):
    if params.get("class_names"):
        return [str(n) for n in params["class_names"]]
    return pal.parse_classes_file(params["classes_file"]) if params.get("classes_file") else None


def _colors_from(params, source):
    if params.get("class_colors"):
        return "the %s layout's class colours" % params["layout"] if params.get("layout") else "the class colours given"
    if source == "file":
        return "colour file %s" % os.path.basename(params.get("colormap_file") or "")
    return {"labels": "the labels' palette", "default": "the PASCAL VOC palette"}.get(source, source)


def describe(plan, names, raw_values=(), palette_used=None):
    """The label mapping of `plan` in words and as data (`mapping.describe`), with the declared ignore.

    Args:
        names: the final class names (after ignored classes were dropped).
        raw_values: raw single-channel values seen in the labels.
        palette_used: {(palette index, (r, g, b)): stored id} seen in palette labels read by colour.
    """
    m, rules = plan.mapping, plan.rules
    kind = m.get("kind", "values")
    lut = rules.get("value_lut")
    extra, entries = [], []

    def stored(v):
        if lut is None:
            return v if v <= IGNORE else mapping.OUT_OF_RANGE
        if v < len(lut):
            return lut[v]
        return mapping.UNMAPPED if m.get("label_map") else mapping.OUT_OF_RANGE

    if kind == "binary":
        entries = [mapping.entry("value", 0, 0, names), mapping.entry("value", 255, 1, names)]
    elif kind == "colors":
        extra.append("RGB labels: each colour → the class of that colour in %s" % m["colors_from"])
        table, _ = mapping.color_entries(rules["colormap"], rules["ignore_colors"])
        entries = [mapping.entry("colour", list(c), k, names) for c, k in table  # the classes there are
                   if k == IGNORE or k < len(names)]
    elif kind == "palette_by_color":
        extra.append("palette labels read by colour: palette index → its colour → the class of that colour in %s"
                     % m["colors_from"])
        entries = [mapping.entry("palette index", i, k, names, color=c) for (i, c), k in sorted((palette_used or {}).items())]
    else:
        pal_colors = plan.first_palette if kind == "palette_index" else None
        what = "palette index" if pal_colors else "value"
        extra.append("%s labels read by value: %s → class id%s (colours from %s)"
                     % ("palette" if pal_colors else "greyscale", what,
                        " through the label map" if m.get("label_map") else
                        ", ignored values removed and later classes moved down" if m.get("ignore_values") else "",
                        m["colors_from"]))
        entries = [mapping.entry(what, v, stored(v), names, color=pal_colors[v] if pal_colors else None)
                   for v in sorted(set(raw_values))]
    if m.get("ignore_values"):
        extra.append("ignore values declared: %s" % ", ".join(map(str, m["ignore_values"])))
    if m.get("ignore_colors"):
        extra.append("ignore colours declared: %s" % "; ".join("(%s)" % ",".join(map(str, c)) for c in m["ignore_colors"]))
    if kind in ("colors", "palette_by_color"):
        tol = int(rules.get("tolerance") or 0)
        if tol:
            extra.append("colours within %d level%s per channel of one class colour → that class (nearest-colour "
                         "tolerance)" % (tol, "s" if tol > 1 else ""))
        extra.append("colours in no class%s: %s" % (" (nor within the tolerance)" if tol else "",
                                                   "stored as ignore (255)" if m.get("unknown_colors") == "ignore"
                                                   else "refused (listed with counts and files)"))
    out = mapping.describe(kind, entries, extra)
    out.update({k: m.get(k) for k in ("ignore_values", "ignore_colors", "label_map", "unknown_colors", "colors_from")})
    return out
