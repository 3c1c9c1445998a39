"""A detected layout → dataset params (and back to pairs when the dataset is planned).

The params record `layout`, `layout_root` and `layout_options` — what reproduces the
detection — plus the class table and label mapping it implies (`class_names`,
`class_colors`, `label_map`, see docs/CONTRACTS.md), so job.json says what was built
without holding thousands of file pairs; `layout_splits` re-derives the pairs at plan time.
"""

import os

from ...declare import specs
from ...errors import ValidationError
from ..pairing import Pairing, split_pairs
from . import coco, detect

PASSED_THROUGH = ("name", "seed", "channels", "encoding", "resize", "resize_width", "resize_height", "resize_mode",
                  "skip_bad", "max_pixels", "val_pct")
"""Ordinary dataset options that apply to a layout too (everything about pairing and labels comes from the layout)."""

LABEL_OPTIONS = ("images", "labels", "val_images", "val_labels", "label_suffix", "classes_file", "colormap_file",
                 "colormap_source", "color_tolerance", "ignore_values", "ignore_colors", "unknown_colors", "label_map",
                 "binary")
"""Plain-folder options a layout decides itself; given with a layout they are refused, never silently dropped."""

NEUTRAL = {"label_suffix": ("auto",), "colormap_source": ("labels",), "color_tolerance": (0, "0"),
           "unknown_colors": ("refuse",), "binary": ("auto",)}
"""Values of those options that ask for nothing (the form's defaults)."""

PALETTE_BY_INDEX = ("voc",)
"""Layouts whose palette PNG labels hold class ids as indices and 255 for ignore (their colours are the default palette)."""


def layout_options(raw):
    """The layout-specific options of a form/JSON body: COCO `categories`, VOC `lists`."""
    opts = {}
    cats = coco.parse_categories(raw.get("categories") or (raw.get("layout_options") or {}).get("categories"))
    if cats:
        opts["categories"] = cats
    lists = raw.get("lists") or (raw.get("layout_options") or {}).get("lists")
    if lists:
        if lists not in ("voc", "aug", "sbd"):
            raise ValidationError("lists must be `voc` (ImageSets/Segmentation) or `aug` (SBD-style list files), got %r"
                                  % lists, field="lists")
        opts["lists"] = lists
    return opts


def _folder_of(pairs, index, fallback):
    for p in pairs:
        folder = os.path.dirname(p[index])
        if os.path.isdir(folder):
            return folder
    return fallback


def layout_params(raw, settings, validate):
    """Detect the layout named in `raw` and return (params, detection).

    Args:
        validate: the ordinary `validate_params(raw, settings)`; it checks the options shared with
            plain folders (name, encoding, resize, ...), fed with the layout's own folders.
    """
    from ..params import resolve_data_path

    root = resolve_data_path(raw.get("layout_root"), settings, "layout_root")
    det = detect(root, str(raw.get("layout") or "auto").strip().lower(), layout_options(raw))
    _refuse_label_options(raw, det)
    train, val = det.splits["train"], det.splits.get("val") or []
    plain = {k: raw[k] for k in PASSED_THROUGH if raw.get(k) not in (None, "")}
    plain["images"] = _folder_of(train, 1, det.root)
    plain["labels"] = det.root if det.converted else _folder_of(train, 2, det.root)
    if val:
        plain["val_images"] = _folder_of(val, 1, det.root)
        plain["val_labels"] = det.root if det.converted else _folder_of(val, 2, det.root)
    if not plain.get("name"):
        plain["name"] = "%s %s" % (det.layout, os.path.basename(det.root.rstrip(os.sep)))
    params = validate(plain, settings)
    params.update(layout=det.layout, layout_root=det.root, layout_options=det.options, class_names=list(det.classes),
                  val_pct=0.0 if val else params.get("val_pct", 10.0), label_suffix="")
    if det.layout in PALETTE_BY_INDEX:
        params["colormap_source"] = "default"
    else:
        params["class_colors"] = [list(c) for c in det.colors]
    if det.label_map:
        params["label_map"] = {str(k): v for k, v in sorted(det.label_map.items())}
    return params, det


def _given(key, value):
    if value in (None, "", [], {}) or (isinstance(value, str) and not value.strip()):
        return False
    return str(value).strip().lower() not in {str(v) for v in NEUTRAL.get(key, ())}


def _refuse_label_options(raw, det):
    """A layout supplies the pairs, the classes and the label mapping: options that would change them are
    refused with what the layout does instead (they used to be dropped without a word)."""
    from ..params import DatasetParams

    given = [k for k in LABEL_OPTIONS if _given(k, raw.get(k))]
    if not given:
        return
    spec = {s.name: s for s in specs(DatasetParams)}
    named = ", ".join("%s (%s%s)" % (spec[k].label, k, ", CLI " + spec[k].flag if spec[k].flag else "") for k in given)
    ignored = ("label value%s %s → ignore (255)" % ("s" if len(det.ignore_values) > 1 else "",
                                                     ", ".join(map(str, det.ignore_values)))
               if det.ignore_values else "255 → ignore (255)")
    raise ValidationError(
        "%s cannot be combined with a standard layout: the %s layout supplies the image/label pairs, its %d classes and "
        "how label values map (%s). Leave %s empty, or build from plain image and label folders to pair and map the "
        "labels your own way (e.g. ignore values or a label map)."
        % (named, det.title, len(det.classes), ignored, "it" if len(given) == 1 else "them"), field=given[0])


def layout_splits(params):
    """(splits, pairings) of a layout dataset, re-detected from its root (the plan's input)."""
    det = detect(params["layout_root"], params["layout"], params.get("layout_options"), masks_dir=params.get("masks_dir"))
    train, val = list(det.splits["train"]), list(det.splits.get("val") or [])
    if not val and params.get("val_pct"):
        train, val = split_pairs(train, params["val_pct"], params.get("seed", 0))
    pairing = Pairing(pairs=train + val, images_without_label=[], labels_without_image=[], duplicate_stems={}, suffix="")
    return {"train": train, "val": val}, [("layout", pairing)]
