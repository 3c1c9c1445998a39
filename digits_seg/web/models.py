"""Model pages and API: the training form (sweeps, LR preview, network validation), the live job page, downloads.

Views parse, call one training-package function and render; the training itself runs in
a worker (`digits_seg.training.trainer.train`). The job page's `.json` twin carries the
curves, so the browser refreshes its charts by fetching it whenever the job changes.
"""

import os

from flask import Blueprint, jsonify, redirect, request, send_from_directory, url_for

from ..errors import NotFoundError, ValidationError
from ..fsutil import read_json
from ..training import metrics_log, snapshots
from ..training.lr_policy import POLICIES, lr_schedule_preview
from ..training.params import (CLASS_WEIGHTINGS, DEFAULTS, MEAN_MODES, default_model_name, expand_sweep,
                               validate_params)
from ..training.solver import SOLVER_TYPES
from .helpers import get_job, render, request_data, state, wants_json
from .jobs import job_data

bp = Blueprint("models", __name__)

DOWNLOADS = ("network.prototxt", "solver.prototxt", "metrics.jsonl", "labels.txt", "colormap.json",
             "preprocess.json", snapshots.BEST_FILE)
"""Files of a model folder offered for download besides the snapshots."""

PREVIEW_EPOCHS_SHOWN = 1
"""Validation preview strips shown on the page (the latest)."""


# -- form ---------------------------------------------------------------------------------
def _datasets():
    return [j for j in state().store.list(kind="dataset") if j.state.value in ("done", "running", "queued")]


def _dataset_info(dataset_id):
    from ..datasets.info import DatasetInfo

    job = get_job(dataset_id, kind="dataset")
    if job.state.value in ("error", "aborted"):
        raise ValidationError("dataset %r ended as %s; choose another" % (job.name, job.state.value), field="dataset_id")
    return job, (DatasetInfo.load(state().store.job_dir(job.id)) if job.state.value == "done" else None)


def _form_choices():
    from ..jobs.queue import list_workers
    from ..networks.standard import STANDARD_NETWORKS

    try:
        workers = list_workers(state().service.conn)
    except Exception:  # no Redis reachable: the form still works, it just lists no GPUs
        workers = []
    gpus = [w for w in workers if isinstance(w.get("gpu"), int)]
    # Workers started with `--gpu all` serve multi-GPU (DistributedDataParallel) jobs on their machine.
    machines = [w for w in workers if w.get("gpu") == "all" and int(w.get("gpu_count") or 0) > 1]
    store = state().store
    return {
        "datasets": [{"id": j.id, "name": j.name, "state": j.state.value} for j in _datasets()],
        "standard": [{"name": k, "title": v.title, "description": v.description, "solver": v.solver}
                     for k, v in STANDARD_NETWORKS.items()],
        "previous": [{"id": j.id, "name": j.name} for j in store.list(kind="model")
                     if snapshots.list_snapshots(store.job_dir(j.id))],
        "pretrained": [{"id": j.id, "name": j.name} for j in store.list(kind="pretrained") if j.state.value == "done"],
        "gpus": [{"value": "gpu:%s@%s" % (w["gpu"], w.get("host", "")), "name": w.get("gpu_name") or "GPU",
                  "index": w["gpu"], "host": w.get("host", ""), "memory_mb": w.get("memory_mb"),
                  "busy": bool(w.get("busy_job"))} for w in gpus],
        "gpu_machines": [{"value": "gpus:%d@%s" % (int(w["gpu_count"]), w.get("host", "")),
                          "count": int(w["gpu_count"]), "host": w.get("host", ""), "name": w.get("gpu_name") or "GPU",
                          "busy": bool(w.get("busy_job"))} for w in machines],
        "cpu_workers": len([w for w in workers if w.get("gpu") is None]),
        "solver_types": SOLVER_TYPES, "policies": POLICIES, "mean_modes": MEAN_MODES,
        "class_weightings": CLASS_WEIGHTINGS, "defaults": DEFAULTS,
    }


