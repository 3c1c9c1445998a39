"""Decode, validate and convert one image/label pair: the unit of work of checks and creation.

Runs in a small process pool; takes and returns plain data (paths, dicts, bytes).
Unchanged files keep their original bytes: decoding once to validate is the only cost.
Datum bytes never travel to the parent: creation writes them from the worker (`create.RecordSink`).
"""

import io
import warnings
import zlib

import numpy as np
from PIL import Image

from . import datum, png, sixteen_bit, transform
from .labels import LabelResult, LabelRules, decode_label, index_counts, map_counts, palette_lut

DEFAULT_MAX_PIXELS = 100_000_000
"""Images larger than this many pixels are refused as possible decompression bombs."""

JPEG_CHECK_SCALE = 8
"""A JPEG whose pixels nothing needs (stored unchanged, not a mean-image sample, or only
checked) is validated by decoding it at 1/8 scale: libjpeg still reads and checks every
entropy-coded block, so truncated or corrupt files fail exactly as in a full decode (the tests
show it), but most of the inverse DCT and the colour conversion are skipped: 0.65 ms instead
of 1.5 ms for a 512×512 image here, the largest single cost of creating a dataset."""


def _always(im):
    return True


def _open(path, data, max_pixels, pixels_needed=_always):
    """Open and decode an image from bytes; return (image, full (w, h), problem): image and size, or the problem.

    `pixels_needed(im)` (asked of JPEGs and PNGs, with the header read) False: a JPEG is decoded at
    reduced scale, a PNG only inflated (`png.pixels_complete`; Pillow decodes what that cannot vouch for).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            size = im.size
            if im.width * im.height > max_pixels:
                return None, size, ("bomb", "%s is %d×%d pixels, more than the limit of %d: refused as a possible "
                                    "decompression bomb" % (path, im.width, im.height, max_pixels))
            if im.format in ("JPEG", "PNG") and not pixels_needed(im):
                if im.format == "PNG" and png.pixels_complete(data):
                    return im, size, None  # shown to decode; the pixels themselves are never used
                if im.format == "JPEG":
                    im.draft(im.mode, (max(1, im.width // JPEG_CHECK_SCALE), max(1, im.height // JPEG_CHECK_SCALE)))
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return None, None, ("bomb", "%s refused as a possible decompression bomb (%s)" % (path, e))
    except Image.UnidentifiedImageError:
        return None, None, ("unreadable", "%s is not an image: its contents are not PNG, JPEG, BMP, TIFF or another "
                            "image format (%s); replace the file or remove the pair" % (path, _first_bytes(data)))
    except OSError as e:
        kind = "truncated" if "truncated" in str(e) or "broken" in str(e) else "unreadable"
        return None, None, (kind, "%s cannot be decoded (%s): re-export the file or remove the pair" % (path, e))
    except Exception as e:  # Pillow raises assorted errors on corrupt files
        return None, None, ("unreadable", "%s cannot be decoded (%s: %s)" % (path, type(e).__name__, e))
    return im, size, None


def _first_bytes(data):
    """What a non-image file starts with, for the message (e.g. `starts with "<html>"`)."""
    if not data:
        return "the file is empty"
    head = data[:16]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "it is text starting with %r" % head.decode("ascii").strip()[:16]
    return "it starts with bytes %s" % head[:8].hex(" ")


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read(), None
    except OSError as e:
        return None, ("unreadable", "%s cannot be read: %s" % (path, e))


def may_be_grey16(path):
    """False when the file's first bytes show it is not a 16-bit greyscale image (8-bit PNGs, JPEGs).

    Cheap enough to run on every image in the parent, so a dataset without 16-bit images does
    not pay for a pool of workers before creation starts.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError:
        return False
    if head.startswith(png.SIGNATURE):
        header = png.header(head)
        return header is not None and header[2] == 16 and header[3] == 0  # 16-bit depth, greyscale colour type
    return not head.startswith(b"\xff\xd8")


