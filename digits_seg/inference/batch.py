"""The `infer_many` task ("test many"): predict a set of images, score them, write results + a zip.

Runs in an RQ worker (or in-process for the CLI and tests). Job folder layout it writes:
    images/<name>.jpg     the input as seen (for the viewer; JPEG keeps it small)
    masks/<name>.png      palette PNG: pixel = class id, palette = dataset colours
    overlays/<name>.png   prediction blended over the input
    gt/<name>.png         ground truth as palette PNG, when known
    results.json          per-image entries + aggregate metrics ("complete": false while running)
    results.zip           masks/, overlays/, results.json (written last, via temp + rename)
"""

import io
import os
import re
import time
import zipfile

import numpy as np
from PIL import Image

from ..errors import DigitsSegError, JobAborted, ValidationError
from ..fsutil import temp_path_for, write_bytes_atomic, write_json_atomic
from . import scoring, visualize
from .sources import iter_items
from .sources import validate_params as _validate_params

RESULTS_FILE = "results.json"
ZIP_FILE = "results.zip"
FOLDERS = ("images", "masks", "overlays", "gt")
FLUSH_EVERY_S = 5.0
"""How often, in seconds, partial results.json is rewritten while the job runs."""


def validate_params(raw, settings=None):
    """Canonical params of an inference job (see `sources.validate_params`)."""
    return _validate_params(raw, settings)


def file_stem(name, used):
    """The input's own name, made safe as a file name; `_2`, `_3`… only when two inputs share it.

    Results keep the names users know (masks/frame_001.png for frame_001.jpg) instead of
    numbered copies; `used` (lower-cased stems so far) keeps them unique within one job.
    """
    clean = re.sub(r"[^\w.-]+", "_", str(name)).strip("._")[:100] or "image"
    stem, k = clean, 2
    while stem.lower() in used:
        stem, k = "%s_%d" % (clean, k), k + 1
    used.add(stem.lower())
    return stem


