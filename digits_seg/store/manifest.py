"""Turn a store entry's `manifest.json` (ours) or `info.json` (+`aux.json`, DIGITS) into one entry dict.

Both formats end up as the same plain dict so the page, the API and the importer never
care which one a store used. Every value is checked for type and size because store text
is untrusted; anything malformed is dropped with a warning rather than failing the listing.

Entry dict keys: id, folder, name, description, architecture, framework, classes
([{name, color}] or None), num_classes, input_size ([w, h] or None), channels, mean,
files ([{role, name, url, size, sha256, other_hashes: {sha1, md5, sha256_prefix}}]), size_bytes, license, source ({url, citation}),
trained_on, metrics ({name: number}), needs_internet, has_weights, format ("manifest" or
"digits"), warnings.

`size_bytes` is the total of the files' published sizes, or None when any file has none (the
FCN authors publish no size for their weights; DIGITS `info.json` names files without sizes):
a partial sum would look like a real size. `size_known_bytes` and `size_unknown_files` say
what is known.
"""

import re

FORMAT = "digits-seg-model/1"
"""Value of `format` in manifests written by this project."""

ROLES = ("network", "weights", "labels", "colormap", "mean", "solver", "license", "preprocess", "other")
"""File roles a manifest may declare."""

DIGITS_FILE_KEYS = (
    ("snapshot file", "weights"),
    ("train_val file", "network"),
    ("model file", "network"),
    ("network file", "network"),
    ("deploy file", "network"),
    ("labels file", "labels"),
    ("mean file", "mean"),
)
"""DIGITS `info.json` keys naming files, in order of preference for each role."""

MAX_TEXT = 4000
"""Longest free-text field kept, in characters (longer is cut)."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_SHA256_PREFIX = re.compile(r"^[0-9a-f]{8,63}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def safe_file_name(name):
    """True when `name` is a plain file name inside an entry folder (no folders, no '..')."""
    return isinstance(name, str) and bool(_SAFE_NAME.match(name)) and ".." not in name


def _text(value, limit=MAX_TEXT):
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] if value else None


def _color(value):
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value):
        return [int(c) for c in value]
    if isinstance(value, str) and re.match(r"^#[0-9a-fA-F]{6}$", value):
        return [int(value[i:i + 2], 16) for i in (1, 3, 5)]
    return None


def default_colormap(n):
    """PASCAL VOC's bit-interleaved palette for `n` classes (class 0 black)."""
    from ..datasets.palette import voc_palette

    return voc_palette(n)


def _classes(value, warnings):
    if not isinstance(value, list) or not value or len(value) > 1024:
        return None
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            name, color = item, None
        elif isinstance(item, dict):
            name, color = item.get("name"), _color(item.get("color"))
        else:
            warnings.append("class %d is neither a name nor {name, color}; classes ignored" % i)
            return None
        name = _text(name, 200)
        if not name:
            warnings.append("class %d has no name; classes ignored" % i)
            return None
        out.append({"name": name, "color": color})
    palette = default_colormap(len(out))
    for i, c in enumerate(out):
        if c["color"] is None:
            c["color"] = palette[i]
    return out


def normalize_classes(value):
    """Checked `[{name, color}]` from names or dicts (missing colours from the VOC palette), or None."""
    return _classes(value, [])


def _number_list(value, length=None, minimum=None):
    if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return None
    if minimum is not None and any(v < minimum for v in value):
        return None
    return list(value)


def _file(item, warnings):
    if not isinstance(item, dict):
        warnings.append("a files[] item is not an object; ignored")
        return None
    name = item.get("name")
    url = _text(item.get("url"), 2000)
    if url and not re.match(r"^https?://", url):
        warnings.append("file %r has a non-http(s) url; ignored" % (name,))
        return None
    if not safe_file_name(name):
        warnings.append("file name %r is not a plain file name; ignored" % (name,))
        return None
    role = item.get("role") if item.get("role") in ROLES else "other"
    size = item.get("size")
    size = int(size) if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    sha = item.get("sha256")
    sha = sha.lower() if isinstance(sha, str) and _SHA256.match(sha.lower()) else None
    if item.get("sha256") and sha is None:
        warnings.append("file %s has a malformed sha256; it will be rejected at import" % name)
        sha = "invalid"
    other = {}
    # sha256_prefix: the leading hex digits of the sha256 that PyTorch's hub puts in file names
    # (`vgg16-397923af.pth`); torch.hub checks the same prefix.
    for algo, pattern in (("sha1", _SHA1), ("md5", _MD5), ("sha256_prefix", _SHA256_PREFIX)):
        v = item.get(algo)
        if isinstance(v, str) and pattern.match(v.lower()):
            other[algo] = v.lower()
        elif v:
            warnings.append("file %s has a malformed %s; ignored" % (name, algo))
    return {"role": role, "name": name, "url": url, "size": size, "sha256": sha, "other_hashes": other,
            "note": _text(item.get("note"), 500)}


METRIC_LABELS = {"val_mean_iou": "val mIoU", "val_pixel_acc": "val pixel accuracy", "val_mean_acc": "val mean accuracy",
                 "val_fw_iou": "val frequency-weighted IoU", "val_loss": "val loss", "mean_iou": "mIoU",
                 "pixel_acc": "pixel accuracy", "epoch": "epochs trained", "epochs": "epochs trained"}
"""Readable names of the metrics stores publish (others are shown with underscores as spaces)."""


def metric_text(name, value):
    """"val mIoU 0.677", "epochs trained 12": one metric as a person reads it."""
    label = METRIC_LABELS.get(name) or str(name).replace("_", " ")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = "%g" % value if name in ("epoch", "epochs") or float(value).is_integer() else "%.3f" % value
    else:
        text = str(value)
    return "%s %s" % (label, text)


