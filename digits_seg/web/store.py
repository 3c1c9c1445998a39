"""Model store pages: browse every store, import with one click, pretrained models, uploads.

The store page renders from the per-app `StoreCache` and never waits on a store: a slow
or dead store shows "checking" / "unreachable: <reason>" while the others list normally.
Everything read from a store is untrusted text; the templates escape it (Jinja
autoescape, `textContent` in store.js).
"""

import os
import shutil

from flask import Blueprint, jsonify, redirect, request, url_for

from ..errors import NotFoundError, ValidationError
from ..store import importer
from ..store import index as store_index
from ..store.assemble import OUTPUT_FILES
from ..store.cache import StoreCache
from ..store.manifest import metric_text, size_text  # one wording for the pages and `store list`
from ..store.upload_check import check_upload
from .files import send_job_file
from .helpers import get_job, job_summary, render, request_data, state, wants_json
from .jobs import job_data

bp = Blueprint("store", __name__)

DOWNLOADABLE = OUTPUT_FILES + ("license.txt",)
"""Files of a pretrained job folder that its page offers for download."""


def init_app(app):
    """Create this app's StoreCache and start reading the stores in the background."""
    cache = StoreCache(app.extensions["digits_seg"].settings)
    app.extensions["digits_seg"].extras["store_cache"] = cache
    cache.refresh()
    app.add_template_global(metric_text, "metric_text")
    app.add_template_global(size_text, "size_text")
    app.add_template_global(_preprocess_text, "preprocess_text")


def _cache():
    return state().extras["store_cache"]


def _imported():
    """{(store, model folder): [pretrained job summaries]} for "already imported" marks."""
    out = {}
    for job in state().store.list(kind="pretrained"):
        p = job.params or {}
        if p.get("source", "store") == "store" and p.get("store"):
            out.setdefault((p["store"], p.get("model")), []).append(job_summary(job))
    return out


def _store_label(url):
    return "bundled store (model_store/)" if url == store_index.bundled_store() else url


@bp.route("/store")
@bp.route("/store.json", endpoint="index_json")
def index():
    imported = _imported()
    stores = []
    for rec in _cache().snapshot():
        rec = dict(rec, label=_store_label(rec["url"]))
        models = []
        for m in rec["models"]:
            m = dict(m)
            m["imported"] = imported.get((rec["url"], m["folder"]), [])
            done = [j for j in m["imported"] if j["state"] == "done"]
            m["train_url"] = _train_url(done[-1]["id"]) if done and m.get("has_weights") else None
            models.append(m)
        rec["models"] = models
        stores.append(rec)
    data = {"stores": stores, "checking": any(s["status"] == "checking" for s in stores)}
    return render("store/index.html", data)


@bp.route("/store/refresh", methods=["POST"])
@bp.route("/store/refresh.json", methods=["POST"], endpoint="refresh_json")
def refresh():
    _cache().refresh(force=True)
    if wants_json():
        return jsonify({"refreshing": True}), 202
    return redirect(url_for("store.index"))


def _submit(params, name):
    job = state().service.submit("pretrained", name, params)
    url = url_for("store.show_pretrained", job_id=job.id)
    if wants_json():
        return jsonify({"id": job.id, "url": url, "state": job.state.value}), 201
    return redirect(url)


@bp.route("/store/import", methods=["POST"])
@bp.route("/store/import.json", methods=["POST"], endpoint="import_json")
def import_model():
    raw = dict(request_data(), source="store")
    params = importer.validate_params(raw, state().settings)
    name = params["name"]
    if not name:
        try:
            name = _cache().find(params["store"], params["model"])["name"]
        except NotFoundError:
            name = params["model"]
    return _submit(params, name)


