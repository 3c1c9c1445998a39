""""Test one image": predict, keep the result briefly for downloads, render it in every format.

The web process predicts one image with a cached Predictor (see cache.py), stores the
result in a small in-memory LRU (`ResultStore`, one per app) under a random token, and
answers with base64 PNGs and/or URLs; downloads (palette mask, colour, overlay, cut-out,
error map) are rendered from the stored arrays on request, so nothing is written to disk
for interactive use and nothing needs cleaning up.
"""

import base64
import collections
import dataclasses
import io
import os
import secrets
import threading
import time

import numpy as np
from PIL import Image

from ..errors import NotFoundError, ValidationError
from . import image_input, scoring, visualize

RENDER_KINDS = ("mask", "ids", "color", "overlay", "cutout", "error", "contour", "input", "gt", "gt_ids")
"""Download formats: palette PNG mask, greyscale id PNG (for the viewer), colour PNG, overlay PNG,
RGBA cut-out, error map, contour overlay, the input image, and the ground truth as palette PNG / greyscale ids."""

DEFAULT_RESULTS_KEPT = 32
"""Single-image results kept in memory for downloads (count)."""


@dataclasses.dataclass
class OneResult:
    """One predicted image and what is needed to render it."""

    image: np.ndarray
    mask: np.ndarray
    classes: list
    colormap: list
    weights: str
    gt: np.ndarray = None
    source: str = ""
    timing: dict = dataclasses.field(default_factory=dict)
    token: str = ""
    fit: dict = None  # geometry.Fit.to_dict(): at which scale the network saw the image

    def histogram(self):
        return visualize.class_histogram(self.mask, self.classes, self.colormap)

    def scores(self):
        if self.gt is None:
            return None
        sc = scoring.scores(scoring.confusion(self.mask, self.gt, len(self.classes)))
        return {k: sc[k] for k in ("pixel_acc", "mean_acc", "mean_iou", "fw_iou", "per_class_iou")}


def predict_one(predictor, image, gt=None, tile=None, stride=None, source="", fit="auto"):
    """Run the predictor on one uint8 image and return a OneResult (gt checked against the size)."""
    t0 = time.perf_counter()
    mask, used = predictor.run(image, fit=fit, tile=tile, stride=stride)
    predict_s = time.perf_counter() - t0
    if gt is not None and np.asarray(gt).shape != mask.shape:
        raise ValidationError("ground truth is %s but the image is %s" % (np.asarray(gt).shape, mask.shape),
                              field="gt")
    return OneResult(image=np.asarray(image), mask=mask, classes=predictor.classes, colormap=predictor.colormap,
                     weights=os.path.basename(predictor.weights_path or ""), gt=gt, source=source,
                     timing={"predict_s": round(predict_s, 4), "engine": predictor.engine}, fit=used.to_dict())


def parse_keep(raw, classes):
    """Turn "person,3" / ["person", 3] into class ids (names or ids), erroring on unknown names."""
    if raw is None or raw == "":
        return []
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    ids = []
    for item in items:
        token = str(item).strip()
        if not token:
            continue
        if token.isdigit():
            ids.append(int(token))
        elif token in classes:
            ids.append(classes.index(token))
        else:
            raise ValidationError("unknown class %r to keep. Available: %s" % (token, ", ".join(classes)), field="keep")
    return ids


def render(result, kind, alpha=0.5, keep=()):
    """Return (bytes, mimetype, file suffix) of one rendering of a result."""
    if kind not in RENDER_KINDS:
        raise NotFoundError("unknown rendering %r. Available: %s" % (kind, ", ".join(RENDER_KINDS)), field="kind")
    cmap = result.colormap
    if kind == "mask":
        return visualize.encode_png(result.mask, cmap), "image/png", "mask.png"
    if kind == "ids":
        return visualize.encode_png(result.mask), "image/png", "ids.png"
    if kind == "color":
        return visualize.encode_png(visualize.colorize(result.mask, cmap)), "image/png", "color.png"
    if kind == "overlay":
        return visualize.encode_png(visualize.overlay(result.image, result.mask, cmap, alpha)), "image/png", "overlay.png"
    if kind == "cutout":
        return visualize.encode_png(visualize.cutout(result.image, result.mask, keep)), "image/png", "cutout.png"
    if kind == "contour":
        return visualize.encode_png(visualize.contour_overlay(result.image, result.mask, cmap)), "image/png", "contour.png"
    if kind == "input":
        return visualize.encode_png(visualize.as_rgb(result.image)), "image/png", "input.png"
    if result.gt is None:
        raise NotFoundError("this result has no ground truth (pick an image from the validation split)", field="kind")
    if kind == "gt":
        return visualize.encode_png(result.gt, cmap), "image/png", "gt.png"
    if kind == "gt_ids":
        return visualize.encode_png(result.gt), "image/png", "gt_ids.png"
    return visualize.encode_png(visualize.error_overlay(result.image, result.mask, result.gt)), "image/png", "error.png"


