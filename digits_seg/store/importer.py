"""Tasks that create a *pretrained model* job: import from a store, or from an upload.

`import_model` is the job task for kind `pretrained` (see CONTRACTS.md). Params come in
two shapes (made by `validate_params`):

- `{"source": "store", "store": <configured store>, "model": <entry folder>, "name": str|None}`
- `{"source": "model", "model_id": <model job id>, "snapshot": "best"|"last"|N, "name": ...}`
  ("Make pretrained model" from a finished training job of this server)
- `{"source": "upload", "files": {"archive": rel} | {"network": rel, "weights": rel,
  "labels": rel|None}, "name": str|None}` where each `rel` is a path relative to the job
  folder under `upload/` (the web view or CLI saved the files there, see `upload_path`).
  A torchvision `.pth` (VGG-16, ResNet-50, DeepLab-v3 ResNet-50) may come without a
  network: the matching standard network is used (see networks/torchvision_weights.py).

A failed or aborted import keeps nothing but job.json (and log.txt, written by the jobs layer).
"""

import json
import os
import shutil

from ..errors import JobAborted, NotFoundError, ValidationError
from ..uploads import STAGES, adopt_stage, new_stage
from ..safe_extract import extract_archive
from . import index
from . import manifest as mf
from .assemble import assemble
from .download import download
from .origin import check_file_origin

UPLOAD_DIR = "upload"
"""Sub-folder of the job folder where uploaded files wait for the import task."""

UPLOAD_ROLES = ("archive", "network", "weights", "labels")
"""Upload form fields."""

MAX_ARCHIVE_FILES = 1000
"""Most members accepted in an uploaded DIGITS model archive."""

_STAGE = ".download-partial"


def _upload_name(role, filename):
    if role not in UPLOAD_ROLES:
        raise ValidationError("unknown upload field %r; expected one of %s" % (role, ", ".join(UPLOAD_ROLES)),
                              field=role)
    base = os.path.basename((filename or "").replace("\\", "/"))
    safe = "".join(c if c.isalnum() or c in "._-+" else "_" for c in base).lstrip(".") or role
    return "%s-%s" % (role, safe[:120])


def upload_path(job_dir, role, filename):
    """Where to save an uploaded file for `role` in a job folder (the name is reduced to a safe plain name)."""
    folder = os.path.join(job_dir, UPLOAD_DIR)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, _upload_name(role, filename))


def new_upload_stage(settings):
    """A fresh folder `<jobs_dir>/.uploads/<random>` for files uploaded before the job exists.

    The web view saves the files there (see `staged_path`), passes the folder as
    params["upload_dir"], and the task moves it into the job folder as `upload/`; so the
    worker never sees a job whose files are still being written.
    """
    return new_stage(settings.jobs_dir, min_free_mb=settings.min_free_mb)


def staged_path(stage_dir, role, filename):
    """(absolute path to save to, the `files` value for params) for an upload in a stage folder."""
    name = _upload_name(role, filename)
    return os.path.join(stage_dir, name), "%s/%s" % (UPLOAD_DIR, name)


def _name(raw):
    """The job name given, checked like every job name (printable, storable, at most 200 characters), or None."""
    from ..declare import Named, clean_name

    return clean_name(Named, raw.get("name")) or None


