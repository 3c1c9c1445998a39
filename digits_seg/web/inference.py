"""Inference pages and API: test one image (in this process), test many (a job), viewer, downloads, export.

Where it runs (see digits_seg/inference/cache.py for the why): a single image is predicted
here, with a per-app LRU of loaded models and at most one forward pass at a time, on
`settings.infer_device` (CPU unless configured); "test many" is an `inference` job run by a
worker. Views parse, call one domain function and render; results of single images live in
an in-memory store (last 32) so their downloads need no files.
"""

import os
import shutil
import time

from flask import Blueprint, Response, jsonify, redirect, request, url_for

from ..datasets.names import RecordNames, record_name
from ..declare import clean_name
from ..errors import NotFoundError, ValidationError
from ..inference.params import InferManyParams
from ..fsutil import read_json
from ..inference import batch, image_input, single
from ..inference.cache import PredictorCache
from ..inference.export import EXPORTS_DIR
from ..inference.geometry import FIT_HELP, FIT_MODES
from ..inference.predictor import list_snapshot_files
from ..inference.scoring import sort_key_worst_first
from ..inference.sources import dataset_dir_of, read_image, under_roots
from ..uploads import new_stage
from .files import send_job_file
from .helpers import get_job, render, request_data, state, wants_json

bp = Blueprint("inference", __name__)


@bp.context_processor
def _fit_choices():
    """The input-size choices both inference forms offer (see inference/geometry.py)."""
    return {"fit_modes": FIT_MODES, "fit_help": FIT_HELP}

MODEL_KINDS = ("model", "pretrained")
PER_PAGE = 24
"""Images per page of the test-many results grid."""

JOB_FILES = ("images", "masks", "overlays", "gt")
"""Sub-folders of an inference job that may be downloaded."""


def init_app(app):
    """Per-app caches: loaded predictors and recent single-image results."""
    extras = app.extensions["digits_seg"].extras
    settings = app.extensions["digits_seg"].settings
    extras["predictor_cache"] = PredictorCache(onnx=settings.onnx_inference)
    extras["inference_results"] = single.ResultStore()


def _cache():
    return state().extras["predictor_cache"]


def _results():
    return state().extras["inference_results"]


def _model(job_id):
    job = get_job(job_id)
    if job.kind not in MODEL_KINDS:
        raise NotFoundError("no model with id %r" % job_id)
    return job, state().store.job_dir(job.id)


def _val_count(model_dir):
    try:
        return len(single.val_split(model_dir))
    except Exception:  # no dataset (pretrained model), dataset deleted or unreadable: no val picks
        return 0


VAL_NAMES_SHOWN = 1000
"""Validation records offered by name in the test-one form (beyond them the number still works)."""


def _val_names(model_dir, count):
    """[(k, file stem)] of the first validation records, for picking by name; [] without records.json."""
    try:
        names = RecordNames.load(dataset_dir_of(model_dir))
    except (NotFoundError, ValidationError):
        return []
    return [(k, names.caption("val", k)) for k in range(min(count, VAL_NAMES_SHOWN))] if names else []


def _model_data(job, model_dir):
    snaps = list_snapshot_files(model_dir)
    classes = []
    if os.path.isfile(os.path.join(model_dir, "labels.txt")):
        from ..inference.predictor import read_classes

        classes = read_classes(model_dir)[0]
    val_count = _val_count(model_dir)
    return {"id": job.id, "name": job.name, "kind": job.kind, "state": job.state.value,
            "snapshots": [s["name"] for s in snaps], "val_count": val_count,
            "val_names": _val_names(model_dir, val_count), "classes": classes,
            "device": state().settings.infer_device}


def _int_arg(data, name):
    v = data.get(name)
    if v in (None, ""):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ValidationError("%s must be a whole number, got %r" % (name, v), field=name)


# -- test one -----------------------------------------------------------------------------
@bp.route("/models/<job_id>/infer")
def test_one(job_id):
    job, model_dir = _model(job_id)
    data = {"model": _model_data(job, model_dir)}
    return render("inference/one.html", data, job=job)


