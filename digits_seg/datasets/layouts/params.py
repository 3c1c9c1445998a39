"""A detected layout → dataset params (and back to pairs when the dataset is planned).

The params record `layout`, `layout_root` and `layout_options` — what reproduces the
detection — plus the class table and label mapping it implies (`class_names`,
`class_colors`, `label_map`, see docs/CONTRACTS.md), so job.json says what was built
without holding thousands of file pairs; `layout_splits` re-derives the pairs at plan time.
"""

import os

from ...errors import ValidationError
from ..pairing import Pairing, split_pairs
from . import coco, detect

PASSED_THROUGH = ("name", "seed", "channels", "encoding", "resize", "resize_width", "resize_height", "resize_mode",
                  "skip_bad", "max_pixels", "val_pct")
"""Ordinary dataset options that apply to a layout too (everything about pairing and labels comes from the layout)."""

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


def layout_splits(params):
    """(splits, pairings) of a layout dataset, re-detected from its root (the plan's input)."""
    det = detect(params["layout_root"], params["layout"], params.get("layout_options"), masks_dir=params.get("masks_dir"))
    train, val = list(det.splits["train"]), list(det.splits.get("val") or [])
    if not val and params.get("val_pct"):
        train, val = split_pairs(train, params["val_pct"], params.get("seed", 0))
    pairing = Pairing(pairs=train + val, images_without_label=[], labels_without_image=[], duplicate_stems={}, suffix="")
    return {"train": train, "val": val}, [("layout", pairing)]