def _jpeg_b64(image):
    buf = io.BytesIO()
    Image.fromarray(visualize.as_rgb(image)).save(buf, format="JPEG", quality=92)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def result_json(result, encode="base64", url_for_kind=None, alpha=0.5):
    """Return the API answer: histogram, per-class pixel counts, scores, and base64 PNGs and/or URLs.

    Args:
        encode: "base64" (mask, overlay, viewer inputs inline), "url" (URLs only) or "none".
        url_for_kind: callable(kind) → URL of a stored result's rendering (None: no URLs).
    """
    hist = result.histogram()
    out = {
        "token": result.token or None,
        "weights": result.weights,
        "source": result.source,
        "width": int(result.mask.shape[1]), "height": int(result.mask.shape[0]),
        "classes": result.classes, "colormap": result.colormap,
        "histogram": hist["classes"],
        "pixel_counts": {r["name"]: r["pixels"] for r in hist["classes"]},
        "ignored_pixels": hist["ignored"],
        "scores": result.scores(),
        "timing": dict(result.timing),
        "fit": result.fit,
    }
    if url_for_kind is not None:
        kinds = [k for k in RENDER_KINDS if k not in ("gt", "gt_ids", "error") or result.gt is not None]
        out["urls"] = {k: url_for_kind(k) for k in kinds}
    if encode == "base64":
        b64 = {k: base64.b64encode(render(result, k, alpha)[0]).decode("ascii") for k in ("mask", "overlay", "ids")}
        out["mask_png"], out["overlay_png"], out["ids_png"] = b64["mask"], b64["overlay"], b64["ids"]
        out["image_jpeg"] = _jpeg_b64(result.image)
        if result.gt is not None:
            out["gt_ids_png"] = base64.b64encode(visualize.encode_png(result.gt)).decode("ascii")
    elif encode not in ("url", "none"):
        raise ValidationError("encode must be base64, url or none, got %r" % encode, field="encode")
    return out


def viewer_config(body):
    """Return what static/viewer.js needs from an API answer: image / id-mask sources, classes, URLs."""
    urls = body.get("urls") or {}

    def src(b64_key, mime, url_key):
        if body.get(b64_key):
            return "data:%s;base64,%s" % (mime, body[b64_key])
        return urls.get(url_key)
    return {
        "image": src("image_jpeg", "image/jpeg", "input"),
        "pred": src("ids_png", "image/png", "ids"),
        "gt": src("gt_ids_png", "image/png", "gt_ids"),
        "classes": body.get("classes", []), "colormap": body.get("colormap", []),
        "width": body.get("width"), "height": body.get("height"),
        "downloads": {k: urls.get(k) for k in ("mask", "color", "overlay", "cutout", "error", "contour", "gt")
                      if urls.get(k)},
    }


class ResultStore:
    """Thread-safe LRU of OneResults by random token (per app; results vanish on restart)."""

    def __init__(self, capacity=DEFAULT_RESULTS_KEPT):
        self.capacity = capacity
        self._items = collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, result):
        result.token = secrets.token_urlsafe(12)
        with self._lock:
            self._items[result.token] = result
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return result.token

    def get(self, token):
        with self._lock:
            result = self._items.get(token)
            if result is not None:
                self._items.move_to_end(token)
        if result is None:
            raise NotFoundError("this result is no longer kept (the server keeps the last %d); predict the image "
                                "again" % self.capacity, field="token")
        return result


def val_split(model_dir):
    """Return the model's validation split as a SegmentationLMDB (NotFoundError when there is none)."""
    from ..datasets.reader import SegmentationLMDB
    from .sources import dataset_dir_of

    return SegmentationLMDB(os.path.join(dataset_dir_of(model_dir), "val_db"))


def decode_upload(data, name="upload", max_pixels=None):
    """Decode uploaded image bytes to a uint8 array (greyscale stays H×W).

    Args:
        max_pixels: refuse images with more pixels (width × height) than this, read from the
            header before anything is decoded; None: PIL's own decompression-bomb limit.
    """
    if not data:
        raise ValidationError("%s is empty (0 bytes); choose the image again" % name, field="image")
    try:
        return image_input.decode(io.BytesIO(data), name, max_pixels, image_input.WEB, "image")
    except Image.UnidentifiedImageError:
        kind = "text, not an image" if _looks_like_text(data) else "not an image format this server reads"
        raise ValidationError("%s is %s; upload a PNG, JPEG, BMP or TIFF file" % (name, kind), field="image")
    except Image.DecompressionBombError:
        raise ValidationError("%s claims more pixels than can be decoded safely (a decompression bomb?); images above "
                              "%.1f Mpx are not tested in the web server (setting DIGITS_SEG_MAX_IMAGE_PIXELS)"
                              % (name, (max_pixels or Image.MAX_IMAGE_PIXELS) / 1e6), field="image")
    except (OSError, ValueError, SyntaxError) as e:
        raise ValidationError("%s is damaged or truncated (%s); save it again and re-upload" % (name, e),
                              field="image")


def _looks_like_text(data):
    head = data[:512]
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head