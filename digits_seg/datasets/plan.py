"""Turn validated params into a plan: paired files per split, class names, colour map, label rules.

Shared by the pre-flight check and by creation so both see the same pairs and rules.
"""

import dataclasses

from ..errors import ValidationError
from . import palette as pal
from .labels import is_binary_mask
from .pairing import pair_folders, split_pairs

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
    for stem, paths in sorted(pairing.duplicate_stems.items()):
        problems.append(("error", "duplicate_stem", "name %r occurs %d times (%s): pairs are matched by file name "
                         "without extension, so rename or remove the extra files" % (stem, len(paths), ", ".join(paths)),
                         paths))


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
    pairings = [("train" if params.get("val_images") else "all", main)]
    if params.get("val_images"):
        val = pair_folders(params["val_images"], params["val_labels"], params.get("label_suffix", "auto"))
        _pairing_problems(val, params["val_images"], params["val_labels"], problems)
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

    names = pal.parse_classes_file(params["classes_file"]) if params.get("classes_file") else None
    source = params.get("colormap_source", "labels")
    notes = []
    file_colors = None
    if source == "file":
        file_colors, file_names = pal.parse_colormap_file(params["colormap_file"])
        if names and len(names) != len(file_colors):
            raise ValidationError("the class-names file lists %d classes but the colour map has %d colours; "
                                  "they must match line for line" % (len(names), len(file_colors)), field="classes_file")
        names = names or file_names
    elif source == "labels" and label_mode != "P":
        source = "default"  # greyscale/RGB labels carry no palette; the summary shows the source used

    binary_opt = params.get("binary", "auto")
    grey = label_mode in ("L", "I;16", "I;16B", "I;16L", "I", "1", "LA")
    if binary_opt == "yes":
        binary = True
    elif binary_opt == "no" or not grey or (names and len(names) != 2):
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
    rules = {"colormap": tuple(tuple(c) for c in colormap) if (rgb_labels and not binary) else None,
             "tolerance": int(params.get("color_tolerance", 0)), "binary": binary,
             "num_classes": len(names) if names else (len(file_colors) if file_colors else None)}
    if rgb_labels and source == "labels":
        notes.append("RGB colour-coded labels: mapping colours through the default (PASCAL VOC) palette; "
                     "give a colour-map file if your colours differ")
        source = "default"
    return Plan(splits=splits, pairings=pairings, label_mode=label_mode, class_names=names, colormap=colormap,
                colormap_source=source, rules=rules, binary=binary, problems=problems, notes=notes)
