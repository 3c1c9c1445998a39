"""Model pages: the live job page and its `.json` twin, downloads, validation previews.

The training form (what a user does to *create* a model) lives in `model_form.py` and adds
its views to this module's blueprint. The training itself runs in a worker
(`digits_seg.training.trainer.train`). The job page's `.json` twin carries the curves, so the
browser refreshes its charts by fetching it whenever the job changes.
"""

import os

from flask import Blueprint, url_for

from ..datasets.names import RecordNames
from ..errors import NotFoundError, ValidationError
from ..fsutil import read_json
from ..store.manifest import size_text  # the store's one wording for sizes ("101.6 KiB", never "0.1 MiB")
from ..training import metrics_log, snapshots
from .files import send_job_file
from .helpers import get_job, render, state
from .jobs import job_data
from .model_facts import model_classes, model_facts

bp = Blueprint("models", __name__)

DOWNLOADS = ("network.prototxt", "solver.prototxt", "metrics.jsonl", "labels.txt", "colormap.json",
             "preprocess.json", snapshots.BEST_FILE)
"""Files of a model folder offered for download besides the snapshots."""

PREVIEW_EPOCHS_SHOWN = 1
"""Validation preview strips shown on the page (the latest)."""


# -- job page -------------------------------------------------------------------------------
def _previews(job, model_dir, last_val):
    """The latest validation's preview strips: [{url, name, caption}] (larger in the page's lightbox).

    A strip is `<record index>.png` (image | ground truth | prediction) of the dataset's val split;
    its name is the record's file stem from the dataset's `records.json`, else (datasets made
    before it, or deleted since) "validation image #k".
    """
    if not (last_val and last_val.get("preview_dir")):
        return []
    folder = os.path.join(model_dir, last_val["preview_dir"])
    if not os.path.isdir(folder):
        return []
    dataset_dir, names = _val_names(model_dir)
    out = []
    for n in sorted(os.listdir(folder), key=lambda n: (len(n), n)):
        if not n.endswith(".png"):
            continue
        stem = n[:-4]
        source = names.get("val", int(stem)) if names and stem.isdigit() else None
        name = source["stem"] if source else "validation image #%s" % stem if stem.isdigit() else stem
        where = " (validation record %s; image %s, label %s)" % (stem, source["image"], source["label"]) if source else ""
        record_url = url_for("datasets.show", job_id=os.path.basename(dataset_dir), split="val", record="#" + stem,
                             _anchor="explorer") if dataset_dir and stem.isdigit() else None
        out.append({"url": url_for("models.preview", job_id=job.id, path=last_val["preview_dir"] + "/" + n),
                    "name": name, "source": source, "record_url": record_url,
                    "caption": "%s at epoch %g: image · ground truth · prediction%s"
                               % (name, last_val.get("epoch") or 0, where)})
    return out


def _val_names(model_dir):
    """(dataset folder, its RecordNames): (None, None) without a dataset; names None if made before them."""
    from ..inference.sources import dataset_dir_of

    try:
        dataset_dir = dataset_dir_of(model_dir)
    except (NotFoundError, ValidationError):
        return None, None
    return dataset_dir, RecordNames.load(dataset_dir)