def _input_image(data, model_dir, bits):
    """Return (image, gt or None, source text) from an upload, a server path or a val index.

    `bits`: the model's significant bits of 16-bit greyscale (test images are scaled as its training images).
    """
    upload = request.files.get("image")
    if upload and upload.filename:
        return (single.decode_upload(upload.read(), upload.filename, max_pixels=state().settings.max_image_pixels,
                                     bits=bits), None, upload.filename)
    if data.get("path"):
        path = under_roots(data["path"], state().settings, "path")
        if not os.path.isfile(path):
            raise ValidationError("%s %s" % (path, "is not a file" if os.path.exists(path) else "does not exist"),
                                  field="path")
        return read_image(path, state().settings.max_image_pixels, image_input.WEB, "path", bits), None, path
    index = _int_arg(data, "val_index")
    if index is not None:
        split = single.val_split(model_dir)
        if not 0 <= index < len(split):
            raise ValidationError("val_index must be 0..%d" % (len(split) - 1), field="val_index")
        image, label = split[index]
        rec = record_name(dataset_dir_of(model_dir), "val", index)  # None: a dataset made before records.json
        return image, label, "val[%d] %s" % (index, rec["image"]) if rec else "val[%d]" % index
    raise ValidationError("give an image: upload one (field `image`), a server path (`path`) or a validation "
                          "image index (`val_index`)", field="image")


@bp.route("/models/<job_id>/infer", methods=["POST"], endpoint="infer_post")
@bp.route("/models/<job_id>/infer.json", methods=["POST"], endpoint="infer_json")
def infer(job_id):
    """Predict one image; JSON: histogram, per-class pixel counts, scores, base64 PNGs and URLs."""
    t0 = time.perf_counter()
    job, model_dir = _model(job_id)
    data = request_data()
    data.update({k: v for k, v in request.args.items() if k in ("encode", "snapshot", "alpha")})
    snapshot = str(data.get("snapshot") or "best")
    cache = _cache()
    predictor = cache.get(model_dir, snapshot, state().settings.infer_device)
    image, gt, source = _input_image(data, model_dir, predictor.preprocess.significant_bits)
    with cache.slot():
        result = single.predict_one(predictor, image, gt=gt, tile=_int_arg(data, "tile"),
                                    stride=_int_arg(data, "stride"), source=source, fit=data.get("fit"))
    token = _results().put(result)
    encode = str(data.get("encode") or "base64")
    body = single.result_json(result, encode=encode, url_for_kind=lambda k: url_for(
        "inference.result_file", token=token, kind=k))
    body["model"] = job.id
    body["timing"]["server_s"] = round(time.perf_counter() - t0, 4)
    if request.path.endswith(".json") or wants_json():
        return jsonify(body)
    if encode != "base64":
        body = single.result_json(result, encode="base64", url_for_kind=lambda k: url_for(
            "inference.result_file", token=token, kind=k))
    return render("inference/one.html", {"model": _model_data(job, model_dir), "result": body,
                                         "result_viewer": single.viewer_config(body)}, job=job)


def _render_response(result, kind, name):
    alpha = float(request.args.get("alpha", 0.5))
    keep = single.parse_keep(request.args.get("keep"), result.classes)
    payload, mimetype, suffix = single.render(result, kind, alpha=alpha, keep=keep)
    resp = Response(payload, mimetype=mimetype)
    if request.args.get("download") == "1":
        resp.headers["Content-Disposition"] = "attachment; filename=%s-%s" % (name, suffix)
    resp.headers["Cache-Control"] = "private, max-age=600"
    return resp


@bp.route("/inference/results/<token>/<kind>.png")
def result_file(token, kind):
    """A rendering of a single-image result (palette mask, colour, overlay, cut-out with ?keep=...)."""
    return _render_response(_results().get(token), kind, "prediction")


# -- export ---------------------------------------------------------------------------------
def _export_target(job_id, fmt, snapshot):
    job, model_dir = _model(job_id)
    if fmt not in ("onnx", "torchscript"):
        raise NotFoundError("unknown export format %r. Available: onnx, torchscript" % fmt, field="format")
    from ..inference.export import exported_path
    from ..inference.predictor import resolve_snapshot

    weights = resolve_snapshot(model_dir, snapshot)
    return job, model_dir, weights, exported_path(model_dir, weights, fmt)


def _build_export(model_dir, fmt, snapshot, path):
    from ..inference.export import export_onnx, export_torchscript

    with _cache().slot():  # exporting runs forward passes: share the inference slot
        (export_onnx if fmt == "onnx" else export_torchscript)(model_dir, path, snapshot=snapshot)


