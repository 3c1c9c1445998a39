""""Evaluate predictions": score masks made elsewhere against ground truth (an `evaluation` job run by a worker).

The form takes two server folders (under the data roots) and the classes (a dataset, or a
classes file and colour map); the task (`inference.evaluation.evaluate_job`) writes
`evaluation.json`, which the page shows with test-many's components: the four FCN metrics,
the per-class table, the confusion matrix and the images worst first.
"""

import os

from flask import Blueprint, jsonify, redirect, request, url_for

from ..errors import ValidationError
from ..fsutil import read_json
from ..inference import evaluation
from .helpers import get_job, render, request_data, state, wants_json

bp = Blueprint("evaluation", __name__)

WORST_SHOWN = 50
"""Images listed on the page (worst mean IoU first); the JSON twin lists them all."""


def _datasets():
    return [{"id": j.id, "name": j.name} for j in state().store.list(kind="dataset") if j.state.value == "done"]


@bp.route("/evaluations/new")
def new():
    values = dict(get_job(request.args["clone"], kind="evaluation").params) if request.args.get("clone") else {}
    if request.args.get("dataset"):
        values["dataset_id"] = request.args["dataset"]
    return render("evaluation/new.html", {"datasets": _datasets(), "values": values})


@bp.route("/evaluations", methods=["POST"], endpoint="create")
@bp.route("/evaluations.json", methods=["POST"], endpoint="create_json")
def create():
    raw = request_data()
    try:
        if raw.get("dataset_id"):
            get_job(str(raw["dataset_id"]).strip(), kind="dataset")
        params = evaluation.validate_params(raw, state().settings)
        name = (raw.get("name") or "").strip() or "evaluate %s" % os.path.basename(params["pred_dir"].rstrip(os.sep))
        depends = (params["dataset_id"],) if params["dataset_id"] else ()
        created = state().service.submit("evaluation", name, params, queue="default", depends_on=depends)
    except ValidationError as exc:
        if wants_json():
            raise
        return render("evaluation/new.html", {"datasets": _datasets(), "values": raw}, error=exc), 400
    url = url_for("evaluation.show", job_id=created.id)
    if wants_json():
        return jsonify({"id": created.id, "url": url}), 201
    return redirect(url)


@bp.route("/evaluations/<job_id>")
@bp.route("/evaluations/<job_id>.json", endpoint="show_json")
def show(job_id):
    """Status, the four metrics, per-class IoU/accuracy, confusion matrix, images worst first."""
    from .jobs import job_data

    job = get_job(job_id, kind="evaluation")
    path = os.path.join(state().store.job_dir(job.id), evaluation.EVALUATION_FILE)
    report = read_json(path) if os.path.isfile(path) else None
    data = job_data(job)
    data["report"] = report
    if report is not None and not wants_json():
        data["report"] = dict(report, images=report["images"][:WORST_SHOWN])
    return render("evaluation/show.html", data, job=job)
