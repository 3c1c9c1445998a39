"""Model pages: the live job page and its `.json` twin, downloads, validation previews.

The training form (what a user does to *create* a model) lives in `model_form.py` and adds
its views to this module's blueprint. The training itself runs in a worker
(`digits_seg.training.trainer.train`). The job page's `.json` twin carries the curves, so the
browser refreshes its charts by fetching it whenever the job changes.
"""

import os

from flask import Blueprint, send_from_directory, url_for

from ..errors import NotFoundError
from ..fsutil import read_json
from ..training import metrics_log, snapshots
from .helpers import get_job, render, state
from .jobs import job_data

bp = Blueprint("models", __name__)

DOWNLOADS = ("network.prototxt", "solver.prototxt", "metrics.jsonl", "labels.txt", "colormap.json",
             "preprocess.json", snapshots.BEST_FILE)
"""Files of a model folder offered for download besides the snapshots."""

PREVIEW_EPOCHS_SHOWN = 1
"""Validation preview strips shown on the page (the latest)."""


# -- job page -------------------------------------------------------------------------------
def _classes(model_dir):
    names, colors = [], []
    p = os.path.join(model_dir, "labels.txt")
    if os.path.exists(p):
        with open(p, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    c = os.path.join(model_dir, "colormap.json")
    if os.path.exists(c):
        colors = read_json(c)
    return [{"index": i, "name": n, "color": colors[i] if i < len(colors) else [128, 128, 128]}
            for i, n in enumerate(names)]


def model_data(job):
    """What the model page shows, JSON-able: curves, latest validation, snapshots, previews."""
    model_dir = state().store.job_dir(job.id)
    records = metrics_log.read_metrics(model_dir)
    train_pts = [r for r in records if r.get("type") == "train"]
    val_pts = [r for r in records if r.get("type") == "val"]
    last_val = val_pts[-1] if val_pts else None
    classes = _classes(model_dir)
    per_class = []
    if last_val:
        for c in classes:
            i = c["index"]
            iou = last_val["per_class_iou"][i] if i < len(last_val["per_class_iou"]) else None
            acc = (last_val.get("per_class_acc") or [None] * (i + 1))[i] if i < len(last_val.get("per_class_acc") or []) \
                else None
            per_class.append(dict(c, iou=iou, acc=acc))
    snaps = [{"name": s["name"], "iteration": s["iteration"], "epoch": s["epoch"], "size": s["size"],
              "best": s["best"], "h5_url": url_for("models.download", job_id=job.id, name=s["name"]),
              "caffemodel_url": url_for("models.download", job_id=job.id,
                                        name=s["name"][:-3] + ".caffemodel")}
             for s in snapshots.list_snapshots(model_dir, include_best=True)]
    previews = []
    if last_val and last_val.get("preview_dir"):
        folder = os.path.join(model_dir, last_val["preview_dir"])
        if os.path.isdir(folder):
            previews = [url_for("models.preview", job_id=job.id, path=last_val["preview_dir"] + "/" + n)
                        for n in sorted(os.listdir(folder), key=lambda n: (len(n), n)) if n.endswith(".png")]
    last_train = train_pts[-1] if train_pts else None
    return {"curves": metrics_log.curves(records), "classes": classes, "per_class": per_class,
            "last_val": {k: v for k, v in last_val.items() if k not in ("per_class_iou", "per_class_acc")}
            if last_val else None,
            "best_mean_iou": max((v["mean_iou"] for v in val_pts if v.get("mean_iou") is not None), default=None),
            "images_per_s": last_train.get("images_per_s") if last_train else None,
            "epoch": last_train.get("epoch") if last_train else None,
            "iteration": last_train.get("iteration") if last_train else None,
            "snapshots": snaps, "previews": previews,
            "downloads": [{"name": n, "url": url_for("models.download", job_id=job.id, name=n)}
                          for n in DOWNLOADS if os.path.exists(os.path.join(model_dir, n))]}


@bp.route("/models/<job_id>")
@bp.route("/models/<job_id>.json", endpoint="show_json")
def show(job_id):
    job = get_job(job_id, kind="model")
    data = job_data(job) | {"model": model_data(job)}
    return render("models/show.html", data, job=job)


@bp.route("/models/<job_id>/download/<name>")
def download(job_id, name):
    """A snapshot (.h5), its `.caffemodel` (converted on first request) or a model file."""
    job = get_job(job_id, kind="model")
    model_dir = state().store.job_dir(job.id)
    h5_names = {s["name"] for s in snapshots.list_snapshots(model_dir, include_best=True)}
    if name.endswith(".caffemodel") and name[: -len(".caffemodel")] + ".h5" in h5_names:
        src = os.path.join(model_dir, name[: -len(".caffemodel")] + ".h5")
        out = os.path.join(model_dir, name)
        if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
            snapshots.export_caffemodel(model_dir, os.path.basename(src), out, name=job.name)
    elif name not in h5_names and name not in DOWNLOADS:
        raise NotFoundError("no file %r in model %s" % (name, job.id))
    return send_from_directory(model_dir, name, as_attachment=True, max_age=0)


@bp.route("/models/<job_id>/previews/<path:path>")
def preview(job_id, path):
    job = get_job(job_id, kind="model")
    if not path.startswith("val_previews/"):
        raise NotFoundError("no preview %r" % path)
    return send_from_directory(state().store.job_dir(job.id), path, max_age=0)


from . import model_form  # noqa: E402,F401  (the form's views register on `bp`; imported after it exists)