def _jpeg(array):
    buf = io.BytesIO()
    Image.fromarray(visualize.as_rgb(array)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _device(params):
    dev = params.get("device")
    if dev:
        return dev
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _aggregate(conf, with_gt, classes):
    if not with_gt:
        return None
    agg = scoring.scores(conf)
    agg["per_class"] = [
        {"id": i, "name": classes[i] if i < len(classes) else "class %d" % i,
         "iou": agg["per_class_iou"][i], "acc": agg["per_class_acc"][i]}
        for i in range(len(agg["per_class_iou"]))
    ]
    return agg


def _write_results(job_dir, header, entries, conf, with_gt, complete):
    doc = dict(header)
    doc.update({
        "complete": complete,
        "count": len(entries),
        "with_gt": with_gt,
        "errors": sum(1 for e in entries if e.get("error")),
        "aggregate": _aggregate(conf, with_gt, header["classes"]),
        "images": entries,
    })
    write_json_atomic(os.path.join(job_dir, RESULTS_FILE), doc)
    return doc


def _write_zip(job_dir, entries):
    path = os.path.join(job_dir, ZIP_FILE)
    tmp = temp_path_for(path)
    try:
        # Masks and overlays are already compressed PNGs: store them, deflate only the JSON.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for e in entries:
                for key in ("mask", "overlay"):
                    if e.get(key):
                        zf.write(os.path.join(job_dir, e[key]), e[key])
            zf.write(os.path.join(job_dir, RESULTS_FILE), RESULTS_FILE, compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _process(predictor, item, index, job_dir, params, num_classes, name):
    """Predict one item, write its files (named `name`) and return (entry, confusion matrix or None)."""
    image = item["image"]() if callable(item["image"]) else item["image"]
    gt = item["gt"]() if callable(item["gt"]) else item["gt"]
    pred, fit = predictor.run(image, fit=params.get("fit") or "auto", tile=params.get("tile"),
                              stride=params.get("stride"))
    files = {
        "image": "images/%s.jpg" % name,
        "mask": "masks/%s.png" % name,
        "overlay": "overlays/%s.png" % name,
    }
    write_bytes_atomic(os.path.join(job_dir, files["image"]), _jpeg(image))
    write_bytes_atomic(os.path.join(job_dir, files["mask"]), visualize.encode_png(pred, predictor.colormap))
    over = visualize.overlay(image, pred, predictor.colormap, alpha=params.get("alpha", 0.5))
    write_bytes_atomic(os.path.join(job_dir, files["overlay"]), visualize.encode_png(over))
    entry = {"index": index, "name": str(item["name"]), "source": item["source"], "width": int(pred.shape[1]),
             "height": int(pred.shape[0]), "fit": fit.describe(),
             "histogram": visualize.class_histogram(pred, predictor.classes)["classes"]}
    entry["histogram"] = [{"id": r["id"], "pixels": r["pixels"], "share": r["share"]}
                          for r in entry["histogram"] if r["pixels"]]
    conf = None
    if gt is not None:
        gt = np.asarray(gt, dtype=np.uint8)
        if gt.shape != pred.shape:
            raise ValidationError("ground truth %s is %dx%d but the image is %dx%d"
                                  % (item["source"], gt.shape[1], gt.shape[0], pred.shape[1], pred.shape[0]),
                                  field="labels")
        files["gt"] = "gt/%s.png" % name
        write_bytes_atomic(os.path.join(job_dir, files["gt"]), visualize.encode_png(gt, predictor.colormap))
        sc, conf = scoring.image_scores(pred, gt, num_classes)
        entry["scores"] = {k: sc[k] for k in ("pixel_acc", "mean_acc", "mean_iou", "fw_iou")}
        entry["per_class_iou"] = sc["per_class_iou"]
    entry.update(files)
    return entry, conf


def infer_many(job_dir, params, *, on_progress, should_stop, log, model_dir, settings=None):
    """Predict every image of the chosen source with a model snapshot and score it against ground truth."""
    from .predictor import Predictor

    device = _device(params)
    predictor = Predictor.from_model_dir(model_dir, snapshot=params.get("snapshot", "best"), device=device)
    num_classes = len(predictor.classes)
    log("model %s, weights %s, device %s, input recipe from %s"
        % (model_dir, os.path.basename(predictor.weights_path), device, predictor.preprocess.source))
    count, items = iter_items(params, job_dir, model_dir, predictor.colormap, num_classes,
                              max_pixels=settings.max_job_image_pixels if settings is not None else None,
                              bits=predictor.preprocess.significant_bits)
    log("%d image(s) from source %r" % (count, params["source"]))
    for folder in FOLDERS:
        os.makedirs(os.path.join(job_dir, folder), exist_ok=True)
    header = {"model_dir": model_dir, "snapshot": os.path.basename(predictor.weights_path),
              "source": params["source"], "classes": predictor.classes, "colormap": predictor.colormap,
              "fit": params.get("fit") or "auto",
              "dataset_resize": predictor.describe()["dataset_resize"]}
    entries, with_gt, used, skipped = [], 0, set(), 0
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    last_flush = time.monotonic()
    on_progress(0.0, "0 of %d images" % count)
    for index, item in enumerate(items):
        if should_stop():
            _write_results(job_dir, header, entries, conf, with_gt, complete=False)
            log("aborted after %d of %d images" % (index, count))
            raise JobAborted()
        try:
            entry, image_conf = _process(predictor, item, index, job_dir, params, num_classes,
                                         file_stem(item["name"], used))
        except DigitsSegError as e:
            entries.append({"index": index, "name": str(item["name"]), "source": item["source"], "error": e.message})
            log("skipped %s: %s" % (item["source"], e.message))
            skipped += 1
        else:
            if image_conf is not None:
                conf += image_conf
                with_gt += 1
            entries.append(entry)
        # a skipped image is done too: when the last one is skipped the job must still reach 1.0 ("n of n")
        on_progress((index + 1) / max(count, 1), "%d of %d images%s"
                    % (index + 1, count, " (%d skipped)" % skipped if skipped else ""))
        if time.monotonic() - last_flush > FLUSH_EVERY_S:
            _write_results(job_dir, header, entries, conf, with_gt, complete=False)
            last_flush = time.monotonic()
    doc = _write_results(job_dir, header, entries, conf, with_gt, complete=True)
    _write_zip(job_dir, entries)
    agg = doc["aggregate"] or {}
    if with_gt:
        log("aggregate over %d image(s) with ground truth: pixel acc %.4f, mean IoU %.4f"
            % (with_gt, agg["pixel_acc"] or 0.0, agg["mean_iou"] or 0.0))
    ok = len(entries) - doc["errors"]
    if ok == 0:
        raise ValidationError("no image could be predicted (%d errors; see the log)" % doc["errors"], field="source")
    return {"count": len(entries), "predicted": ok, "errors": doc["errors"], "with_gt": with_gt,
            "pixel_acc": agg.get("pixel_acc"), "mean_iou": agg.get("mean_iou")}
