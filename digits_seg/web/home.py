"""Home page: datasets, models and pretrained models in tabs (and the JSON twin)."""

from flask import Blueprint

from .helpers import job_summary, render, state

bp = Blueprint("home", __name__)

TABS = (("dataset", "Datasets"), ("model", "Models"), ("pretrained", "Pretrained models"),
        ("inference", "Inference"), ("check", "Worker checks"))


@bp.route("/")
@bp.route("/index.json", endpoint="index_json")
def index():
    jobs = state().store.list()
    groups = {kind: [] for kind, _ in TABS}
    for job in jobs:
        groups.setdefault(job.kind, []).append(job_summary(job))
    data = {"datasets": groups["dataset"], "models": groups["model"], "pretrained_models": groups["pretrained"],
            "inference": groups["inference"], "checks": groups["check"]}
    return render("index.html", data, groups=groups, tabs=TABS)
