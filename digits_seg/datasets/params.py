"""The dataset form, declared once (`DatasetParams`) → canonical dataset params; the data-root rules for paths.

The form's labels and hints, the `dataset create` options and the README's table are read
from the declaration (see `digits_seg.declare`).
"""

import os
from typing import Annotated, Optional

from pydantic import BaseModel, BeforeValidator

from ..declare import Flag, Float, Int, Name, blank, check, choice, field_error, numbers, param, raise_errors
from ..errors import ValidationError
from . import mapping
from .process import DEFAULT_MAX_PIXELS
from .transform import CHANNEL_MODES, ENCODINGS, RESIZE_MODES

COLORMAP_SOURCES = ("labels", "file", "default")
BINARY_OPTIONS = ("auto", "yes", "no")
MAX_AUTOCOMPLETE = 50
"""Suggestions returned by `complete_path`."""

FIELD_LABELS = {"images": "the image folder", "labels": "the label folder", "val_images": "the validation image folder",
                "val_labels": "the validation label folder", "classes_file": "the class-names file",
                "colormap_file": "the colour-map file", "layout_root": "the dataset top folder"}
"""How messages name path fields (the form's words, not the parameter names)."""


def _label(field):
    return FIELD_LABELS.get(field, field.replace("_", " "))


def resolve_data_path(path, settings, field, kind="dir"):
    """Return the real path of `path` if it lies under a configured data root, else ValidationError.

    Symlinks are resolved before the check, so neither `..` nor a link can escape a root.
    """
    if not path or not str(path).strip():
        raise ValidationError("Give %s (a path under the data folders)." % _label(field), field=field)
    roots = settings.resolved_data_roots
    raw = os.path.expanduser(str(path).strip())
    if not os.path.isabs(raw):
        raw = os.path.join(roots[0], raw)
    real = os.path.realpath(raw)
    if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        raise ValidationError("%s %s is outside the allowed data folders (%s); put the data there or add its folder "
                              "to DIGITS_SEG_DATA_ROOTS" % (_label(field).capitalize(), path, ", ".join(roots)),
                              field=field)
    if not os.path.exists(real):
        raise ValidationError("%s %s does not exist" % (_label(field).capitalize(), path), field=field)
    if kind == "dir" and not os.path.isdir(real):
        raise ValidationError("%s %s is not a folder" % (_label(field).capitalize(), path), field=field)
    if kind == "file" and not os.path.isfile(real):
        raise ValidationError("%s %s is not a file" % (_label(field).capitalize(), path), field=field)
    return real


