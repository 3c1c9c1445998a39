"""Dataset pages: the new-dataset form (check folders, path completion, zip upload), the dataset
page (counts, class table, warnings, log) and the explorer; each with a JSON twin.

Views stay thin: the check runs `datasets.check.check_folders` (reads files, writes nothing),
in the request for API clients or in the background with progress for the form
(`folder_checks`); creation is a queued job; explorer images are decoded from the LMDB on request.
"""

import io
import os
import shutil

import numpy as np
from flask import Blueprint, Response, jsonify, redirect, request, url_for

from ..datasets.layouts import stage_conversion
from ..datasets.layouts.checking import check_dataset
from ..datasets.create import preflight
from ..datasets.info import DatasetInfo
from ..datasets.labels import colorize
from ..datasets.names import RecordNames
from ..datasets.layouts.params import layout_params
from ..datasets.sixteen_bit import LEGACY_OPTION as LEGACY_SIXTEEN_BIT
from ..datasets.params import complete_path, validate_params
from ..errors import NotFoundError, ValidationError
from ..uploads import new_stage
from .folder_checks import FolderChecks
from .helpers import format_eta, get_job, render, request_data, state, wants_json
from .jobs import job_data

bp = Blueprint("datasets", __name__)

EXPLORER_PAGE = 12
"""Records per explorer page."""

THUMB_MAX = 320
"""Longest side of explorer images, in pixels."""

FORM_DEFAULTS = {"val_pct": 10, "seed": 0, "label_suffix": "auto", "colormap_source": "", "color_tolerance": 0,
                 "binary": "auto", "channels": "rgb", "encoding": "png", "resize_mode": "squash",
                 "sixteen_bit": "bits"}


@bp.route("/datasets/new")
def new():
    values = dict(FORM_DEFAULTS)
    clone = request.args.get("clone")
    if clone:
        params = dict(get_job(clone, kind="dataset").params or {})
        params.setdefault("sixteen_bit", LEGACY_SIXTEEN_BIT)  # made before the option: it was built that way
        if params.get("resize"):
            params["resize"] = "%dx%d" % tuple(params["resize"])
        if params.get("layout"):  # the form re-detects the layout; its derived lists are not form fields
            params = {k: v for k, v in params.items() if k not in ("class_names", "class_colors", "label_map")}
            params["categories"] = ",".join((params.pop("layout_options", None) or {}).get("categories") or [])
        values.update({k: v for k, v in params.items() if v is not None and k != "upload_dir"})
    return render("datasets/new.html", {"values": values, "roots": list(state().settings.resolved_data_roots)},
                  values=values, error=None)


def _upload(settings):
    """Save and safely extract an uploaded zip; return (stage folder, data folder) or (None, None)."""
    f = request.files.get("archive")
    if f is None or not f.filename:
        return None, None
    from ..safe_extract import extract_archive

    stage = new_stage(settings.jobs_dir, "dataset-", settings.min_free_mb)
    path = os.path.join(stage, "archive.zip")
    try:
        f.save(path)
        extract_archive(path, os.path.join(stage, "data"), max_bytes=settings.max_upload_mb * 4 * 1024 ** 2,
                        max_files=200_000, max_ratio=settings.max_zip_ratio)
    except ValidationError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        name = os.path.basename(f.filename.replace("\\", "/")) or "the archive"
        raise ValidationError(exc.message.replace("archive.zip", name), field="archive")  # the user's name for it
    except BaseException:  # disk full, client gone: leave no stage behind
        shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        if os.path.exists(path):
            os.unlink(path)
    data = os.path.join(stage, "data")
    entries = [e for e in os.listdir(data) if not e.startswith(".") and e != "__MACOSX"]
    if "images" not in entries and len(entries) == 1 and os.path.isdir(os.path.join(data, entries[0])):
        data = os.path.join(data, entries[0])  # zips made of a folder have one top-level folder
    return stage, data


@bp.route("/datasets", methods=["POST"])
@bp.route("/datasets.json", methods=["POST"], endpoint="create_json")
def create():
    values = request_data()
    settings = state().settings
    stage = None
    try:
        stage, uploaded = _upload(settings)
        params = _validate(values, settings, uploaded)
        checked = not stage and _checks().passed(values.get("check_id"), params)  # the form's check, just passed
        if not stage:  # COCO / SBD .mat labels: converted into a stage, checked, adopted by the job
            params = stage_conversion(params, settings.jobs_dir)
            stage = params.get("upload_dir")
        if not checked:
            preflight(params)
        if stage:
            params["upload_dir"] = stage
        job = state().service.submit("dataset", params["name"], params)
    except ValidationError as exc:
        if stage:
            shutil.rmtree(stage, ignore_errors=True)
        if wants_json():
            raise
        shown = dict(FORM_DEFAULTS, **{k: v for k, v in values.items() if isinstance(v, str)})
        return render("datasets/new.html", {"values": shown, "roots": list(settings.resolved_data_roots)},
                      values=shown, error=exc), 400
    url = url_for("datasets.show", job_id=job.id)
    if wants_json():
        return jsonify({"id": job.id, "url": url}), 201
    return redirect(url)


def _validate(values, settings, uploaded=None):
    """Dataset params from the form/JSON: a standard layout when `layout_root` is given, else plain folders."""
    if values.get("layout_root") and not uploaded:
        return layout_params(values, settings, validate_params)[0]
    return validate_params(values, settings, uploaded_dir=uploaded)


@bp.route("/datasets/detect.json", methods=["POST"])
def detect_layout():
    """Recognise a standard layout (`layout_root`, `layout` auto|voc|..., COCO `categories`): what was found and
    the dataset params it fills; nothing is written."""
    params, det = layout_params(request_data(), state().settings, validate_params)
    return jsonify({"detection": det.to_dict(), "params": params})