def validate_params(raw, settings):
    """Turn a submitted form/JSON body into import params (see the module docstring)."""
    if not isinstance(raw, dict):
        raise ValidationError("expected a JSON object with store and model")
    source = raw.get("source") or ("upload" if raw.get("files") else "store")
    if source == "store":
        stores = index.configured_stores(settings)
        if not raw.get("store"):
            raise ValidationError("store is required; one of: %s" % ", ".join(stores), field="store")
        store = index.normalize_store_url(str(raw["store"]))
        if store not in stores:
            # Only configured stores: the server must not fetch arbitrary URLs for a client.
            raise ValidationError("store %r is not configured; configured stores: %s (add more with "
                                  "DIGITS_SEG_STORE_URLS)" % (raw["store"], ", ".join(stores)), field="store")
        model = raw.get("model")
        if not model:
            raise ValidationError("model is required: the id of a store entry, e.g. fcn-alexnet-voc (`digits-seg "
                                  "store list` or GET /store.json lists them)", field="model")
        if not mf.safe_file_name(model):
            raise ValidationError("model must be the folder name of a store entry, got %r" % (model,),
                                  field="model")
        return {"source": "store", "store": store, "model": model, "name": _name(raw)}
    if source == "model":
        return _validate_model_source(raw, settings)
    if source != "upload":
        raise ValidationError("source must be 'store', 'upload' or 'model', got %r" % (source,), field="source")
    files = raw.get("files")
    if not isinstance(files, dict):
        raise ValidationError("files must map fields (archive | network, weights, labels) to saved uploads",
                              field="files")
    clean = {}
    for role, rel in files.items():
        if rel in (None, ""):
            continue
        if role not in UPLOAD_ROLES:
            raise ValidationError("unknown upload field %r; expected %s" % (role, ", ".join(UPLOAD_ROLES)),
                                  field=role)
        parts = str(rel).split("/")
        if len(parts) != 2 or parts[0] != UPLOAD_DIR or not mf.safe_file_name(parts[1]):
            raise ValidationError("upload %s must be saved as upload/<name> in the job folder" % role, field=role)
        clean[role] = str(rel)
    out = {"source": "upload", "files": clean, "name": _name(raw)}
    if raw.get("upload_dir"):
        stages = os.path.realpath(os.path.join(settings.jobs_dir, STAGES))
        stage = os.path.realpath(str(raw["upload_dir"]))
        if os.path.dirname(stage) != stages:
            raise ValidationError("upload_dir must be a stage folder made by new_upload_stage", field="upload_dir")
        out["upload_dir"] = stage
    if "archive" in clean:
        if len(clean) > 1:
            raise ValidationError("give either a DIGITS model archive or separate files, not both",
                                  field="archive")
    elif not clean.get("weights") or not (clean.get("network") or _is_pth_name(clean["weights"])):
        missing = "network" if not clean.get("network") else "weights"
        raise ValidationError("upload a %s file (a .prototxt network and .caffemodel/.h5 weights are both "
                              "required; a torchvision .pth of VGG-16, ResNet-50 or DeepLab-v3 needs no network), "
                              "or a DIGITS model archive" % missing, field=missing)
    return out


PTH_SUFFIXES = (".pth", ".pt")
"""Upload names taken as PyTorch state_dicts: these may come without a network file."""


def _is_pth_name(rel):
    return rel.lower().endswith(PTH_SUFFIXES)


def _validate_model_source(raw, settings):
    model_id = raw.get("model_id")
    if not mf.safe_file_name(model_id) or not os.path.isfile(os.path.join(settings.jobs_dir, model_id,
                                                                            "network.prototxt")):
        raise ValidationError("model_id must be a trained model job of this server, got %r" % (model_id,),
                              field="model_id")
    snapshot = raw.get("snapshot") or "best"
    if str(snapshot).isdigit():
        snapshot = int(snapshot)
    elif snapshot not in ("best", "last"):
        raise ValidationError("snapshot must be best, last or an iteration number", field="snapshot")
    return {"source": "model", "model_id": model_id, "snapshot": snapshot, "name": _name(raw)}


def import_trained(job_dir, params, *, on_progress, should_stop, log, settings, **_extra):
    """Make a pretrained model from a finished model job ("Make pretrained model").

    Goes through the store format on purpose (publish into a private folder, then import
    it) so a local pretrained model is byte-for-byte what a published one would be.
    """
    from .publish import publish

    model_dir = os.path.join(settings.jobs_dir, params["model_id"])
    stage = os.path.join(job_dir, ".local-store")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        on_progress(0.1, "collecting network, weights and labels")
        man = publish(model_dir, stage, snapshot=params["snapshot"], name=params.get("name"), entry_id="model")
        log("weights from %s of model %s" % (man["published_from"]["weights"], params["model_id"]))
        entry = index.read_entry(stage, "model")
        local = {f["role"]: f["location"] for f in entry["files"]}
        entry["trained_from_job"] = params["model_id"]
        on_progress(0.5, "building the pretrained model")
        manifest = assemble(job_dir, local, entry, log, {"model_job": params["model_id"],
                                                         "snapshot": params["snapshot"]})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    on_progress(1.0, "done")
    return _summary(manifest)


