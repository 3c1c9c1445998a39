"""Generic job pages and actions: show, log, abort, delete, clone, resume, live events."""

import json
import os
import time

from flask import Blueprint, Response, flash, jsonify, redirect, request, send_file, url_for

from ..errors import ConflictError, NotFoundError
from .helpers import get_job, job_summary, job_url, render, state, wants_json

bp = Blueprint("jobs", __name__)

CLONE_ENDPOINTS = {"dataset": "datasets.new", "model": "models.new", "inference": "inference.new"}
SSE_LIFETIME_S = 25
"""Seconds one event stream stays open; the browser reconnects (keeps server threads free)."""


def job_data(job):
    """The job page's JSON twin: the record plus the log tail."""
    data = job.to_dict()
    data.update(job_summary(job))
    log, cut = state().store.read_log(job.id, max_bytes=20_000)
    data["log_tail"] = log
    data["log_truncated"] = cut
    # Who needs this job (Delete is refused while any does; the dataset page lists its models). It scans
    # every job, so the JSON twin of a live job (polled every few seconds by its page) leaves it out.
    live = not job.state.finished
    data["used_by"] = [] if live and wants_json() else [_user(u) for u in state().service.users_of(job.id)]
    return data


def _user(job):
    """A job that needs this one (a model trained on this dataset, ...), as the page lists it."""
    from .model_facts import model_facts

    row = {"id": job.id, "kind": job.kind, "name": job.name, "state": job.state.value, "url": job_url(job)}
    if job.kind == "model":
        f = model_facts(job)
        row.update({k: f[k] for k in ("best_mean_iou", "best_epoch", "epochs_done", "epochs_total", "duration")},
                   network=f["network"]["title"])
    return row


def delete_refusal(job, used_by):
    """Why Delete would be refused (the page says it at once, without an "are you sure?" first)."""
    if not used_by:
        return ""
    names = ", ".join("%r" % u["name"] for u in used_by[:5]) + (" and %d more" % (len(used_by) - 5)
                                                                  if len(used_by) > 5 else "")
    return "%s %r is used by %s; delete %s first." % (job.kind, job.name, names,
                                                      "them" if len(used_by) > 1 else "it")


@bp.route("/jobs/<job_id>")
@bp.route("/jobs/<job_id>.json", endpoint="show_json")
def show(job_id):
    job = get_job(job_id)
    if not request.path.endswith(".json") and not wants_json():
        url = job_url(job)
        if url != request.path:
            return redirect(url)
    return render("jobs/show.html", job_data(job), job=job)


STATUS_BATCH_MAX = 500
"""Most job ids one `/jobs/status.json?ids=` request answers for."""


@bp.route("/jobs/status.json", endpoint="status_many")
def status_many():
    """Summaries of several jobs (`?ids=a,b,c`; null for unknown ids) in one request.

    Every page polls this for its live jobs (static/app.js): an event stream per job would
    hold one server thread and one of the browser's six connections per host for each.
    """
    ids = [i for i in request.args.get("ids", "").split(",") if i][:STATUS_BATCH_MAX]
    jobs = {}
    for job_id in ids:
        try:
            jobs[job_id] = job_summary(state().store.get(job_id))
        except NotFoundError:
            jobs[job_id] = None
    return jsonify({"jobs": jobs})


@bp.route("/jobs/<job_id>/status.json", endpoint="status_json")
def status(job_id):
    return jsonify(job_summary(get_job(job_id)))


@bp.route("/jobs/<job_id>/log.txt")
def log(job_id):
    job = get_job(job_id)
    path = state().store.log_path(job.id)
    if not os.path.exists(path):
        return Response("", mimetype="text/plain")
    download = request.args.get("download") == "1"
    return send_file(path, mimetype="text/plain", as_attachment=download,
                     download_name="%s-log.txt" % job.id, max_age=0)


@bp.route("/jobs/<job_id>/abort", methods=["POST"])
@bp.route("/jobs/<job_id>/abort.json", methods=["POST"], endpoint="abort_json")
def abort(job_id):
    job = state().service.abort(job_id)
    message = ("Abort requested for %r: it stops at the next iteration." % job.name if job.state.value == "running"
               else "%r is %s." % (job.name, job.state.value))
    return _after_action(job, message)


@bp.route("/jobs/<job_id>/delete", methods=["POST"])
@bp.route("/jobs/<job_id>/delete.json", methods=["POST"], endpoint="delete_json")
@bp.route("/jobs/<job_id>", methods=["DELETE"], endpoint="delete_rest")
@bp.route("/jobs/<job_id>.json", methods=["DELETE"], endpoint="delete_json_delete")
def delete(job_id):
    job = get_job(job_id)
    try:
        state().service.delete(job_id)
    except ConflictError as exc:
        if wants_json():
            raise
        # used by a job created since the page was drawn: say so on the page the user was on
        flash(exc.message, "warning")
        return redirect(job_url(job))
    if wants_json():
        return jsonify({"deleted": job_id})
    flash("Deleted %s %r and its files." % (job.kind, job.name))
    return redirect(url_for("home.index", tab=job.kind) + "#" + job.kind)


@bp.route("/jobs/<job_id>/resume", methods=["POST"])
@bp.route("/jobs/<job_id>/resume.json", methods=["POST"], endpoint="resume_json")
def resume(job_id):
    job = state().service.resume(job_id)
    return _after_action(job, "Resumed %r: it continues from its last snapshot." % job.name)


@bp.route("/jobs/<job_id>/clone")
def clone(job_id):
    """Open the job kind's form pre-filled with this job's submitted parameters."""
    from flask import current_app

    job = get_job(job_id)
    endpoint = CLONE_ENDPOINTS.get(job.kind)
    if not endpoint or endpoint not in current_app.view_functions:
        raise NotFoundError("jobs of kind %r cannot be cloned" % job.kind)
    return redirect(url_for(endpoint, clone=job.id))


@bp.route("/jobs/<job_id>/params.json", endpoint="params_json")
def params(job_id):
    """The submitted form of a job (what `?clone=` pre-fills)."""
    job = get_job(job_id)
    return jsonify({"id": job.id, "kind": job.kind, "name": job.name, "params": job.params})


@bp.route("/jobs/<job_id>/events")
def events(job_id):
    """Server-Sent Events: a `status` event whenever job.json changes (pages poll when SSE fails)."""
    get_job(job_id)
    store = state().store
    path = os.path.join(store.job_dir(job_id), "job.json")
    limiter, client = state().extras["event_streams"], request.remote_addr
    limiter.acquire(client)

    def stream():
        last = None
        deadline = time.time() + SSE_LIFETIME_S
        yield "retry: 1000\n\n"
        while time.time() < deadline:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                yield "event: deleted\ndata: {}\n\n"
                return
            key = (st.st_mtime_ns, st.st_size)
            if key != last:
                last = key
                try:
                    summary = job_summary(store.get(job_id))
                except (NotFoundError, ValueError):
                    return
                yield "event: status\ndata: %s\n\n" % json.dumps(summary)
                if summary["state"] in ("done", "error", "aborted"):
                    yield "event: end\ndata: {}\n\n"
                    return
            else:
                yield ": keep-alive\n\n"
            time.sleep(0.5)

    from flask import stream_with_context

    response = Response(stream_with_context(stream()), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    # The WSGI server closes the response when the stream ends or the client goes away.
    response.call_on_close(lambda: limiter.release(client))
    return response


def _after_action(job, message):
    if wants_json():
        return jsonify(job_summary(state().store.get(job.id)) | {"message": message})
    flash(message)
    return redirect(job_url(job))
