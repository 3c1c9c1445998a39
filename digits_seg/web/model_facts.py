"""What a training job was and how it went, in one dict: the model page, the home page, the
dataset page and the comparison page all answer the same questions from it.

    model_facts(job) → dataset, network and its source, solver settings, device, duration,
                       best val mIoU and where, epochs done / total

The best-so-far numbers come from `metrics.jsonl`, which grows while the job runs; a summary
is cached per app by the file's (mtime, size), so a listing of fifty models reads only the
files that changed since the last request.
"""

import os
import time

from flask import url_for

from ..errors import NotFoundError
from ..fsutil import read_json
from ..jobs.job import JobState, parse_iso
from ..training import metrics_log
from .helpers import format_eta, job_url, state

SETTINGS = ("epochs", "batch_size", "iter_size", "solver_type", "base_lr", "lr_policy", "lr_step_size",
            "lr_stepvalues", "lr_gamma", "lr_power", "momentum", "weight_decay", "crop_size", "hflip",
            "random_scale", "mean_subtraction", "class_weighting", "dice_weight", "seed", "val_interval",
            "snapshot_interval", "early_stop_patience", "amp")
"""Training settings shown on the model page and compared across runs, in this order; their labels
are the model form's (training.params declares each once)."""


def setting_label(key):
    """The form's label of a training parameter ("Base learning rate"), from its declaration."""
    from ..training.params import TrainingParams

    field = TrainingParams.model_fields.get(key)
    return field.title if field is not None and field.title else key.replace("_", " ")


LR_POLICY_FIELDS = {"step": ("lr_step_size", "lr_gamma"), "multistep": ("lr_stepvalues", "lr_gamma"),
                    "exp": ("lr_gamma",), "inv": ("lr_gamma", "lr_power"), "poly": ("lr_power",),
                    "sigmoid": ("lr_step_size", "lr_gamma"), "fixed": ()}
"""LR fields that mean something for each policy (the others are hidden, not compared)."""

SUMMARY_CACHE_MAX = 4000
"""Cached metrics summaries per app (one per model job); the cache is emptied beyond this."""