def _form_values(params):
    """Canonical params (a job to clone) → the flat field values of the form."""
    v = {k: val for k, val in params.items() if k != "network"}
    net = params.get("network") or {}
    v["network_kind"] = net.get("kind", "standard")
    v["network"] = net.get("name", "")
    v["custom_network"] = net.get("prototxt", "")
    v["previous_job"] = net.get("job_id", "") if net.get("kind") == "previous" else ""
    v["previous_snapshot"] = net.get("snapshot", "best")
    v["pretrained_job"] = net.get("job_id", "") if net.get("kind") == "pretrained" else ""
    for key in ("lr_stepvalues", "random_scale", "base_lr", "batch_size"):
        if isinstance(v.get(key), list):
            v[key] = ", ".join("%g" % x for x in v[key]) if key != "random_scale" else "%g-%g" % tuple(v[key])
    return {k: ("" if val is None else val) for k, val in v.items()}


@bp.route("/models/new")
def new():
    values = {"network_kind": "standard", "network": "fcn-alexnet"}
    if request.args.get("clone"):
        src = get_job(request.args["clone"], kind="model")
        values = _form_values(src.params)
        values["name"] = src.name + " (clone)"
    if request.args.get("dataset"):
        values["dataset_id"] = request.args["dataset"]
    if request.args.get("previous"):
        values.update(network_kind="previous", previous_job=request.args["previous"])
    if request.args.get("pretrained"):
        values.update(network_kind="pretrained", pretrained_job=request.args["pretrained"])
    return render("models/new.html", _form_choices() | {"values": values})


def _only_chosen_source(raw):
    """The form posts both the previous-model and the pretrained-model selects; keep only the one the
    network-kind radio chose (otherwise 'Train from it' on a pretrained model silently trained from
    whatever model the hidden previous-model select showed)."""
    kind = raw.get("network_kind")
    drop = {"pretrained": "previous_job", "previous": "pretrained_job"}.get(kind)
    return {k: v for k, v in raw.items() if k != drop} if drop else raw


def _refuse_broken_network(text, info, crop_size):
    """Compile a custom prototxt before queueing it: a typo is reported under the text box at once,
    with its line, instead of as a failed job minutes later (the Validate button runs the same check)."""
    from ..networks.shapes import check_network

    train_size = info and (info.splits.get("train") or {}).get("size")
    size = int(crop_size or (min(train_size) if train_size else 224))
    channels = info.channels if info else 3
    try:
        problems = check_network(text, input_shape=(channels, size, size), source="custom network")
    except ValidationError as exc:
        raise ValidationError(exc.message, field="custom_network")
    errors = [p for p in problems if not p.startswith("warning:")]
    if errors:
        raise ValidationError("The network cannot be trained: %s (use Validate for the layer table)"
                              % " | ".join(errors), field="custom_network")


@bp.route("/models", methods=["POST"])
@bp.route("/models.json", methods=["POST"], endpoint="create_json")
def create():
    from ..jobs.queue import queue_for_device

    raw = request_data()
    try:
        dataset_id = raw.get("dataset_id") or raw.get("dataset")
        if not dataset_id:
            raise ValidationError("Choose a dataset", field="dataset_id")
        dataset, info = _dataset_info(dataset_id)
        params = validate_params(_only_chosen_source(raw), state().settings, info)
        if params["network"]["kind"] == "custom":
            _refuse_broken_network(params["network"]["prototxt"], info, params.get("crop_size"))
        runs = expand_sweep(params)
        service = state().service
        queue = queue_for_device(params["device"], service.conn)
        depends = [] if dataset.state.value == "done" else [dataset.id]
        base = (raw.get("name") or "").strip() or default_model_name(params["network"], dataset.name, state().store)
        jobs = []
        for run in runs:
            name = base if len(runs) == 1 else "%s (lr %g, batch %s)" % (base, run["base_lr"], run["batch_size"])
            jobs.append(service.submit("model", name, run, queue=queue, depends_on=depends))
    except ValidationError as exc:
        if wants_json():
            raise
        return render("models/new.html", _form_choices() | {"values": raw}, error=exc), 400
    urls = [url_for("models.show", job_id=j.id) for j in jobs]
    if wants_json():
        return jsonify({"id": jobs[0].id, "url": urls[0], "jobs": [{"id": j.id, "name": j.name, "url": u}
                                                                     for j, u in zip(jobs, urls)]}), 201
    return redirect(urls[0] if len(jobs) == 1 else url_for("home.index"))