@bp.route("/pretrained_models/new", methods=["GET", "POST"])
def new_pretrained():
    """Upload a .caffemodel/.h5 + prototxt (+ labels), a torchvision .pth, or a DIGITS model archive."""
    if request.method == "GET":
        return render("store/upload.html", {}, error=None, values={})
    values = request_data()
    settings = state().settings
    stage = importer.new_upload_stage(settings)
    try:
        files = {}
        for role in importer.UPLOAD_ROLES:
            f = request.files.get(role)
            if f is None or not f.filename:
                continue
            path, rel = importer.staged_path(stage, role, f.filename)
            f.save(path)
            if role != "archive":  # archives are checked by safe_extract in the task
                check_upload(role, path, os.path.basename(f.filename))
            files[role] = rel
        if not files:
            raise ValidationError("choose a DIGITS model archive, a network (.prototxt) and weights "
                                  "(.caffemodel or .h5), or a torchvision .pth", field="archive")
        params = importer.validate_params({"source": "upload", "files": files, "upload_dir": stage,
                                           "name": values.get("name")}, settings)
        name = params["name"] or os.path.splitext(request.files[next(iter(files))].filename)[0]
        return _submit(params, name)
    except ValidationError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if wants_json():
            raise
        return render("store/upload.html", {}, error=exc, values=values), 400
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


@bp.route("/models/<job_id>/make_pretrained", methods=["POST"])
@bp.route("/models/<job_id>/make_pretrained.json", methods=["POST"], endpoint="make_pretrained_json")
def make_pretrained(job_id):
    """"Make pretrained model" from a finished training job (the models page links here)."""
    job = get_job(job_id, kind="model")
    raw = dict(request_data(), source="model", model_id=job.id)
    params = importer.validate_params(raw, state().settings)
    return _submit(params, params["name"] or "%s (pretrained)" % job.name)


def _manifest(job_id):
    from ..fsutil import read_json

    path = os.path.join(state().store.job_dir(job_id), "manifest.json")
    try:
        return read_json(path)
    except (FileNotFoundError, ValueError):
        return None


@bp.route("/pretrained_models/<job_id>")
@bp.route("/pretrained_models/<job_id>.json", endpoint="show_pretrained_json")
def show_pretrained(job_id):
    job = get_job(job_id, kind="pretrained")
    manifest = _manifest(job.id) if job.state.value == "done" else None
    data = job_data(job)
    data["manifest"] = manifest
    can_train = bool(manifest and manifest.get("has_weights"))
    data["train_url"] = _train_url(job.id) if can_train else None
    data["test_url"] = _test_url(job.id) if can_train else None
    data["files"] = verified_files(manifest) if manifest else []
    data["preprocess_text"] = _preprocess_text(manifest)
    return render("store/pretrained.html", data, job=job, manifest=manifest)


def _preprocess_text(manifest):
    """"BGR, mean pixel [104.0, 116.7, 122.7], scale 1": what the model is fed (its preprocess.json), or None."""
    from ..training.input_recipe import describe

    rec = (manifest or {}).get("preprocess")
    return describe(rec) if isinstance(rec, dict) else None


def verified_files(manifest):
    """The model's files with what the import checked: the same bytes as downloaded, or converted from which.

    A store import verifies each downloaded file's size and sha256 (the job log lists them); the files kept
    are those bytes unless they had to be converted (a `.caffemodel` becomes weights.h5), and then the page
    says from what, so the two lists never disagree silently.
    """
    downloaded = (manifest.get("imported_from") or {}).get("files") or []
    by_role = {}
    for f in downloaded:
        by_role.setdefault(f.get("role"), f)
    rows = []
    for f in manifest.get("files") or []:
        src = next((d for d in downloaded if d.get("sha256") == f["sha256"]), None)
        row = dict(f, check="", source=None)
        if src:
            row["check"] = "as downloaded, sha256 verified" if src.get("sha256") else "as downloaded"
        elif f.get("role") in by_role:
            row["source"] = by_role[f["role"]]
            row["check"] = "converted from %s" % row["source"].get("name")
        rows.append(row)
    return rows


def _test_url(job_id):
    from flask import current_app

    if "inference.test_one" in current_app.view_functions:
        return url_for("inference.test_one", job_id=job_id)
    return None


def _train_url(job_id):
    from flask import current_app

    if "models.new" in current_app.view_functions:
        return url_for("models.new", pretrained=job_id)
    return None


@bp.route("/pretrained_models/<job_id>/files/<name>")
def pretrained_file(job_id, name):
    job = get_job(job_id, kind="pretrained")
    if name not in DOWNLOADABLE:
        raise NotFoundError("%s is not a file of a pretrained model; available: %s" % (name, ", ".join(DOWNLOADABLE)))
    return send_job_file(state().store.job_dir(job.id), name, allowed=[name], as_attachment=True,
                         download_name="%s-%s" % (job.id, name))