@bp.route("/models/<job_id>/export/<fmt>", methods=["GET"])
def export(job_id, fmt):
    """Download ONNX / TorchScript: the file the export button built, else one built now in a temp folder
    outside the jobs dir (a GET writes nothing there)."""
    import tempfile

    snapshot = request.args.get("snapshot") or "best"
    job, model_dir, weights, cached = _export_target(job_id, fmt, snapshot)
    name = os.path.basename(weights)[:-3] + (".onnx" if fmt == "onnx" else ".pt")
    download = "%s-%s" % ("".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in job.name)[:60], name)
    if os.path.isfile(cached):  # streamed from disk: exports of big nets are hundreds of MB
        return send_job_file(model_dir, os.path.relpath(cached, model_dir), (EXPORTS_DIR,), as_attachment=True,
                             download_name=download, mimetype="application/octet-stream")
    with tempfile.TemporaryDirectory(prefix="digits-seg-export-") as tmp:
        path = os.path.join(tmp, name)
        _build_export(model_dir, fmt, snapshot, path)
        with open(path, "rb") as f:
            payload = f.read()
    return Response(payload, mimetype="application/octet-stream",
                    headers={"Content-Disposition": "attachment; filename=%s" % download, "Cache-Control": "no-cache"})


@bp.route("/models/<job_id>/export/<fmt>", methods=["POST"], endpoint="export_build")
def export_build(job_id, fmt):
    """The export button: build the file once per snapshot file into <model>/exports/, then download it."""
    snapshot = str(request_data().get("snapshot") or request.args.get("snapshot") or "best")
    _job, model_dir, _weights, cached = _export_target(job_id, fmt, snapshot)
    if not os.path.isfile(cached):
        _build_export(model_dir, fmt, snapshot, cached)
    return redirect(url_for("inference.export", job_id=job_id, fmt=fmt, snapshot=snapshot), code=303)


# -- test many --------------------------------------------------------------------------------
def _done_models():
    return [j for j in state().store.list() if j.kind in MODEL_KINDS and j.state.value == "done"]


@bp.route("/inference/new")
def new():
    values = {}
    if request.args.get("clone"):
        values = dict(get_job(request.args["clone"], kind="inference").params)
    if request.args.get("model"):
        values["model_id"] = request.args["model"]
    return render("inference/new.html", _many_form_data(values))


def _many_form_data(values):
    """The test-many form's choices: finished models and each one's snapshots (the chooser follows the model)."""
    models = _done_models()
    return {"models": [{"id": j.id, "name": j.name} for j in models], "values": values,
            "snapshots": {j.id: [s["name"] for s in list_snapshot_files(state().store.job_dir(j.id))] for j in models}}


def _stage_uploads(files):
    """Save uploaded files (images, or one zip) in a staging folder the job moves in when it starts."""
    settings = state().settings
    staged = new_stage(settings.jobs_dir, "infer-", settings.min_free_mb)
    count = 0
    try:
        for f in files:
            if not f or not f.filename:
                continue
            name = os.path.basename(f.filename.replace("\\", "/"))
            if not name or name.startswith("."):
                continue
            if name.lower().endswith(".zip"):
                name = "inputs.zip"
            f.save(os.path.join(staged, name))
            count += 1
    except BaseException:  # disk full, client gone: leave no stage behind
        shutil.rmtree(staged, ignore_errors=True)
        raise
    if not count:
        shutil.rmtree(staged, ignore_errors=True)
        raise ValidationError("choose images or a zip to upload", field="files")
    return staged


@bp.route("/inference", methods=["POST"], endpoint="create")
@bp.route("/inference.json", methods=["POST"], endpoint="create_json")
def create():
    raw = request_data()
    try:
        model_id = str(raw.get("model_id") or "").strip()
        if not model_id:
            raise ValidationError("choose a model", field="model_id")
        job, _ = _model(model_id)
        list_file = request.files.get("list_file")
        if list_file and list_file.filename and not raw.get("paths"):
            raw["paths"] = list_file.read(1_000_000).decode("utf-8", "replace")  # an uploaded list of paths
            raw["source"] = "paths"
        params = batch.validate_params(raw, state().settings)
        params["model_id"] = job.id
        if params["source"] == "upload":
            params["upload_dir"] = _stage_uploads(request.files.getlist("files"))
        name = clean_name(InferManyParams, raw.get("name")) or "test many: %s" % job.name
        created = state().service.submit("inference", name, params, queue="default")
    except ValidationError as exc:
        if wants_json():
            raise
        return render("inference/new.html", _many_form_data(raw), error=exc), 400
    url = url_for("inference.show", job_id=created.id)
    if wants_json():
        return jsonify({"id": created.id, "url": url}), 201
    return redirect(url)


def _load_results(job_dir):
    path = os.path.join(job_dir, batch.RESULTS_FILE)
    return read_json(path) if os.path.isfile(path) else None


