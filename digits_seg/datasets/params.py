"""Form/JSON → canonical dataset params, and the data-root rules for server-side paths."""

import os

from ..errors import ValidationError
from .process import DEFAULT_MAX_PIXELS
from .transform import CHANNEL_MODES, ENCODINGS, RESIZE_MODES

COLORMAP_SOURCES = ("labels", "file", "default")
BINARY_OPTIONS = ("auto", "yes", "no")
MAX_AUTOCOMPLETE = 50
"""Suggestions returned by `complete_path`."""

FIELD_LABELS = {"images": "the image folder", "labels": "the label folder", "val_images": "the validation image folder",
                "val_labels": "the validation label folder", "classes_file": "the class-names file",
                "colormap_file": "the colour-map file"}
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
    if kind == "dir" and not os.path.isdir(real):
        raise ValidationError("%s %s is not a folder" % (_label(field).capitalize(), path), field=field)
    if kind == "file" and not os.path.isfile(real):
        raise ValidationError("%s %s is not a file" % (_label(field).capitalize(), path), field=field)
    return real


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
        if not name.startswith(part):
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


def _choice(raw, name, options, default):
    value = raw.get(name)
    if value in (None, ""):
        return default
    value = str(value).strip().lower().replace("-", "_")
    if value not in options:
        raise ValidationError("%s must be one of %s, got %r" % (name, ", ".join(options), raw.get(name)), field=name)
    return value


def _number(raw, name, default, kind, lo, hi):
    value = raw.get(name)
    if value in (None, ""):
        return default
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ValidationError("%s must be a number, got %r" % (name, raw.get(name)), field=name)
    if not lo <= value <= hi:
        raise ValidationError("%s must be between %s and %s, got %s" % (name, lo, hi, value), field=name)
    return value


def _bool(raw, name):
    value = raw.get(name)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


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
        raise ValidationError("%s must look like 256x256 (width x height), got %r" % (field, value), field=field)
    if not (1 <= w <= 16384 and 1 <= h <= 16384):
        raise ValidationError("%s %dx%d is out of range (1..16384 per side)" % (field, w, h), field=field)
    return [w, h]


def validate_params(raw, settings, uploaded_dir=None):
    """Turn a submitted form or JSON body into the canonical params dict of a dataset job.

    Args:
        uploaded_dir: folder where an uploaded zip was extracted (its `images/` and `labels/`
            replace the folder fields; it is trusted because the server made it).
    """
    raw = dict(raw or {})
    p = {"name": str(raw.get("name") or "").strip()}
    if uploaded_dir:
        p["images"] = os.path.join(uploaded_dir, "images")
        p["labels"] = os.path.join(uploaded_dir, "labels")
        for key in ("images", "labels"):
            if not os.path.isdir(p[key]):
                raise ValidationError("the uploaded archive has no %s/ folder (it needs images/ and labels/ at the top, "
                                      "optionally val_images/ and val_labels/)" % key, field="archive")
        vi, vl = os.path.join(uploaded_dir, "val_images"), os.path.join(uploaded_dir, "val_labels")
        p["val_images"], p["val_labels"] = (vi, vl) if os.path.isdir(vi) and os.path.isdir(vl) else (None, None)
    else:
        p["images"] = resolve_data_path(raw.get("images"), settings, "images")
        p["labels"] = resolve_data_path(raw.get("labels"), settings, "labels")
        if raw.get("val_images") or raw.get("val_labels"):
            p["val_images"] = resolve_data_path(raw.get("val_images"), settings, "val_images")
            p["val_labels"] = resolve_data_path(raw.get("val_labels"), settings, "val_labels")
        else:
            p["val_images"] = p["val_labels"] = None
    if not p["name"]:
        p["name"] = os.path.basename(os.path.dirname(p["images"].rstrip(os.sep))) or "dataset"
    p["val_pct"] = 0.0 if p["val_images"] else _number(raw, "val_pct", 10.0, float, 0.0, 90.0)
    p["seed"] = _number(raw, "seed", 0, int, 0, 2**31 - 1)
    suffix = raw.get("label_suffix")
    p["label_suffix"] = "auto" if suffix in (None, "auto") else str(suffix).strip()
    for key in ("classes_file", "colormap_file"):
        p[key] = resolve_data_path(raw[key], settings, key, kind="file") if raw.get(key) else None
    p["colormap_source"] = _choice(raw, "colormap_source", COLORMAP_SOURCES, "file" if p["colormap_file"] else "labels")
    if p["colormap_source"] == "file" and not p["colormap_file"]:
        raise ValidationError("colour map source is `file` but no colour-map file was given (one `R G B` line per "
                              "class)", field="colormap_file")
    p["color_tolerance"] = _number(raw, "color_tolerance", 0, int, 0, 64)
    p["binary"] = _choice(raw, "binary", BINARY_OPTIONS, "auto")
    p["channels"] = _choice(raw, "channels", CHANNEL_MODES, "rgb")
    p["encoding"] = _choice(raw, "encoding", ENCODINGS, "png")
    p["resize"] = parse_size(raw.get("resize"))
    if p["resize"] is None and raw.get("resize_width") and raw.get("resize_height"):
        p["resize"] = parse_size([raw["resize_width"], raw["resize_height"]])
    p["resize_mode"] = _choice(raw, "resize_mode", RESIZE_MODES, "squash")
    p["skip_bad"] = _bool(raw, "skip_bad")
    p["max_pixels"] = _number(raw, "max_pixels", DEFAULT_MAX_PIXELS, int, 1, 10**10)
    return p