def scan_grey16(path, max_pixels, accumulator=None):
    """{min, max, sbit} of a 16-bit greyscale image file; None for other or unreadable files.

    Creation's pre-pass for the 16-bit option `bits`, which needs the dataset's largest value
    before any image is stored (run on the files `may_be_grey16` leaves).
    """
    if not may_be_grey16(path):
        return None
    data, problem = _read(path)
    if problem:
        return None
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if not sixteen_bit.is_grey16(probe.mode):
                return None
    except Exception:  # noqa: BLE001 - unreadable: the build reports it with the pair
        return None
    im, _, problem = _open(path, data, max_pixels)
    return sixteen_bit.inspect(im, data) if im is not None else None


def process_pair(task, cfg, samples=None):
    """Process one pair; `task` is (index, stem, image_path, label_path[, sample_split]). Returns a dict.

    cfg keys: rules (LabelRules fields as a dict), channels, encoding, resize ([w, h] or None),
    resize_mode, max_pixels, build (produce Datum bytes), significant_bits (16-bit greyscale images
    are stored as value ÷ 2^(n − 8); None while the check has yet to find n). `sample_split`: this image is one of
    the split's mean-image samples; its final pixels are added to `samples` (a
    `stats.SampleSums` that lives where the pixels are, so no array crosses a pipe).
    """
    index, stem, image_path, label_path = task[:4]
    sample_split = task[4] if len(task) > 4 else None
    datum.reuse_decoded_memory()
    res = {"index": index, "stem": stem, "image_path": image_path, "label_path": label_path,
           "problems": [], "notes": []}
    max_pixels = cfg.get("max_pixels", DEFAULT_MAX_PIXELS)

    def pixels_needed(image):
        """Does anything use this image's pixels? Not when it is only checked or stored as it is."""
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            return True  # the check reports whether alpha is uniform
        if sixteen_bit.is_grey16(image.mode):
            return True  # the check reports their value range (the 16-bit option scales by it)
        if not cfg.get("build", True):
            return False
        if sample_split and samples is not None:
            return True
        return (image.mode != transform.target_mode(image.mode, cfg["channels"]) or bool(cfg.get("resize"))
                or cfg["encoding"] == "raw" or (image.format == "PNG" and cfg["encoding"] != "png"))

    img_bytes, p1 = _read(image_path)
    lbl_bytes, p2 = _read(label_path)
    im = lb = None
    if img_bytes is not None:
        im, size, p1 = _open(image_path, img_bytes, max_pixels, pixels_needed)
    if lbl_bytes is not None:
        lb, _, p2 = _open(label_path, lbl_bytes, max_pixels)
    for p, path in ((p1, image_path), (p2, label_path)):
        if p:
            res["problems"].append({"code": p[0], "message": p[1], "files": [path]})
    if im is None or lb is None:
        return res

    res["size"] = list(size)  # `im` itself may be a reduced-scale decode (see JPEG_CHECK_SCALE)
    res["image_mode"] = im.mode
    res["label_mode"] = lb.mode
    if size != lb.size:
        res["problems"].append({"code": "size_mismatch", "files": [image_path, label_path],
                                "message": "image %s is %d×%d but its label %s is %d×%d"
                                % (image_path, size[0], size[1], label_path, lb.width, lb.height)})
        return res
    if im.mode == "F":  # Pillow's conversion clips floats: 0..1 data would become a black image
        a = np.asarray(im)
        res["problems"].append({"code": "image_range", "files": [image_path], "message":
                                "%s is a 32-bit floating-point image (values %.4g to %.4g): its scale to 0-255 cannot "
                                "be known; save it as 8- or 16-bit integers (e.g. 0-1 times 255)"
                                % (image_path, float(np.nanmin(a)) if a.size else 0, float(np.nanmax(a)) if a.size else 0)})
        return res
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        res["alpha"] = _alpha_uniform(im)
    head = png.header(img_bytes[:33]) if im.format == "PNG" else None
    if head is not None and head[2] == 16 and head[3] in (2, 6):
        res["notes"].append("%s: 16-bit colour PNG: read as its high 8 bits (value ÷ 256, what Pillow decodes); "
                            "the 16-bit option applies to greyscale images only" % image_path)
    if sixteen_bit.is_grey16(im.mode):
        res["grey16"] = sixteen_bit.inspect(im, img_bytes)
        problem = sixteen_bit.range_problem(image_path, res["grey16"], cfg.get("significant_bits"))
        if problem:
            res["problems"].append({"code": "image_range", "message": problem, "files": [image_path]})
            return res
    if lb.mode.startswith("I;16") or lb.mode == "I":
        res["notes"].append("%s: 16-bit label (values above 255 cannot be stored)" % label_path)
    if lb.mode == "P":  # a checksum is enough to tell palettes apart, and 3 KB less to pickle
        res["palette"] = zlib.crc32(bytes((lb.getpalette() or [])[:768]))
    if lb.format == "JPEG":
        res["notes"].append("label %s is JPEG: lossy compression alters class values at edges; "
                            "prefer PNG labels" % label_path)

    rules = LabelRules(**cfg["rules"])
    try:
        lr = _decode_label(lb, rules)
    except Exception as e:
        res["problems"].append({"code": "label_mode", "message": "%s: %s" % (label_path, getattr(e, "message", e)),
                                "files": [label_path]})
        return res
    res["notes"].extend("%s: %s" % (label_path, n) for n in lr.notes)
    res["nearest_pixels"] = lr.nearest_pixels
    if lr.nearest_colors:
        res["nearest_colors"] = {"%d,%d,%d" % c: v for c, v in lr.nearest_colors.items()}
    if lr.unknown_colors:
        res["unknown_colors"] = {"%d,%d,%d" % c: n for c, n in lr.unknown_colors.items()}
        res["problems"].append({"code": "unknown_colors", "files": [label_path],
                                "message": "%s has %d pixels in %d colours not in the colour map"
                                % (label_path, sum(lr.unknown_colors.values()), len(lr.unknown_colors))})
    if lr.bad_values:
        res["bad_values"] = {str(v): n for v, n in lr.bad_values.items()}
        res["problems"].append({"code": "bad_values", "files": [label_path],
                                "message": "%s has label values %s (pixel counts %s) outside the %s"
                                % (label_path, sorted(lr.bad_values), [lr.bad_values[v] for v in sorted(lr.bad_values)],
                                   "0/255 binary mask" if rules.binary else "%s classes" % rules.num_classes
                                   if rules.num_classes is not None else "class ids 0-254 (255 = ignore)")})
    if lr.unmapped:
        res["unmapped"] = {str(v): n for v, n in lr.unmapped.items()}
        res["problems"].append({"code": "unmapped_values", "files": [label_path],
                                "message": "label value%s %s in file %s %s not in the label map (%s pixels)"
                                % ("s" if len(lr.unmapped) > 1 else "", ", ".join(map(str, sorted(lr.unmapped))),
                                   label_path, "are" if len(lr.unmapped) > 1 else "is",
                                   ", ".join(str(lr.unmapped[v]) for v in sorted(lr.unmapped)))})
    if lr.ignored_colors:
        res["ignored_colors"] = {"%d,%d,%d" % c: n for c, n in lr.ignored_colors.items()}
    if getattr(lr, "raw_values", None) is not None:
        res["raw_values"] = lr.raw_values
    if lr.palette_used:
        res["palette_used"] = [[i, list(c), k, n] for i, (c, k, n) in sorted(lr.palette_used.items())]
    res["label_counts"] = lr.counts
    if res["problems"] or not cfg.get("build", True):
        return res

    tmode = transform.target_mode(im.mode, cfg["channels"])
    resize = cfg.get("resize")
    encoding = cfg["encoding"]
    keep_image = (im.mode == tmode and not resize and encoding != "raw"
                  and (im.format == "JPEG" or (im.format == "PNG" and encoding == "png")))
    work = im if keep_image else transform.convert_mode(im, tmode, cfg.get("significant_bits") or
                                                        sixteen_bit.LEGACY_BITS, image_path)
    indices = lr.indices
    if resize:
        work = transform.resize_image(work, resize, cfg["resize_mode"])
        indices = transform.resize_label(lr.array(), resize, cfg["resize_mode"])
        res["label_counts"] = index_counts(indices)
    channels = len(work.getbands())
    w, h = size if keep_image else work.size
    # Decoded pixels are only materialised when something needs them: the bytes of unchanged
    # files go into the Datum as they are, and the mean pixel/image use a sample of images.
    array = np.asarray(work) if encoding == "raw" or (sample_split and samples is not None) else None
    if keep_image:
        img_datum = datum.encode_datum(img_bytes, channels, h, w, encoded=True)
    elif encoding == "raw":
        data, c, hh, ww = datum.raw_array(array)
        img_datum = datum.encode_datum(data, c, hh, ww, encoded=False)
    else:
        img_datum = datum.encode_datum(transform.encode_image(work, encoding), channels, h, w, encoded=True)
    keep_label = (not lr.changed and not resize and lb.format == "PNG" and lb.mode in ("P", "L") and encoding != "raw")
    if keep_label:
        lbl_datum = datum.encode_datum(lbl_bytes, 1, h, w, encoded=True)
    else:
        indices = indices if indices is not None else lr.array()
        if encoding == "raw":
            lbl_datum = datum.encode_datum(indices.tobytes(), 1, h, w, encoded=False)
        else:
            lbl_datum = datum.encode_datum(transform.encode_label(indices), 1, h, w, encoded=True)
    if array is not None and sample_split and samples is not None:
        samples.add(sample_split, array)
    res.update(image_datum=img_datum, label_datum=lbl_datum, out_size=[w, h], channels=channels,
               reencoded={"image": not keep_image, "label": not keep_label})
    return res