def _progress_bytes(on_progress, done_before, total, span):
    def cb(done, _file_total):
        if total:
            on_progress(min(span, span * (done_before + done) / total), "downloading")
    return cb


def import_model(job_dir, params, *, on_progress, should_stop, log, settings, **_extra):
    """Create a pretrained model in `job_dir` from a store entry (or an upload, by params)."""
    if params.get("source") in ("upload", "model"):
        task = import_upload if params["source"] == "upload" else import_trained
        return task(job_dir, params, on_progress=on_progress, should_stop=should_stop, log=log, settings=settings)
    store, model = params["store"], params["model"]
    on_progress(0.0, "reading the store entry")
    log("reading %s from %s" % (model, store))
    entry = index.read_entry(store, model)
    _check_framework(entry)
    if params.get("name"):
        entry["name"] = params["name"]
    for f in entry["files"]:
        check_file_origin(store, model, f)  # before any byte is fetched (see store/origin.py)
    total = sum(f["size"] or 0 for f in entry["files"])
    max_bytes = settings.max_download_mb * 2 ** 20
    if total > max_bytes:
        raise ValidationError("%s needs %d MiB, more than the download limit of %d MiB "
                              "(DIGITS_SEG_MAX_DOWNLOAD_MB)" % (entry["name"], total // 2 ** 20,
                                                                 settings.max_download_mb))
    stage = os.path.join(job_dir, _STAGE)
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    try:
        local, done, received = {}, 0, {}
        for i, f in enumerate(entry["files"]):
            if should_stop():
                raise JobAborted()
            if f["sha256"] == "invalid":
                raise ValidationError("store entry %s: file %s has a malformed sha256; fix manifest.json"
                                      % (model, f["name"]))
            os.makedirs(os.path.join(stage, str(i)))
            dest = os.path.join(stage, str(i), f["name"])
            checks = dict(f["other_hashes"], **({"sha256": f["sha256"]} if f["sha256"] else {}))
            log("downloading %s (%s)%s" % (f["name"], mf.size_text(f["size"]),
                                            ", verified by " + "+".join(sorted(checks)) if checks
                                            else ", no checksum published: not verified"))
            result = download(f["location"], dest, max_bytes=max_bytes - done, hashes=checks,
                              size=f["size"],
                              on_progress=_progress_bytes(on_progress, done, total, 0.9) if total else None,
                              should_stop=should_stop, log=log)
            log("%s: %d bytes, sha256 %s%s" % (f["name"], result["size"], result["sha256"],
                                               " (checksum verified)" if checks else ""))
            done += result["size"]
            received[i] = {"downloaded_size": result["size"], "downloaded_sha256": result["sha256"]}
            if not total:
                on_progress(0.9 * (i + 1) / len(entry["files"]), "downloaded %s" % f["name"])
            if f["role"] in ("network", "weights", "labels", "colormap", "mean", "license") and f["role"] not in local:
                local[f["role"]] = dest
        on_progress(0.9, "building the pretrained model")
        provenance = {"store": store, "model": model,
                      "files": [dict({k: f[k] for k in ("role", "name", "url", "size", "sha256", "other_hashes")},
                                     **received[i]) for i, f in enumerate(entry["files"])]}
        manifest = assemble(job_dir, local, entry, log, provenance)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    on_progress(1.0, "done")
    return _summary(manifest)


def _check_framework(entry):
    if entry.get("framework") not in (None, "caffe"):
        raise ValidationError("%s is a %s model; only Caffe models (prototxt + caffemodel/h5) can be imported"
                              % (entry.get("name"), entry.get("framework")), field="model")


