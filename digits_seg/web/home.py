"""Home page: datasets, models and pretrained models in tabs (and the JSON twin)."""

from flask import Blueprint, jsonify, render_template, request

from .helpers import job_summary, state, wants_json
from .model_facts import model_facts

bp = Blueprint("home", __name__)

TABS = (("dataset", "Datasets"), ("model", "Models"), ("pretrained", "Pretrained models"),
        ("inference", "Inference"), ("evaluation", "Evaluations"), ("check", "Worker checks"))

HOME_PAGE_SIZE = 50
"""Rows per tab on the HTML home page; older jobs are one click away (`?tab=<kind>&page=N`).

With thousands of jobs, rendering every row cost seconds and a megabyte of HTML per visit;
the JSON twin still lists every job unless asked for fewer (`?limit=N`, `?state=`).
"""


@bp.route("/")
@bp.route("/index.json", endpoint="index_json")
def index():
    groups = {kind: [] for kind, _ in TABS}
    for job in state().store.list():
        groups.setdefault(job.kind, []).append(job)
    if wants_json():
        # every job by default (newest first); `?state=running` and `?limit=N` (per kind) for
        # clients of servers with thousands of jobs
        wanted = request.args.get("state")
        limit = _int_arg("limit", None)

        def summaries(kind):
            jobs = [j for j in groups[kind] if not wanted or j.state.value == wanted]
            return [job_summary(j) for j in (jobs[:max(0, limit)] if limit is not None else jobs)]
        return jsonify({"datasets": summaries("dataset"), "models": summaries("model"),
                        "pretrained_models": summaries("pretrained"), "inference": summaries("inference"),
                        "evaluations": summaries("evaluation"), "checks": summaries("check")})
    active = request.args.get("tab")
    if active not in groups:
        active = TABS[0][0]
    pages = {kind: _page(jobs, _int_arg("page") if kind == active else 1) for kind, jobs in groups.items()}
    return render_template("index.html", tabs=TABS, pages=pages, active=active, groups=groups)


def _row(job):
    """A listing row; model rows also say what they trained and how far they got."""
    row = job_summary(job)
    if job.kind == "model":
        row["facts"] = model_facts(job)
    return row


def _int_arg(name, default=1):
    try:
        return int(request.args.get(name, default))
    except (TypeError, ValueError):
        return default


def _page(jobs, number):
    """One page of a tab (newest first); out-of-range page numbers land on the nearest page."""
    total = len(jobs)
    count = max(1, -(-total // HOME_PAGE_SIZE))
    number = min(max(1, number), count)
    start = (number - 1) * HOME_PAGE_SIZE
    rows = [_row(j) for j in jobs[start:start + HOME_PAGE_SIZE]]
    return {"rows": rows, "number": number, "count": count, "total": total,
            "first": start + 1 if rows else 0, "last": start + len(rows)}