def _alpha_uniform(image):
    """True when every pixel has the same alpha (a flat alpha is harmless; a varying one is a cut-out)."""
    try:
        a = np.asarray(image.convert("RGBA").getchannel("A") if image.mode == "P" else image.getchannel("A"))
    except (ValueError, OSError):
        return True
    return bool(a.min() == a.max()) if a.size else True


class _Label:
    """A decoded label: class-index counts always; the index array only when asked for."""

    def __init__(self, image, result=None, counts=None, bad_values=None, lut=None):
        self.image, self.result, self.lut = image, result, lut
        self.indices = result.indices if result is not None else None
        self.counts = counts if counts is not None else result.counts
        self.changed = result.changed if result is not None else lut is not None
        for key in ("notes", "unknown_colors", "nearest_colors", "unmapped", "ignored_colors", "palette_used"):
            setattr(self, key, getattr(result, key) if result is not None else {} if key != "notes" else [])
        self.bad_values = result.bad_values if result is not None else (bad_values or {})
        self.nearest_pixels = result.nearest_pixels if result is not None else 0
        self.raw_values = result.raw_values if result is not None else None

    def array(self):
        if self.indices is None:
            self.indices = np.asarray(self.image)
            if self.lut is not None:
                self.indices = np.take(self.lut, self.indices)
        return self.indices


def _decode_label(image, rules):
    """Palette/greyscale index labels: count classes with Pillow's C histogram (no array copy), and map
    the counts, not the pixels, through any lookup: the pixels are only mapped when the labels must be
    re-encoded. Everything else goes through `decode_label`."""
    if image.mode not in ("P", "L") or rules.binary:
        return _Label(image, result=decode_label(image, rules))
    counts = np.asarray(image.histogram()[:256], dtype=np.int64)
    raw_values = np.flatnonzero(counts).tolist()
    res = LabelResult(indices=None, changed=False, mode=image.mode)
    lut = None
    if image.mode == "P" and rules.palette_by_color:
        ids, near, colors = palette_lut(image, rules)
        lut, changed, counts = map_counts(counts, ids, res, rules, colors, near)
    elif rules.value_lut is not None:
        lut, changed, counts = map_counts(counts, rules.value_lut, res, rules)
    if lut is not None and not changed:
        lut = None
    if rules.num_classes is not None:
        res.bad_values.update({v: int(counts[v]) for v in range(rules.num_classes, 255) if counts[v]})
    label = _Label(image, result=res, counts=counts, lut=lut)
    label.changed = lut is not None
    label.raw_values = raw_values
    return label