@bp.route("/models/lr-preview.json")
def lr_preview():
    """The LR schedule over training for the form's plot (x in epochs)."""
    args = dict(request.args)
    try:
        epochs = max(1, int(float(args.get("epochs") or DEFAULTS["epochs"])))
    except ValueError:
        raise ValidationError("epochs must be a number", field="epochs")
    args.setdefault("network_kind", "custom")
    args.setdefault("custom_network", "x")
    base = (args.get("base_lr") or "").split(",")[0]
    args["base_lr"] = base or DEFAULTS["base_lr"]
    params = validate_params(args, state().settings, None)
    total = 1000
    prev = lr_schedule_preview(params, total, points=200)
    return jsonify({"epoch": [i * epochs / float(total) for i in prev["iteration"]], "lr": prev["lr"],
                    "policy": prev["policy"]})


@bp.route("/models/standard/<name>.prototxt")
def standard_network(name):
    """A shipped network's prototxt, sized for `?dataset_id=`'s classes: the form pre-fills the Custom
    text box with it, so a user can start from (and validate) a standard network instead of a blank box."""
    from ..networks.standard import STANDARD_NETWORKS, standard_prototxt

    if name not in STANDARD_NETWORKS:
        raise NotFoundError("Unknown standard network %r. Available: %s" % (name, ", ".join(sorted(STANDARD_NETWORKS))))
    num_classes = 2
    if request.args.get("dataset_id"):
        _, info = _dataset_info(request.args["dataset_id"])
        num_classes = info.num_classes if info else num_classes
    return standard_prototxt(name, num_classes), 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.route("/models/validate-network.json", methods=["POST"])
def validate_network():
    """Compile a custom prototxt: layer table (shapes, parameters) or the error with its line."""
    from ..networks.analysis import analyse
    from ..networks.shapes import rows_from_net, total_params

    raw = request_data()
    text = raw.get("prototxt") or raw.get("custom_network") or ""
    if not text.strip():
        raise ValidationError("Paste a network description first", field="custom_network")
    size = 224
    if raw.get("dataset_id"):
        try:
            _, info = _dataset_info(raw["dataset_id"])
            train_size = info and (info.splits.get("train") or {}).get("size")
            size = int(raw.get("crop_size") or (min(train_size) if train_size else 224))
        except (NotFoundError, ValidationError, ValueError):
            pass
    shape = (3, size, size)
    result = analyse(text, shape, source="custom network")
    if result.kind != "network":
        first = result.problems[0]
        return jsonify({"ok": False, "error": {"message": first.text(), "line": first.line,
                                               "field": "custom_network"}}), 200
    view = next((result.phases[p] for p in ("train", "deploy", "val") if result.phases[p].ok), None)
    rows = rows_from_net(view.net) if view is not None else []
    return jsonify({"ok": result.phases["train"].ok and not result.errors(), "layers": rows,
                    "total_params": total_params(rows), "problems": [p.text() for p in result.problems],
                    "problem_details": [p.to_dict() for p in result.problems],
                    "phases": {k: v.to_dict() for k, v in result.phases.items()}, "input_shape": list(shape)})


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
            # records written before a field existed (old metrics.jsonl) lack it: shown as unknown
            ious, accs = last_val.get("per_class_iou") or [], last_val.get("per_class_acc") or []
            iou = ious[i] if i < len(ious) else None
            acc = accs[i] if i < len(accs) else None
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