def _metrics(value):
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, v in list(value.items())[:50]:
        if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k[:100]] = float(v)
    return out


def size_text(n):
    """"512 B", "5.1 KiB", "97.8 MiB", "1.25 GiB"; "size unknown" for None (never "0.0 MiB" for a file of unknown size)."""
    if n is None:
        return "size unknown"
    if n < 1024:
        return "%d B" % n
    for unit, scale in (("KiB", 2 ** 10), ("MiB", 2 ** 20)):
        if n < 1024 * scale:
            return "%.1f %s" % (n / scale, unit)
    return "%.2f GiB" % (n / 2 ** 30)


def _finish(entry):
    files = entry["files"]
    sizes = [f["size"] for f in files]
    entry["size_bytes"] = sum(sizes) if all(s is not None for s in sizes) else None
    entry["size_known_bytes"] = sum(s for s in sizes if s is not None)
    entry["size_unknown_files"] = [f["name"] for f in files if f["size"] is None]
    entry["needs_internet"] = any(f["url"] for f in files)
    entry["has_weights"] = any(f["role"] == "weights" for f in files)
    if entry["classes"]:
        entry["num_classes"] = len(entry["classes"])
    return entry


PREPROCESS_KEYS = ("channels", "channel_order", "mean_subtraction", "mean_pixel", "scale", "input_size", "resize",
                   "resize_mode")
"""Keys of a manifest's `preprocess` object (the model's preprocess.json, docs/CONTRACTS.md → training)."""


def _preprocess(value, warnings):
    """The manifest's `preprocess` object reduced to its known keys, or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        warnings.append("manifest preprocess is not a JSON object; ignored")
        return None
    return {k: value[k] for k in PREPROCESS_KEYS if k in value}


def from_manifest(data, folder):
    """Build an entry dict from our `manifest.json` content (already JSON-decoded)."""
    warnings = []
    if not isinstance(data, dict):
        data = {}
        warnings.append("manifest.json is not a JSON object")
    raw_files = data.get("files") if isinstance(data.get("files"), list) else []
    files = [f for f in (_file(i, warnings) for i in raw_files) if f]
    source = data.get("source") if isinstance(data.get("source"), dict) else {}
    size = _number_list(data.get("input_size"), 2, 1)
    entry = {
        "id": _text(data.get("id"), 128) or folder,
        "folder": folder,
        "name": _text(data.get("name"), 200) or folder,
        "description": _text(data.get("description")),
        "architecture": _text(data.get("architecture"), 100),
        "framework": _text(data.get("framework"), 50) or "caffe",
        "classes": _classes(data.get("classes"), warnings),
        "num_classes": data.get("num_classes") if isinstance(data.get("num_classes"), int) else None,
        "input_size": [int(v) for v in size] if size else None,
        "channels": data.get("channels") if data.get("channels") in (1, 3) else 3,
        "mean": _number_list(data.get("mean")),
        "preprocess": _preprocess(data.get("preprocess"), warnings),
        "files": files,
        "license": _text(data.get("license"), 200),
        "source": {"url": _text(source.get("url"), 2000), "citation": _text(source.get("citation"))},
        "trained_on": _text(data.get("trained_on"), 500),
        "metrics": _metrics(data.get("metrics")),
        "notes": _text(data.get("notes")),
        "format": "manifest",
        "warnings": warnings,
    }
    return _finish(entry)


def from_digits_info(info, folder, aux=None):
    """Build an entry dict from a DIGITS `info.json` (and its optional `aux.json`)."""
    warnings = []
    if not isinstance(info, dict):
        info = {}
        warnings.append("info.json is not a JSON object")
    if isinstance(aux, dict):
        info = dict(info, **aux)
    files = []
    seen_roles = set()
    for key, role in DIGITS_FILE_KEYS:
        name = info.get(key)
        if name is None or role in seen_roles:
            continue
        if not safe_file_name(name):
            warnings.append("info.json %r = %r is not a plain file name; ignored" % (key, name))
            continue
        seen_roles.add(role)
        files.append({"role": role, "name": name, "url": None, "size": None, "sha256": None,
                      "other_hashes": {}, "note": None})
    dims = _number_list(info.get("image dimensions"), None, 1)
    input_size = [int(dims[1]), int(dims[0])] if dims and len(dims) >= 2 else None
    channels = int(dims[2]) if dims and len(dims) >= 3 and dims[2] in (1, 3) else 3
    framework = _text(info.get("framework"), 50) or "caffe"
    entry = {
        "id": folder,
        "folder": folder,
        "name": _text(info.get("name"), 200) or folder,
        "description": _text(info.get("description")),
        "architecture": _text(info.get("architecture") or info.get("network"), 100),
        "framework": framework.lower(),
        "classes": None,
        "num_classes": None,
        "input_size": input_size,
        "channels": channels,
        "mean": None,
        "files": files,
        "license": _text(info.get("license"), 200),
        "source": {"url": _text(info.get("url"), 2000), "citation": _text(info.get("citation"))},
        "trained_on": _text(info.get("dataset") or info.get("trained_on"), 500),
        "metrics": _metrics(info.get("metrics")),
        "notes": None,
        "format": "digits",
        "warnings": warnings,
    }
    return _finish(entry)


def apply_labels(entry, text):
    """Fill `classes` from a labels.txt (one class name per line) when the entry has none."""
    if entry.get("classes"):
        return entry
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if names:
        palette = default_colormap(len(names))
        entry["classes"] = [{"name": n[:200], "color": palette[i]} for i, n in enumerate(names[:1024])]
        entry["num_classes"] = len(entry["classes"])
    return entry
