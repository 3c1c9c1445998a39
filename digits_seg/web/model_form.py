"""The training form and its API: new/clone, submit (sweeps), LR preview, standard prototxt, network validation.

Its views register on the model pages' blueprint (`models.bp`), so their endpoint names are
`models.new`, `models.create`... The form's labels, hints and limits come from the
declarations in `training.params`; a refused submission writes nothing and answers every
field problem at once (JSON: `{"error": {"message", "field", "errors": [...]}}`).
"""

import os

from flask import jsonify, redirect, request, url_for

from ..declare import field_error, form_fields
from ..errors import NotFoundError, ValidationError
from ..training import snapshots
from ..training.lr_policy import POLICIES, lr_schedule_preview
from ..training.net_input import training_input
from ..training.params import (CLASS_WEIGHTINGS, DEFAULTS, MEAN_MODES, ModelSource, TrainingParams, check_name,
                               default_model_name, expand_sweep, validate_params)
from ..training.solver import SOLVER_TYPES
from .helpers import get_job, render, request_data, state, wants_json
from .models import bp

FORM_FIELDS = form_fields(ModelSource) | form_fields(TrainingParams)
"""Labels, hints and limits of every form field, from the declarations."""


def _datasets():
    return [j for j in state().store.list(kind="dataset") if j.state.value in ("done", "running", "queued")]


def _dataset_info(dataset_id):
    from ..datasets.info import DatasetInfo

    job = get_job(dataset_id, kind="dataset")
    if job.state.value in ("error", "aborted"):
        raise ValidationError("Dataset %r ended as %s; choose another" % (job.name, job.state.value),
                              field="dataset_id", label="Dataset")
    return job, (DatasetInfo.load(state().store.job_dir(job.id)) if job.state.value == "done" else None)


def _workers():
    from ..jobs.queue import list_workers

    try:
        return list_workers(state().service.conn)
    except Exception:  # no Redis reachable: the form still works, it just lists no GPUs
        return []


def _form_choices():
    from ..networks.standard import STANDARD_NETWORKS

    workers = _workers()
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
        "worker_count": len(workers),
        "solver_types": SOLVER_TYPES, "policies": POLICIES, "mean_modes": MEAN_MODES,
        "class_weightings": CLASS_WEIGHTINGS, "defaults": DEFAULTS, "fields": FORM_FIELDS,
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


def _render_form(values, error=None, status=200):
    """The form with `values`; each error of `error` under its field, the others above the form."""
    errors = list(getattr(error, "errors", None) or ([] if error is None else [
        {"field": error.field, "label": error.field, "message": error.message}]))
    by_field = {}
    for e in errors:
        by_field.setdefault(e.get("field"), []).append(e["message"])
    return render("models/new.html", _form_choices() | {"values": values},
                  error=error, errors=errors, field_errors=by_field), status


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
    return _render_form(values)


def _only_chosen_source(raw):
    """The form posts both the previous-model and the pretrained-model selects; keep only the one the
    network-kind radio chose (otherwise 'Train from it' on a pretrained model silently trained from
    whatever model the hidden previous-model select showed)."""
    kind = raw.get("network_kind")
    drop = {"pretrained": "previous_job", "previous": "pretrained_job"}.get(kind)
    return {k: v for k, v in raw.items() if k != drop} if drop else raw


def _network_errors(text, info, crop_size):
    """Compile a custom prototxt before queueing it: a typo is reported under the text box at once,
    with its line, instead of as a failed job minutes later (the Validate button runs the same check)."""
    from ..networks.shapes import check_network

    shape, _ = training_input(info, crop_size)
    try:
        problems = check_network(text, input_shape=shape, source="custom network")
    except ValidationError as exc:
        return [field_error(ModelSource, "custom_network", "does not compile: %s" % exc.message)]
    errors = [p for p in problems if not p.startswith("warning:")]
    if errors:
        return [field_error(ModelSource, "custom_network", "cannot be trained: %s (use Validate for the layer table)"
                            % " | ".join(errors))]
    return []


def plan_submission(raw):
    """Everything a submission needs, checked before anything is written: (dataset, params, name, warnings).

    Raises one ValidationError listing every problem: the form's fields, the dataset, the
    custom network, the model it starts from and the device.
    """
    from ..jobs.submit_checks import submission_problems

    errors, dataset, info = [], None, None
    dataset_id = raw.get("dataset_id") or raw.get("dataset")
    if not dataset_id:
        errors.append(field_error(ModelSource, "dataset_id", "is not chosen: choose a dataset"))
    else:
        try:
            dataset, info = _dataset_info(str(dataset_id))
        except NotFoundError:
            errors.append(field_error(ModelSource, "dataset_id", "%r does not exist" % (dataset_id,)))
        except ValidationError as exc:
            errors += exc.errors
    params = None
    try:
        params = validate_params(_only_chosen_source(raw), state().settings, info)
    except ValidationError as exc:
        errors += exc.errors
    warnings = []
    if params is not None:
        if params["network"]["kind"] == "custom":
            errors += _network_errors(params["network"]["prototxt"], info, params.get("crop_size"))
        conn = None
        try:
            conn = state().service.conn
        except Exception:  # queueing will report the missing Redis
            pass
        more, warnings = submission_problems(state().store, conn, params)
        errors += more
    if errors:
        raise ValidationError.of(errors)
    name = check_name(raw.get("name")) or default_model_name(params["network"], dataset.name, state().store)
    return dataset, params, name, warnings