def format_value(value):
    """A setting as a person reads it: numbers without trailing zeros, lists joined, yes/no."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "%g" % value
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def settings_rows(params):
    """[(key, label, text)] of the settings that apply to this run (LR fields of its policy only)."""
    policy = params.get("lr_policy") or "fixed"
    lr_fields = {f for fields in LR_POLICY_FIELDS.values() for f in fields}
    wanted = set(LR_POLICY_FIELDS.get(policy, lr_fields))
    rows = []
    for key in SETTINGS:
        if key in lr_fields and key not in wanted:
            continue
        if key in params:
            rows.append((key, setting_label(key), format_value(params[key])))
    return rows


def model_classes(model_dir):
    """[{index, name, color}] of a model folder (labels.txt and colormap.json; grey for a missing colour)."""
    names, colors = [], []
    path = os.path.join(model_dir, "labels.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    cmap = os.path.join(model_dir, "colormap.json")
    if os.path.exists(cmap):
        colors = read_json(cmap)
    return [{"index": i, "name": n, "color": colors[i] if i < len(colors) else [128, 128, 128]}
            for i, n in enumerate(names)]


def running_seconds(job, now=None):
    """Time spent running, summed over every run (a resumed job ran more than once); 0 if never."""
    now = time.time() if now is None else now
    total, since = 0.0, None
    for entry in job.status_history:
        t = parse_iso(entry["time"])
        if since is not None:
            total += max(0.0, t - since)
            since = None
        if entry["state"] == JobState.RUNNING.value:
            since = t
    if since is not None:
        total += max(0.0, now - since)
    return total


def metrics_summary(job_dir):
    """Best val mIoU (epoch, iteration), latest epoch, per-class IoU of the best point; cached by file stat."""
    path = metrics_log.metrics_path(job_dir)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return _summarize([])
    cache = state().extras.setdefault("metrics_summaries", {})
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in cache:
        if len(cache) > SUMMARY_CACHE_MAX:
            cache.clear()
        cache[key] = _summarize(metrics_log.read_metrics(job_dir))
    return cache[key]


def _summarize(records):
    best = None
    epoch = None
    for r in records:
        if r.get("epoch") is not None:
            epoch = r["epoch"] if epoch is None else max(epoch, r["epoch"])
        if r.get("type") == "val" and r.get("mean_iou") is not None:
            if best is None or r["mean_iou"] > best["mean_iou"]:
                best = r
    return {"best_mean_iou": best["mean_iou"] if best else None,
            "best_epoch": best.get("epoch") if best else None,
            "best_iteration": best.get("iteration") if best else None,
            "best_pixel_acc": best.get("pixel_acc") if best else None,
            "best_per_class_iou": best.get("per_class_iou") if best else None,
            "epochs_done": epoch}


def job_ref(job_id, kind=None):
    """{id, name, kind, state, url} of a job a model refers to; `missing` when it was deleted."""
    if not job_id:
        return None
    try:
        other = state().store.get(str(job_id))
    except (NotFoundError, ValueError):
        return {"id": job_id, "name": None, "kind": kind, "state": None, "url": None, "missing": True}
    return {"id": other.id, "name": other.name, "kind": other.kind, "state": other.state.value,
            "url": job_url(other), "missing": False}


def _params(job):
    return job.params if isinstance(job.params, dict) else {}


def _network_param(params):
    """params["network"] as a dict; older or hand-written job.json files may hold just a name."""
    net = (params if isinstance(params, dict) else {}).get("network")
    if isinstance(net, str):
        return {"kind": "standard", "name": net}
    return net if isinstance(net, dict) else {}


def network_facts(job):
    """The network a model trained, in words, with links to its prototxt and its layer table."""
    net = _network_param(job.params)
    kind = net.get("kind", "standard")
    source = None
    if kind == "standard":
        title = net.get("name") or "standard network"
        described = "standard network %s" % title
    elif kind == "custom":
        title = "custom network"
        described = "a custom prototxt"
    else:
        source = job_ref(net.get("job_id") or _params(job).get("%s_id" % kind), kind)
        snapshot = net.get("snapshot")
        source = dict(source or {}, source_kind=kind, snapshot=snapshot)
        title = "%s model %s" % ("pretrained" if kind == "pretrained" else "previous",
                                 source.get("name") or net.get("job_id") or "")
        described = ("fine-tuned from the pretrained model %s" if kind == "pretrained"
                     else "continued from the model %s") % (source.get("name") or "(deleted)")
        if kind == "previous" and snapshot:
            described += " (snapshot %s)" % snapshot
    model_dir = state().store.job_dir(job.id)
    has_prototxt = os.path.exists(os.path.join(model_dir, "network.prototxt"))
    from flask import current_app

    layers = "models.network" in current_app.view_functions and has_prototxt
    return {"kind": kind, "name": net.get("name"), "title": title, "described": described, "source": source,
            "prototxt_url": url_for("models.download", job_id=job.id, name="network.prototxt")
            if has_prototxt else None,
            "layers_url": url_for("models.network", job_id=job.id) if layers else None}


def device_text(job):
    """Requested device and where it ran ("auto → CPU worker on vm")."""
    requested = _params(job).get("device") or "auto"
    w = job.worker if isinstance(job.worker, dict) else {}
    if not w:
        return requested
    gpu = w.get("gpu")
    where = ("GPU %s" % gpu) if gpu not in (None, "", "None") else "CPU"
    if gpu == "all":
        where = "all GPUs"
    return "%s → %s worker on %s" % (requested, where, w.get("host") or "?")


def model_facts(job):
    """Everything the pages say about one model job (JSON-able)."""
    p = _params(job)
    summary = metrics_summary(state().store.job_dir(job.id))
    seconds = running_seconds(job)
    return {
        "dataset": job_ref(p.get("dataset_id"), "dataset"),
        "network": network_facts(job),
        "settings": [{"key": k, "label": label, "value": text} for k, label, text in settings_rows(p)],
        "device": device_text(job),
        "duration_s": round(seconds, 1),
        "duration": format_eta(seconds) if seconds else "",
        "best_mean_iou": summary["best_mean_iou"],
        "best_epoch": summary["best_epoch"],
        "best_iteration": summary["best_iteration"],
        "best_pixel_acc": summary["best_pixel_acc"],
        "epochs_done": summary["epochs_done"],
        "epochs_total": p.get("epochs"),
    }