@bp.route("/datasets/check.json", methods=["POST"])
def check():
    """Pre-flight check of the submitted folders: every problem, nothing written."""
    settings = state().settings
    params = _validate(request_data(), settings)
    return jsonify(check_dataset(params, settings).to_dict())


@bp.route("/datasets/checks.json", methods=["POST"])
def start_check():
    """Start a folder check in the background (202); poll `url` for progress, ETA and the report."""
    settings = state().settings
    params = _validate(request_data(), settings)
    check = _checks().start(params, settings)
    return jsonify(dict(check.to_dict(), url=url_for("datasets.check_status", check_id=check.id))), 202


@bp.route("/datasets/checks/<check_id>.json", methods=["GET", "DELETE"])
def check_status(check_id):
    """A background check's state; DELETE cancels it."""
    check = _checks().cancel(check_id) if request.method == "DELETE" else _checks().get(check_id)
    return jsonify(dict(check.to_dict(), eta=format_eta(check.eta_s())))


def _checks():
    return state().extras["folder_checks"]


def init_app(app):
    app.extensions["digits_seg"].extras["folder_checks"] = FolderChecks()


@bp.route("/datasets/complete.json")
def complete():
    """Path autocompletion inside the data roots (`?prefix=...&dirs=1`)."""
    prefix = request.args.get("prefix", "")
    return jsonify({"prefix": prefix, "entries": complete_path(prefix, state().settings,
                                                                dirs_only=request.args.get("dirs") == "1")})


def _info(job):
    try:
        return DatasetInfo.load(state().store.job_dir(job.id))
    except NotFoundError:
        return None


@bp.route("/datasets/<job_id>")
@bp.route("/datasets/<job_id>.json", endpoint="show_json")
def show(job_id):
    job = get_job(job_id, kind="dataset")
    data = job_data(job)
    info = _info(job)
    data["dataset"] = info.to_dict() if info else None
    split = request.args.get("split", "train")
    page = max(1, request.args.get("page", 1, type=int))
    data["explorer"] = _explorer(job, info, split, page, request.args.get("record", "").strip()) if info else None
    return render("datasets/show.html", data, job=job, info=info)


def _explorer(job, info, split, page, record=""):
    """One explorer page; `record` picks the page holding it and highlights it.

    `record`: "#k" is record k of `split`; else a file stem (any split, `split` first), else a number k.
    Stems may be numbers themselves (COCO's 000000000139), so links to a record number use "#k".
    """
    if split not in info.splits:
        raise ValidationError("split must be one of %s" % ", ".join(info.splits), field="split")
    names = RecordNames.load(info.dataset_dir)  # None for datasets made before records.json: "#k"
    selected, missing = None, None
    if record:
        found = None
        if names and not record.startswith("#"):
            found = names.find(record, [split] + [s for s in info.splits if s != split])
        if found is None and record.lstrip("#").isdigit():
            found = (split, int(record.lstrip("#")))
        if found and 0 <= found[1] < info.splits[found[0]]["count"]:
            split, selected = found
            page = selected // EXPLORER_PAGE + 1
        else:
            missing = record
    count = info.splits[split]["count"]
    pages = max(1, -(-count // EXPLORER_PAGE))
    page = min(page, pages)
    start = (page - 1) * EXPLORER_PAGE
    items = []
    for i in range(start, min(count, start + EXPLORER_PAGE)):
        source = names.get(split, i) if names else None
        items.append({"index": i, "name": source["stem"] if source else "#%d" % i, "source": source,
                      **{k: url_for("datasets.record", job_id=job.id, split=split, index=i, kind=k)
                         for k in ("image", "label", "overlay")}})
    return {"split": split, "page": page, "pages": pages, "count": count, "per_page": EXPLORER_PAGE, "items": items,
            "selected": selected, "missing": missing, "named": names is not None}


@bp.route("/datasets/<job_id>/explore.json")
def explore(job_id):
    job = get_job(job_id, kind="dataset")
    info = _info(job)
    if info is None:
        raise NotFoundError("dataset %s is not finished yet" % job_id)
    return jsonify(_explorer(job, info, request.args.get("split", "train"), max(1, request.args.get("page", 1, type=int)),
                             request.args.get("record", "").strip()))


@bp.route("/datasets/<job_id>/records/<split>/<int:index>/<kind>.png")
def record(job_id, split, index, kind):
    """One explorer picture: the image, the colourised label or the overlay, as PNG."""
    from PIL import Image

    from ..datasets.records import SplitReader

    job = get_job(job_id, kind="dataset")
    info = _info(job)
    if info is None or split not in info.splits or kind not in ("image", "label", "overlay"):
        raise NotFoundError("no such record")
    ds = SplitReader(info.split_dir(split))
    if not 0 <= index < len(ds):
        raise NotFoundError("record %d is out of range (0..%d)" % (index, len(ds) - 1))
    image, label = ds[index]
    colour = colorize(label, info.colormap)
    if kind == "image":
        out = image[:, :, 0] if image.shape[2] == 1 else image
    elif kind == "label":
        out = colour
    else:
        rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
        out = (0.5 * rgb + 0.5 * colour).astype(np.uint8)  # ignore pixels show the grey hatch of `colorize`
    pic = Image.fromarray(np.ascontiguousarray(out))
    if max(pic.size) > THUMB_MAX and request.args.get("full") != "1":
        pic.thumbnail((THUMB_MAX, THUMB_MAX), Image.NEAREST if kind == "label" else Image.BILINEAR)
    buf = io.BytesIO()
    pic.save(buf, "PNG", compress_level=1)
    return Response(buf.getvalue(), mimetype="image/png", headers={"Cache-Control": "max-age=3600"})