def _summary(manifest):
    return {"name": manifest.get("name"), "num_classes": manifest["num_classes"],
            "has_weights": manifest["has_weights"], "size_bytes": manifest["size_bytes"],
            "architecture": manifest.get("architecture")}


def _find_entry_folder(root):
    """The folder of an extracted archive that holds manifest.json or info.json (top or one level)."""
    for folder in [root] + sorted(os.path.join(root, d) for d in os.listdir(root)
                                  if os.path.isdir(os.path.join(root, d))):
        for name in ("manifest.json", "info.json"):
            if os.path.isfile(os.path.join(folder, name)):
                return folder, name
    raise ValidationError("the archive has no info.json (DIGITS model download) or manifest.json at its top "
                          "level; upload the .tar.gz that DIGITS' 'Download Model' produced", field="archive")


def _entry_from_archive(root):
    folder, which = _find_entry_folder(root)
    try:
        with open(os.path.join(folder, which), "r", encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, ValueError) as e:
        raise ValidationError("%s in the archive is not valid JSON (%s)" % (which, e), field="archive")
    name = os.path.basename(folder)
    if which == "manifest.json":
        entry = mf.from_manifest(data, name)
    else:
        aux = os.path.join(folder, "aux.json")
        aux_data = None
        if os.path.isfile(aux):
            with open(aux, "r", encoding="utf-8") as f:
                try:
                    aux_data = json.load(f)
                except ValueError:
                    aux_data = None
        entry = mf.from_digits_info(data, name, aux_data)
    local = {}
    for f in entry["files"]:
        path = os.path.join(folder, f["name"])
        if f["url"] is None and not os.path.isfile(path):
            raise ValidationError("%s names %s but the archive does not contain it" % (which, f["name"]),
                                  field="archive")
        if f["role"] not in local and os.path.isfile(path):
            local[f["role"]] = path
    lic = os.path.join(folder, "license.txt")
    if "license" not in local and os.path.isfile(lic):
        local["license"] = lic
    return entry, local


def import_upload(job_dir, params, *, on_progress, should_stop, log, settings, **_extra):
    """Create a pretrained model in `job_dir` from uploaded files or a DIGITS model archive."""
    staged = params.get("upload_dir")
    adopt_stage(staged, os.path.join(job_dir, UPLOAD_DIR))
    files = {role: os.path.join(job_dir, rel) for role, rel in params["files"].items()}
    stage = os.path.join(job_dir, _STAGE)
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    try:
        for role, path in files.items():
            if not os.path.isfile(path):
                raise NotFoundError("uploaded %s file %s is missing from the job folder; upload it again"
                                    % (role, params["files"][role]), field=role)
        on_progress(0.1, "reading the upload")
        if "archive" in files:
            log("extracting %s" % os.path.basename(files["archive"]))
            extract_archive(files["archive"], os.path.join(stage, "archive"),
                            max_bytes=settings.max_upload_mb * 2 ** 20, max_files=MAX_ARCHIVE_FILES)
            entry, local = _entry_from_archive(os.path.join(stage, "archive"))
            _check_framework(entry)
            provenance = {"upload": os.path.basename(files["archive"]), "format": entry["format"]}
        else:
            stem = os.path.splitext(os.path.basename(files["weights"]))[0].split("-", 1)[-1]
            entry = mf.from_manifest({"name": stem}, stem)
            local = dict(files)
            provenance = {"upload": sorted(os.path.basename(p) for p in files.values())}
        if should_stop():
            raise JobAborted()
        if params.get("name"):
            entry["name"] = params["name"]
        on_progress(0.3, "building the pretrained model")
        manifest = assemble(job_dir, local, entry, log, provenance)
    finally:
        # Uploads are removed even on failure: a failed import keeps nothing.
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(os.path.join(job_dir, UPLOAD_DIR), ignore_errors=True)
        if staged:
            shutil.rmtree(staged, ignore_errors=True)
    on_progress(1.0, "done")
    return _summary(manifest)
