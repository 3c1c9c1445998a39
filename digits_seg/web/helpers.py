"""Small helpers every blueprint uses: app state, JSON twins, form parsing, job loading."""

import dataclasses
import math
import time

from flask import current_app, jsonify, render_template, request

from ..errors import NotFoundError


@dataclasses.dataclass
class AppState:
    """Per-app objects (no globals): settings, job store and service, caches."""

    settings: object
    store: object
    service: object
    extras: dict = dataclasses.field(default_factory=dict)


def state():
    return current_app.extensions["digits_seg"]


def wants_json():
    """True for `.json` URLs, JSON bodies and clients that prefer JSON over HTML."""
    if request.path.endswith(".json") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def render(template, data, **context):
    """Render `template` for browsers, or `data` as JSON for the page's `.json` twin."""
    if wants_json():
        return jsonify(data)
    return render_template(template, data=data, **context)


def request_data():
    """The submitted fields as a dict: JSON body, or form fields (lists kept for repeated keys)."""
    if request.is_json:
        body = request.get_json(silent=True)  # the edge (edge.py) refused invalid JSON already
        if body is not None and not isinstance(body, dict):
            from ..errors import ValidationError

            raise ValidationError("the JSON body must be an object ({\"field\": value, ...}), not %s"
                                  % type(body).__name__, field="body")
        return body or {}
    data = {}
    for key in request.form.keys():
        values = request.form.getlist(key)
        data[key] = values if len(values) > 1 else values[0]
    data.pop("csrf_token", None)
    return data


def get_job(job_id, kind=None):
    """Load a job or 404 (also when it exists but is of another kind)."""
    job = state().store.get(job_id)
    if kind is not None and job.kind != kind:
        raise NotFoundError("no %s with id %r" % (kind, job_id))
    return job


def job_summary(job):
    """The fields the listing and the live updates show."""
    progress = dict(job.progress or {})
    return {
        "id": job.id, "kind": job.kind, "name": job.name, "state": job.state.value,
        "created": job.created, "progress": progress, "eta": format_eta(progress.get("eta_s")),
        "error": job.error, "status_note": status_note(job), "url": job_url(job),
    }


def status_note(job):
    """What a queued job waits for ("waiting for dataset X", "waiting for a worker")."""
    from ..jobs.job import JobState

    if job.state != JobState.QUEUED:
        return ""
    store = state().store
    for dep_id in job.depends_on:
        try:
            dep = store.get(dep_id)
        except NotFoundError:
            continue
        if not dep.state.finished:
            return "waiting for %s %r" % (dep.kind, dep.name)
    return "waiting for a %s worker" % ("GPU" if job.queue.startswith("gpu") else "free")


KIND_ENDPOINTS = {"dataset": "datasets.show", "model": "models.show",
                  "pretrained": "store.show_pretrained", "inference": "inference.show",
                  "evaluation": "evaluation.show"}


URL_ID_PLACEHOLDER = "00000000-000000-0000"
"""Stands for the job id in a URL built once per endpoint and request (ids never need escaping)."""


def job_url(job):
    """The page of `job` (its kind's blueprint page when registered, else the generic one).

    Listings call this for thousands of jobs, so `url_for` runs once per endpoint and
    request and the id is substituted into its result.
    """
    from flask import g, url_for

    endpoint = KIND_ENDPOINTS.get(job.kind)
    if not (endpoint and endpoint in current_app.view_functions):
        endpoint = "jobs.show"
    templates = g.setdefault("job_url_templates", {})
    if endpoint not in templates:
        templates[endpoint] = url_for(endpoint, job_id=URL_ID_PLACEHOLDER)
    return templates[endpoint].replace(URL_ID_PLACEHOLDER, job.id)


def format_eta(seconds):
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm %02ds" % (seconds // 60, seconds % 60)
    if seconds < 86400:
        return "%dh %02dm" % (seconds // 3600, (seconds % 3600) // 60)
    return "%dd %02dh" % (seconds // 86400, (seconds % 86400) // 3600)


def format_time(iso):
    return (iso or "")[:19].replace("T", " ")


def age(iso):
    from ..jobs.job import parse_iso

    try:
        return format_eta(time.time() - parse_iso(iso)) + " ago"
    except (TypeError, ValueError):
        return ""


def ticks(text):
    """Escape `text` and show its `quoted` names as code: messages quote names in backticks for the log."""
    from markupsafe import Markup, escape

    parts = str(escape(text)).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: not a quotation
        return Markup("`".join(parts))
    return Markup("".join("<code>%s</code>" % p if i % 2 else p for i, p in enumerate(parts)))


def thousands(n):
    """12,345 (counts of pairs and pixels are read at a glance)."""
    try:
        return "{:,}".format(int(n))
    except (TypeError, ValueError):
        return "" if n is None else str(n)
