"""Compare 2–6 training runs (`/models/compare?ids=A,B`): what a user looks at after a sweep.

Curves overlaid by epoch, the settings with their differences marked, per-class IoU at each
run's best validation, and each run's best snapshot. Everything comes from the job folders
(job.json, metrics.jsonl, labels.txt, snapshots), as on the model page.
"""

from flask import Blueprint, current_app, request, url_for

from ..errors import NotFoundError, ValidationError
from ..store.manifest import size_text
from ..training import metrics_log, snapshots
from .helpers import render, state
from .model_facts import model_classes, model_facts

bp = Blueprint("compare", __name__)

MIN_RUNS, MAX_RUNS = 2, 6
"""How many model jobs one comparison shows (more lines than six cannot be told apart)."""

RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
"""One colour per run, the same in every chart and table header (plotly's first six)."""


def parse_ids(raw):
    """`A,B,…` → unique ids in the given order; a clear error for too few or too many."""
    ids = []
    for part in (raw or "").replace(" ", ",").split(","):
        if part and part not in ids:
            ids.append(part)
    if len(ids) < MIN_RUNS:
        raise ValidationError("Choose at least %d models to compare (got %d): tick them on the home page's "
                              "Models tab, or give ?ids=A,B" % (MIN_RUNS, len(ids)), field="ids")
    if len(ids) > MAX_RUNS:
        raise ValidationError("At most %d models can be compared at once (got %d); leave some out"
                              % (MAX_RUNS, len(ids)), field="ids")
    return ids


def _model_job(job_id):
    try:
        job = state().store.get(job_id)
    except NotFoundError:
        raise ValidationError("No job %r: it may have been deleted" % job_id, field="ids")
    if job.kind != "model":
        raise ValidationError("%r (%s) is a %s job, not a model: only training runs can be compared"
                              % (job.name, job.id, job.kind), field="ids")
    return job


def _run(job, color):
    model_dir = state().store.job_dir(job.id)
    records = metrics_log.read_metrics(model_dir)
    curves = metrics_log.curves(records)
    facts = model_facts(job)
    val = [r for r in records if r.get("type") == "val" and r.get("mean_iou") is not None]
    best = max(val, key=lambda r: r["mean_iou"]) if val else None
    best_snap = None
    for s in snapshots.list_snapshots(model_dir, include_best=True):
        if s["best"]:
            best_snap = s
    test_url = (url_for("inference.test_one", job_id=job.id)
                if "inference.test_one" in current_app.view_functions else None)
    return {
        "id": job.id, "name": job.name, "state": job.state.value, "color": color,
        "url": url_for("models.show", job_id=job.id), "facts": facts,
        "curves": {"train": {k: curves["train"][k] for k in ("epoch", "iteration", "loss")},
                   "val": {k: curves["val"][k] for k in ("epoch", "iteration", "loss", "mean_iou", "pixel_acc")}},
        "classes": model_classes(model_dir),
        "best": {"epoch": best.get("epoch"), "iteration": best.get("iteration"), "mean_iou": best["mean_iou"],
                 "pixel_acc": best.get("pixel_acc"), "per_class_iou": best.get("per_class_iou") or []}
        if best else None,
        "best_snapshot": {"name": best_snap["name"], "epoch": best_snap["epoch"], "iteration": best_snap["iteration"],
                          "size": best_snap["size"], "size_text": size_text(best_snap["size"]),
                          "h5_url": url_for("models.download", job_id=job.id, name=best_snap["name"]),
                          "caffemodel_url": url_for("models.download", job_id=job.id, name="best.caffemodel"),
                          "test_url": test_url} if best_snap else None,
    }


def settings_table(runs):
    """Rows {label, values[], differs}: dataset and network first, then every solver setting any run has."""
    rows = [{"key": "dataset", "label": "Dataset",
             "values": [(r["facts"]["dataset"] or {}).get("name") or "–" for r in runs]},
            {"key": "network", "label": "Network", "values": [r["facts"]["network"]["title"] for r in runs]}]
    labels, order = {}, []
    for r in runs:
        for s in r["facts"]["settings"]:
            if s["key"] not in labels:
                labels[s["key"]] = s["label"]
                order.append(s["key"])
    for key in order:
        values = []
        for r in runs:
            found = [s["value"] for s in r["facts"]["settings"] if s["key"] == key]
            values.append(found[0] if found else "–")
        rows.append({"key": key, "label": labels[key], "values": values})
    rows.append({"key": "device", "label": "Device (where it ran)", "values": [r["facts"]["device"] for r in runs]})
    for row in rows:
        row["differs"] = len(set(row["values"])) > 1
    return rows


def class_table(runs):
    """Per-class IoU at each run's best validation, aligned by class name (runs may differ in classes)."""
    names, colors = [], {}
    for r in runs:
        for c in r["classes"]:
            if c["name"] not in colors:
                names.append(c["name"])
                colors[c["name"]] = c["color"]
    rows = []
    for name in names:
        values = []
        for r in runs:
            idx = [i for i, c in enumerate(r["classes"]) if c["name"] == name]
            ious = (r["best"] or {}).get("per_class_iou") or []
            values.append(ious[idx[0]] if idx and idx[0] < len(ious) else None)
        present = [v for v in values if v is not None]
        rows.append({"name": name, "color": colors[name], "values": values,
                     "best": max(present) if len(present) > 1 and max(present) > min(present) else None})
    return rows


@bp.route("/models/compare")
@bp.route("/models/compare.json", endpoint="show_json")
def show():
    ids = parse_ids(request.args.get("ids"))
    jobs = [_model_job(i) for i in ids]
    runs = [_run(j, RUN_COLORS[k]) for k, j in enumerate(jobs)]
    data = {"ids": ids, "runs": runs, "settings": settings_table(runs), "classes": class_table(runs)}
    return render("models/compare.html", data)