def _sendable(name):
    """False for a file name whose bytes are not UTF-8: a form cannot send it back (a lone surrogate is refused)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def complete_path(prefix, settings, dirs_only=False):
    """Entries under the data roots starting with `prefix` (absolute paths; folders end with `/`)."""
    roots = settings.resolved_data_roots
    prefix = os.path.expanduser(prefix or "")
    if not prefix or not os.path.isabs(prefix):
        if not prefix:
            return [r + os.sep for r in roots]
        prefix = os.path.join(roots[0], prefix)
    folder, part = os.path.split(prefix)
    real_folder = os.path.realpath(folder or os.sep)
    if not any(real_folder == r or real_folder.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
        return [r + os.sep for r in roots if r.startswith(prefix)]
    try:
        names = sorted(os.listdir(real_folder))
    except OSError:
        return []
    out = []
    for name in names:
        if name.startswith(".") and not part.startswith("."):
            continue
        if not name.startswith(part) or not _sendable(name):
            continue
        full = os.path.join(folder, name)
        real = os.path.realpath(full)
        if not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots):
            continue
        is_dir = os.path.isdir(real)
        if dirs_only and not is_dir:
            continue
        out.append(full + (os.sep if is_dir else ""))
        if len(out) >= MAX_AUTOCOMPLETE:
            break
    return out


def parse_size(value, field="resize"):
    """Parse `WxH` (or [w, h]) into [w, h]; None for empty."""
    if value in (None, "", [], "none", "native"):
        return None
    try:
        if isinstance(value, str):
            w, h = value.lower().replace("×", "x").split("x")
        else:
            w, h = value
        w, h = int(w), int(h)
    except (TypeError, ValueError):
        raise ValidationError("%s must look like 256x256 (width x height), got %r" % (_label(field).capitalize(), value),
                              field=field, label=_label(field))
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise ValidationError("%s %dx%d is out of range (1..16384 per side)" % (_label(field).capitalize(), w, h),
                              field=field, label=_label(field))
    return [w, h]


def _parsed(parse):
    """A pydantic before-validator from a `mapping.parse_*` function (blank → None; its message, unprefixed)."""
    def validate(value):
        if blank(value) or value in ([], {}):
            return None
        try:
            return parse(value, "")
        except ValidationError as exc:
            raise ValueError(exc.message.lstrip(": "))
    return validate


ColorList = Annotated[list, BeforeValidator(_parsed(lambda v, f: [list(c) for c in mapping.parse_colors(v, f)]))]
"""[r, g, b] colours, from a JSON list or text like `255,255,255; 0,0,0`."""
LabelMap = Annotated[dict, BeforeValidator(_parsed(mapping.parse_label_map))]
"""{raw value: stored id}, from a JSON object or text like `7:0 8:1 0:255`."""


class DatasetParams(BaseModel):
    """The dataset form (and `dataset create` options), declared once; paths are checked against the data roots after."""

    name: Optional[Name] = param(None, "Name", "Shown in lists and on models trained on it. Blank: the "
                                 "images folder's parent folder name.", default_text="the images folder's parent name")
    images: Optional[str] = param(None, "Image folder", "Folder of input images (searched recursively).")
    labels: Optional[str] = param(None, "Label folder", "Folder of label images, paired with images by file name "
                                  "(palette PNG, RGB colours or class-index greyscale).")
    val_pct: Float = param(10.0, "Validation %", "Percent of pairs held out for validation when there is no "
                           "separate validation folder. Too few validation images: noisy mIoU; raise it.",
                           ge=0, le=90)
    val_images: Optional[str] = param(None, "Validation images", "A separate validation set (needs the "
                                      "validation label folder); replaces Validation %.")
    val_labels: Optional[str] = param(None, "Validation labels", "Labels of the separate validation images.")
    seed: Int = param(0, "Seed", "Seed of the random validation split (same seed, same split).",
                      ge=0, le=2**31 - 1)
    label_suffix: str = param("auto", "Label name suffix", "Label name = image name + this suffix, e.g. _L or _mask "
                              "('auto' detects it; empty: no suffix). Pairs not found: check this.")
    classes_file: Optional[str] = param(None, "Class names file", "Line i names class i.", cli="--classes")
    colormap_file: Optional[str] = param(None, "Colour map file", "`R G B [name]` per class line, or a CSV with "
                                         "name,r,g,b columns; needed for RGB-coloured labels.", cli="--colormap")
    colormap_source: Optional[choice(*COLORMAP_SOURCES)] = param(
        None, "Colour map", "Where class colours come from: palette PNG labels, the colour-map file, or the "
        "PASCAL VOC palette.", default_text="file when a colour-map file is given, else labels")
    color_tolerance: Int = param(0, "Nearest-colour tolerance", "Map RGB label colours within this many levels per channel to "
                                 "the nearest colour-map entry (JPEG-damaged labels: try 8).", ge=0, le=64)
    ignore_values: Optional[numbers(int, ge=0, le=mapping.MAX_RAW_VALUE)] = param(
        None, "Ignore values", "Label values meaning unlabelled/void (e.g. 11 for CamVid's Unlabelled, 0 for ADE20K's "
        "'other'): stored as 255, not learnt or scored; their classes leave the list and later classes move down.",
        cli="--ignore", default_text="none", allowed="values 0 – 65535, comma-separated")
    ignore_colors: Optional[ColorList] = param(
        None, "Ignore colours", "Label colours meaning unlabelled (RGB labels, or palette labels read with a colour "
        "file), e.g. 255,255,255: stored as 255; a colour-file class of that colour is removed.", cli="--ignore-color",
        default_text="none", allowed="R,G,B colours separated by ';'")
    unknown_colors: choice(*mapping.UNKNOWN_COLOR_CHOICES) = param(
        "refuse", "Colours in no class", "Label colours neither in the colour file nor declared ignore: refuse (list "
        "them with counts and files) or ignore (store them as 255; only when you know what they are).")
    label_map: Optional[LabelMap] = param(
        None, "Label map", "Explicit raw value → class id for single-channel labels, e.g. Cityscapes label ids → train "
        "ids; every value found must be listed (255 stays ignore) and the class names name the new ids.",
        default_text="none", allowed="raw:id pairs, e.g. 7:0 8:1 0:255 (id 255 = ignore)")
    binary: choice(*BINARY_OPTIONS) = param("auto", "0/255 binary masks", "Treat 0/255 greyscale masks as classes 0/1 "
                                            "(auto detects them).")
    channels: choice(*CHANNEL_MODES) = param("rgb", "Channels", "Channel conversion of the images: rgb, gray "
                                             "(1 channel) or keep them as they are.")
    encoding: choice(*ENCODINGS) = param("png", "Encoding", "How converted images are stored (unchanged "
                                         "PNG/JPEG files keep their bytes); jpeg is smaller, raw is fastest to read.")
    resize: Optional[str] = param(None, "Resize to W×H", "WxH, e.g. 512x384 (labels use nearest neighbour). Blank: keep "
                                  "native sizes.", default_text="native sizes", allowed="WxH, 1 – 16384 per side")
    resize_mode: choice(*RESIZE_MODES) = param("squash", "Resize mode", "squash (change the aspect), crop (centre "
                                               "crop), fill (pad) or half_crop.")
    skip_bad: Flag = param(False, "Skip bad pairs", "Skip pairs that fail the checks (each is logged) instead of "
                           "refusing the whole dataset.")
    max_pixels: Int = param(DEFAULT_MAX_PIXELS, "Largest image (pixels)", "Images with more pixels are refused as "
                            "possible decompression bombs; raise it for very large aerial images.", ge=1, le=10**10,
                            form=False, cli=False)


PATH_FIELDS = ("images", "labels", "val_images", "val_labels", "classes_file", "colormap_file")
"""Declared fields holding server-side paths."""


def validate_params(raw, settings, uploaded_dir=None):
    """Turn a submitted form or JSON body into the canonical params dict of a dataset job; every problem at once.

    Args:
        uploaded_dir: folder where an uploaded zip was extracted (its `images/` and `labels/`
            replace the folder fields; it is trusted because the server made it).
    """
    raw = dict(raw or {})
    if "resize" in raw and not isinstance(raw["resize"], str) and raw["resize"] is not None:
        raw["resize"] = "x".join(str(v) for v in raw["resize"]) if isinstance(raw["resize"], (list, tuple)) else \
            str(raw["resize"])
    values, errors = check(DatasetParams, raw)
    p = {"name": values["name"] or ""}

    def path(key, kind="dir"):
        try:
            return resolve_data_path(raw.get(key), settings, key, kind=kind)
        except ValidationError as exc:
            errors.extend(dict(e, label=DatasetParams.model_fields[key].title) for e in exc.errors)
            return None

    if uploaded_dir:
        p["images"] = os.path.join(uploaded_dir, "images")
        p["labels"] = os.path.join(uploaded_dir, "labels")
        for key in ("images", "labels"):
            if not os.path.isdir(p[key]):
                errors.append(field_error({"archive": "The archive"}, "archive", "has no %s/ folder (it needs images/ "
                              "and labels/ at the top, optionally val_images/ and val_labels/)" % key))
        vi, vl = os.path.join(uploaded_dir, "val_images"), os.path.join(uploaded_dir, "val_labels")
        p["val_images"], p["val_labels"] = (vi, vl) if os.path.isdir(vi) and os.path.isdir(vl) else (None, None)
    else:
        p["images"], p["labels"] = path("images"), path("labels")
        if not blank(raw.get("val_images")) or not blank(raw.get("val_labels")):
            p["val_images"], p["val_labels"] = path("val_images"), path("val_labels")
        else:
            p["val_images"] = p["val_labels"] = None
    if not p["name"]:
        p["name"] = os.path.basename(os.path.dirname((p["images"] or "").rstrip(os.sep))) or "dataset"
    p["val_pct"] = 0.0 if p["val_images"] else values["val_pct"]
    p["seed"] = values["seed"]
    suffix = raw.get("label_suffix")
    p["label_suffix"] = "auto" if suffix in (None, "auto") else str(suffix).strip()
    for key in ("classes_file", "colormap_file"):
        p[key] = path(key, kind="file") if not blank(raw.get(key)) else None
    if uploaded_dir and not p["classes_file"] and os.path.isfile(os.path.join(uploaded_dir, "classes.txt")):
        p["classes_file"] = os.path.join(uploaded_dir, "classes.txt")  # as demo-data writes it beside images/
    p["colormap_source"] = values["colormap_source"] or ("file" if p["colormap_file"] else "labels")
    if p["colormap_source"] != "file" and p["colormap_file"]:  # the file would be read by nobody
        errors.append(field_error(DatasetParams, "colormap_source", "is `%s`, so the colour map file %s would not be "
                                  "used: choose `file` (or leave the colour map source empty: a given file is then "
                                  "used), or clear the colour map file" % (p["colormap_source"], p["colormap_file"])))
    if p["colormap_source"] == "file" and not p["colormap_file"] and blank(raw.get("colormap_file")):
        errors.append(field_error(DatasetParams, "colormap_file", "is missing: the colour map source is `file` "
                                  "(give one `R G B` line per class)"))
    for key in ("color_tolerance", "binary", "channels", "encoding", "unknown_colors"):
        p[key] = values[key]
    p["ignore_values"] = sorted(set(values["ignore_values"] or ()))
    p["ignore_colors"] = values["ignore_colors"] or []
    p["label_map"] = {str(k): v for k, v in sorted(values["label_map"].items())} if values["label_map"] else None
    if p["label_map"] and p["binary"] == "yes":
        errors.append(field_error(DatasetParams, "label_map", "cannot be combined with binary masks = yes (a label "
                                  "map says every class id itself)"))
    given = values["resize"]
    if given is None and raw.get("resize_width") and raw.get("resize_height"):
        given = [raw["resize_width"], raw["resize_height"]]
    try:
        p["resize"] = parse_size(given)
    except ValidationError:
        errors.append(field_error(DatasetParams, "resize", "must be WxH, e.g. 512x384, with 1 to 16384 pixels per "
                                  "side, got %r" % (given,)))
        p["resize"] = None
    p["resize_mode"] = values["resize_mode"]
    p["skip_bad"] = values["skip_bad"]
    p["max_pixels"] = values["max_pixels"]
    raise_errors(errors)
    return p