def model_data(job):
    """What the model page shows, JSON-able: curves, latest validation, snapshots, previews."""
    model_dir = state().store.job_dir(job.id)
    records = metrics_log.read_metrics(model_dir)
    train_pts = [r for r in records if r.get("type") == "train"]
    val_pts = [r for r in records if r.get("type") == "val"]
    last_val = val_pts[-1] if val_pts else None
    classes = model_classes(model_dir)
    per_class = []
    if last_val:
        for c in classes:
            i = c["index"]
            # records written before a field existed (old metrics.jsonl) lack it: shown as unknown
            ious, accs = last_val.get("per_class_iou") or [], last_val.get("per_class_acc") or []
            iou = ious[i] if i < len(ious) else None
            acc = accs[i] if i < len(accs) else None
            per_class.append(dict(c, iou=iou, acc=acc))
    snaps = [{"name": s["name"], "iteration": s["iteration"], "epoch": s["epoch"], "size": s["size"],
              "size_text": size_text(s["size"]),
              "best": s["best"], "h5_url": url_for("models.download", job_id=job.id, name=s["name"]),
              "caffemodel_url": url_for("models.download", job_id=job.id,
                                        name=s["name"][:-3] + ".caffemodel")}
             for s in snapshots.list_snapshots(model_dir, include_best=True)]
    previews = _previews(job, model_dir, last_val)
    last_train = train_pts[-1] if train_pts else None
    return {"facts": model_facts(job), "curves": metrics_log.curves(records), "classes": classes,
            "per_class": per_class,
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
    """A snapshot (.h5), its `.caffemodel` (converted in memory, nothing written) or a model file."""
    job = get_job(job_id, kind="model")
    model_dir = state().store.job_dir(job.id)
    h5_names = {s["name"] for s in snapshots.list_snapshots(model_dir, include_best=True)}
    if name.endswith(".caffemodel") and name[: -len(".caffemodel")] + ".h5" in h5_names:
        return _caffemodel(job, model_dir, name)
    if name not in h5_names and name not in DOWNLOADS:
        raise NotFoundError("no file %r in model %s" % (name, job.id))
    return send_job_file(model_dir, name, allowed=[name], as_attachment=True)


def _caffemodel(job, model_dir, name):
    """Convert a snapshot to .caffemodel in a temp folder outside the jobs dir and send the bytes (a GET writes nothing)."""
    import tempfile

    from flask import Response

    with tempfile.TemporaryDirectory(prefix="digits-seg-caffemodel-") as tmp:
        out = os.path.join(tmp, name)
        snapshots.export_caffemodel(model_dir, name[: -len(".caffemodel")] + ".h5", out, name=job.name)
        with open(out, "rb") as f:
            payload = f.read()
    return Response(payload, mimetype="application/octet-stream",
                    headers={"Content-Disposition": "attachment; filename=%s" % name, "Cache-Control": "no-cache"})


@bp.route("/models/<job_id>/previews/<path:path>")
def preview(job_id, path):
    job = get_job(job_id, kind="model")
    return send_job_file(state().store.job_dir(job.id), path, allowed=["val_previews"])


@bp.route("/models/<job_id>/network")
@bp.route("/models/<job_id>/network.json", endpoint="network_json")
def network(job_id):
    """The network this model trained, as a layer table (shapes at its input size) beside its prototxt."""
    from ..errors import ValidationError
    from ..networks.shapes import layer_table, total_params

    job = get_job(job_id, kind="model")
    model_dir = state().store.job_dir(job.id)
    path = os.path.join(model_dir, "network.prototxt")
    if not os.path.exists(path):
        raise NotFoundError("model %r has no network.prototxt yet (it is written when training starts)" % job.name)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    pre = os.path.join(model_dir, "preprocess.json")
    recipe = read_json(pre) if os.path.exists(pre) else {}
    w, h = (recipe.get("input_size") or [224, 224])[:2]
    shape = (int(recipe.get("channels") or 3), int(h), int(w))
    data = {"id": job.id, "name": job.name, "input_shape": list(shape), "prototxt": text, "layers": [], "error": None,
            "prototxt_url": url_for("models.download", job_id=job.id, name="network.prototxt"),
            "model_url": url_for("models.show", job_id=job.id)}
    try:
        data["layers"] = layer_table(text, phase="train", input_shape=shape, source="network.prototxt")
        data["total_params"] = total_params(data["layers"])
    except ValidationError as exc:
        data["error"] = exc.message
    return render("models/network.html", data, job=job)


from . import model_form  # noqa: E402,F401  (the form's views register on `bp`; imported after it exists)