@bp.route("/models", methods=["POST"])
@bp.route("/models.json", methods=["POST"], endpoint="create_json")
def create():
    from ..jobs.queue import queue_for_device

    raw = request_data()
    try:
        dataset, params, base, warnings = plan_submission(raw)
    except ValidationError as exc:
        if wants_json():
            raise
        return _render_form(raw, exc, 400)
    runs = expand_sweep(params)
    service = state().service
    queue = queue_for_device(params["device"], service.conn)
    depends = [] if dataset.state.value == "done" else [dataset.id]
    jobs = []
    for run in runs:
        name = base if len(runs) == 1 else "%s (lr %g, batch %s)" % (base, run["base_lr"], run["batch_size"])
        jobs.append(service.submit("model", name, run, queue=queue, depends_on=depends))
    urls = [url_for("models.show", job_id=j.id) for j in jobs]
    if wants_json():
        return jsonify({"id": jobs[0].id, "url": urls[0], "warnings": warnings,
                        "jobs": [{"id": j.id, "name": j.name, "url": u} for j, u in zip(jobs, urls)]}), 201
    return redirect(urls[0] if len(jobs) == 1 else url_for("home.index"))


@bp.route("/models/lr-preview.json")
def lr_preview():
    """The LR schedule over training for the form's plot (x in epochs), from the values the form would send.

    A standard network's recommended solver fills blank fields exactly as on submit; the other
    network kinds use the declared defaults (as submit does), so the preview is what will run.
    """
    args = dict(request.args)
    if args.get("network_kind", "standard") != "standard" or not args.get("network"):
        args["network_kind"], args["custom_network"] = "custom", "preview"
        args.pop("network", None)
    args["base_lr"] = (args.get("base_lr") or "").split(",")[0]
    args.pop("batch_size", None)
    params = validate_params(args, state().settings, None)
    total = 1000
    prev = lr_schedule_preview(params, total, points=200)
    return jsonify({"epoch": [i * params["epochs"] / float(total) for i in prev["iteration"]], "lr": prev["lr"],
                    "policy": prev["policy"], "base_lr": params["base_lr"], "epochs": params["epochs"]})


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
    from ..networks.shapes import total_params

    raw = request_data()
    text = raw.get("prototxt") or raw.get("custom_network") or ""
    if not text.strip():
        raise ValidationError("Paste a network description first", field="custom_network")
    # The size training will use (the dataset's, or its crop); else the file's, else an assumed one, said so.
    shape, reason = None, "no dataset is chosen, and the file does not state its input size"
    if raw.get("dataset_id"):
        try:
            _, info = _dataset_info(raw["dataset_id"])
            shape, reason = training_input(info, raw.get("crop_size"))
        except (NotFoundError, ValidationError):
            pass
    result = analyse(text, shape, source="custom network", input_origin="dataset", input_reason=reason)
    if result.kind != "network":
        first = result.problems[0]
        return jsonify({"ok": False, "error": {"message": first.text(), "line": first.line,
                                               "field": "custom_network"}}), 200
    phase = next((p for p in ("train", "deploy", "val") if result.phases[p].ok), None)
    rows = result.table(phase) if phase else []
    return jsonify({"ok": result.phases["train"].ok and not result.errors(), "layers": rows,
                    "total_params": total_params(rows), "total_params_note": result.params_note("choose the dataset (or a crop size)"),
                    "problems": [p.text() for p in result.problems],
                    "problem_details": [p.to_dict() for p in result.problems],
                    "phases": {k: v.to_dict() for k, v in result.phases.items()},
                    "input_shape": list(result.input.shape), "input": result.input.to_dict(),
                    "input_dependent": result.dependent})


def _solver_loss(msg, raw, info):
    """The loss a pasted solver was tuned for (the Custom network's, or the pretrained model's, when the
    form trains one) and the dataset's labelled pixels at the form's crop (`training.loss_scale`)."""
    from ..training.loss_scale import loss_context

    kind, network = raw.get("network_kind"), None
    if kind == "custom" and (raw.get("custom_network") or "").strip():
        network = (raw["custom_network"], "the custom network")
    elif kind == "pretrained" and raw.get("pretrained_job"):
        try:
            path = os.path.join(state().store.job_dir(get_job(str(raw["pretrained_job"]), kind="pretrained").id),
                                "network.prototxt")
            with open(path, encoding="utf-8") as fh:
                network = (fh.read(), "the pretrained model's network.prototxt")
        except (NotFoundError, OSError):
            network = None
    crop = raw.get("crop_size")
    crop = int(crop) if str(crop or "").strip().isdigit() else None
    return loss_context(msg, info, crop, network,
                        hint="paste the network it was tuned with under Custom network (its loss_param tells)")


@bp.route("/models/solver-fields.json", methods=["POST"])
def solver_fields():
    """Map a pasted or uploaded Caffe solver file to the form's solver fields (max_iter -> epochs for the dataset)."""
    from ..training.solver_file import read_solver, solver_to_params

    raw = request_data()
    text = raw.get("solver") or ""
    if not text.strip():
        raise ValidationError("Paste or choose a Caffe solver file first", field="solver_file")
    count, info = None, None
    if raw.get("dataset_id"):
        _, info = _dataset_info(raw["dataset_id"])
        count = ((info.splits.get("train") or {}).get("count") if info is not None else None)
    batch = str(raw.get("batch_size") or "1").split(",")[0].strip()
    try:
        msg = read_solver(text, "solver file")
        fields, said = solver_to_params(msg, count, int(batch) if batch.isdigit() else 1, "solver file",
                                        loss=_solver_loss(msg, raw, info))
    except ValidationError as exc:
        raise ValidationError(exc.message, field="solver_file")
    return jsonify({"fields": fields, "mapped": said})