@bp.route("/inference/<job_id>")
@bp.route("/inference/<job_id>.json", endpoint="show_json")
def show(job_id):
    """Results page: status, aggregate metrics, paginated grid (optionally worst first)."""
    from .jobs import job_data

    job = get_job(job_id, kind="inference")
    res = _load_results(state().store.job_dir(job.id)) or {}
    images = [e for e in res.get("images", [])]
    sort = request.args.get("sort", "index")
    metric = request.args.get("metric", "mean_iou")
    if metric not in ("mean_iou", "pixel_acc", "mean_acc", "fw_iou"):
        raise ValidationError("unknown metric %r. Available: mean_iou, pixel_acc, mean_acc, fw_iou" % metric,
                              field="metric")
    if sort == "worst":
        images.sort(key=lambda e: sort_key_worst_first(e, metric))
    page = max(1, _int_arg(request.args, "page") or 1)
    per_page = min(200, max(1, _int_arg(request.args, "per_page") or PER_PAGE))
    pages = max(1, (len(images) + per_page - 1) // per_page)
    shown = images[(page - 1) * per_page: page * per_page]
    for e in shown:
        for key in ("image", "mask", "overlay", "gt"):
            if e.get(key):
                e[key + "_url"] = url_for("inference.file", job_id=job.id, relpath=e[key])
        if not e.get("error"):
            e["view_url"] = url_for("inference.view", job_id=job.id, index=e["index"])
    data = job_data(job)
    data.update({"model_id": job.params.get("model_id"), "results": {
        k: res.get(k) for k in ("complete", "count", "with_gt", "errors", "aggregate", "classes", "colormap",
                                "snapshot", "source")},
        "images": shown, "page": page, "pages": pages, "per_page": per_page, "sort": sort, "metric": metric,
        "zip_url": url_for("inference.file", job_id=job.id, relpath=batch.ZIP_FILE)
        if os.path.isfile(os.path.join(state().store.job_dir(job.id), batch.ZIP_FILE)) else None})
    return render("inference/show.html", data, job=job)


@bp.route("/inference/<job_id>/files/<path:relpath>")
def file(job_id, relpath):
    job = get_job(job_id, kind="inference")
    return send_job_file(state().store.job_dir(job.id), relpath, allowed=JOB_FILES + (batch.RESULTS_FILE, batch.ZIP_FILE),
                         as_attachment=request.args.get("download") == "1")


def _batch_result(job, index):
    """Rebuild a OneResult from an inference job's files (for the viewer and the downloads)."""
    import numpy as np
    from PIL import Image

    job_dir = state().store.job_dir(job.id)
    res = _load_results(job_dir) or {}
    entry = next((e for e in res.get("images", []) if e.get("index") == index and not e.get("error")), None)
    if entry is None:
        raise NotFoundError("inference job %s has no image %d" % (job.id, index))

    def load(rel, mode=None):
        with Image.open(os.path.join(job_dir, rel)) as img:
            return np.asarray(img.convert(mode) if mode else img)
    gt = load(entry["gt"]) if entry.get("gt") else None
    return entry, single.OneResult(image=load(entry["image"], "RGB"), mask=load(entry["mask"]),
                                   classes=res.get("classes", []), colormap=res.get("colormap", []),
                                   weights=res.get("snapshot", ""), gt=gt, source=entry.get("source", ""))


@bp.route("/inference/<job_id>/render/<int:index>/<kind>.png")
def render_file(job_id, index, kind):
    job = get_job(job_id, kind="inference")
    entry, result = _batch_result(job, index)
    return _render_response(result, kind, entry["name"])


@bp.route("/inference/<job_id>/view/<int:index>")
@bp.route("/inference/<job_id>/view/<int:index>.json", endpoint="view_json")
def view(job_id, index):
    """The overlay viewer for one image of a test-many job."""
    job = get_job(job_id, kind="inference")
    entry, result = _batch_result(job, index)
    body = single.result_json(result, encode="none", url_for_kind=lambda k: url_for(
        "inference.render_file", job_id=job.id, index=index, kind=k))
    body.update({"index": index, "name": entry["name"], "job_id": job.id})
    ok = [e["index"] for e in (_load_results(state().store.job_dir(job.id)) or {}).get("images", [])
          if not e.get("error")]
    pos = ok.index(index) if index in ok else -1
    steps = {"previous": ok[pos - 1] if pos > 0 else None,
             "next": ok[pos + 1] if 0 <= pos < len(ok) - 1 else None}
    nav = {k: url_for("inference.view", job_id=job.id, index=v) if v is not None else None for k, v in steps.items()}
    nav.update(position=pos + 1, count=len(ok))
    return render("inference/view.html", {"result": body, "entry": entry, "viewer": single.viewer_config(body),
                                          "nav": nav}, job=job)
