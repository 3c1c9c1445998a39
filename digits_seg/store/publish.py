"""Publish a trained model job (or a pretrained job) as an entry of a store folder.

The entry folder gets `network.prototxt`, `weights.h5` (weights only: the solver state of
a snapshot is dropped), `labels.txt`, `colormap.json`, `manifest.json` (with each file's
size and sha256) and a DIGITS-compatible `info.json`, so DIGITS and digits-seg can both
read it. The folder is built under a temp name and renamed; `master.json` is then
rewritten atomically under a lock so two publishers never lose each other's entry.
"""

import fcntl
import json
import os
import re
import shutil
import time

from ..errors import ConflictError, NotFoundError, ValidationError
from ..fsutil import read_json, temp_path_for, write_json_atomic
from . import manifest as mf
from .assemble import file_record

MASTER = "master.json"
LOCK = ".master.lock"


def slugify(name):
    """A store folder name from a model name ("FCN-8s on VOC" → "fcn-8s-on-voc")."""
    slug = re.sub(r"[^a-z0-9._+-]+", "-", name.lower()).strip("-.")[:80]
    return slug or "model"


def _weights_source(model_dir, snapshot):
    if os.path.isfile(os.path.join(model_dir, "weights.h5")) and snapshot in ("best", None):
        return os.path.join(model_dir, "weights.h5")
    if snapshot in ("best", None):
        path = os.path.join(model_dir, "best.h5")
        if os.path.isfile(path):
            return path
        snapshot = "last"
    snaps = sorted((int(m.group(1)), n) for n in os.listdir(model_dir)
                   for m in [re.match(r"^snapshot_iter_(\d+)\.h5$", n)] if m)
    if snapshot == "last":
        if not snaps:
            raise NotFoundError("%s has no best.h5 and no snapshot_iter_<N>.h5; train the model first" % model_dir)
        return os.path.join(model_dir, snaps[-1][1])
    try:
        it = int(snapshot)
    except (TypeError, ValueError):
        raise ValidationError("snapshot must be 'best', 'last' or an iteration number, got %r" % (snapshot,),
                              field="snapshot")
    path = os.path.join(model_dir, "snapshot_iter_%d.h5" % it)
    if not os.path.isfile(path):
        raise NotFoundError("no snapshot at iteration %d in %s; available: %s"
                            % (it, model_dir, ", ".join(str(i) for i, _ in snaps) or "none"))
    return path


def _copy_weights_only(src, dst):
    """Copy the `data/` group of a snapshot (drop solver state: it is only needed to resume)."""
    import h5py

    with h5py.File(src, "r") as fin, h5py.File(dst, "w") as fout:
        if "data" not in fin:
            raise ValidationError("%s has no data/ group; not a weights snapshot" % src)
        fin.copy("data", fout)


def _classes(model_dir):
    labels = os.path.join(model_dir, "labels.txt")
    if not os.path.isfile(labels):
        raise NotFoundError("%s has no labels.txt; a model folder copies its dataset's labels when "
                            "training starts" % model_dir)
    with open(labels, "r", encoding="utf-8") as f:
        names = [ln.strip() for ln in f if ln.strip()]
    colors = None
    cpath = os.path.join(model_dir, "colormap.json")
    if os.path.isfile(cpath):
        data = read_json(cpath)
        if isinstance(data, dict):
            data = data.get("colors") or data.get("colormap")
        if isinstance(data, list) and len(data) == len(names):
            colors = data
    raw = [{"name": n, "color": colors[i] if colors else None} for i, n in enumerate(names)]
    return mf.normalize_classes(raw)


def _job_info(model_dir):
    """(job.json dict or {}, metrics dict, trained_on) of a job folder, read tolerantly."""
    job_path = os.path.join(model_dir, "job.json")
    job = read_json(job_path) if os.path.isfile(job_path) else {}
    params = job.get("params") or {}
    metrics, trained_on = {}, None
    from ..training.metrics_log import read_metrics

    vals = [r for r in read_metrics(model_dir, kind="val") if isinstance(r.get("mean_iou"), (int, float))]
    if vals:
        best = max(vals, key=lambda r: r["mean_iou"])
        metrics = {"val_" + k: best[k] for k in ("mean_iou", "pixel_acc", "mean_acc")
                   if isinstance(best.get(k), (int, float))}
        metrics["epoch"] = best.get("epoch")
        metrics = {k: v for k, v in metrics.items() if v is not None}
    ds = params.get("dataset_id")
    if ds:
        trained_on = _trained_on(os.path.join(os.path.dirname(model_dir), ds), ds)
    return job, metrics, trained_on


def _trained_on(dataset_dir, dataset_id):
    """The training data in words, for readers on other servers: "SynthCity: 320 training (128×96) and
    80 validation images, 10 classes" — a job id means nothing outside the publishing server."""
    ds_json = os.path.join(dataset_dir, "job.json")
    name = read_json(ds_json).get("name") if os.path.isfile(ds_json) else None
    info_path = os.path.join(dataset_dir, "dataset.json")
    info = read_json(info_path) if os.path.isfile(info_path) else {}
    splits = info.get("splits") or {}
    counts = [(splits.get(s) or {}).get("count") for s in ("train", "val")]
    if not name and not any(counts):
        return "a dataset of the publishing server (job %s)" % dataset_id
    text = name or "a dataset"
    parts = []
    if counts[0]:
        size = (splits.get("train") or {}).get("size")
        parts.append("{:,} training".format(counts[0]) + (" (%d×%d)" % tuple(size[:2]) if size else ""))
    if counts[1]:
        parts.append("{:,} validation".format(counts[1]))
    if parts:
        text += ": " + " and ".join(parts) + " images"
    if info.get("num_classes"):
        text += ", %d classes" % info["num_classes"]
    return text

def _preprocess(model_dir):
    """The model's input recipe (its preprocess.json, or what inference falls back to) for the manifest.

    A mean image cannot travel in a manifest: such a model is published with its mean pixel,
    which is what inference uses when the mean image is unavailable.
    """
    from ..inference.preprocess import load_preprocess
    from .manifest import PREPROCESS_KEYS

    try:
        rec = load_preprocess(model_dir).to_dict()
    except (NotFoundError, ValidationError):
        return None  # an old folder without preprocess.json whose dataset is gone: nothing to say
    if rec.get("mean_subtraction") == "image":
        rec["mean_subtraction"] = "pixel" if rec.get("mean_pixel") else "none"
    path = os.path.join(model_dir, "preprocess.json")
    recorded = read_json(path) if os.path.isfile(path) else {}
    for key in ("resize", "resize_mode"):  # the dataset's geometry (inference/geometry.py), not in Preprocess
        rec[key] = recorded.get(key)
    return {k: rec.get(k) for k in PREPROCESS_KEYS}


def publish(model_dir, to_dir, snapshot="best", name=None, *, entry_id=None, description=None,
            license=None, source_url=None, citation=None, overwrite=False):
    """Add `model_dir` as a new entry of the store folder `to_dir`; return the entry's manifest.

    Args:
        snapshot: "best" (best.h5, or weights.h5 of a pretrained job), "last", or an iteration.
        entry_id: the entry folder name (default: slug of the name).
        overwrite: replace an existing entry with the same id instead of raising ConflictError.
    """
    model_dir = os.path.abspath(model_dir)
    if not os.path.isfile(os.path.join(model_dir, "network.prototxt")):
        raise NotFoundError("%s is not a model folder (no network.prototxt)" % model_dir)
    job, metrics, trained_on = _job_info(model_dir)
    old = {}
    if os.path.isfile(os.path.join(model_dir, "manifest.json")):
        old = read_json(os.path.join(model_dir, "manifest.json"))
    name = name or job.get("name") or old.get("name") or os.path.basename(model_dir)
    entry_id = entry_id or slugify(name)
    _entry_target(to_dir, entry_id, overwrite)  # fail before copying the weights
    weights_src = _weights_source(model_dir, snapshot)
    classes = _classes(model_dir)
    network = (job.get("params") or {}).get("network") or {}
    preprocess = _preprocess(model_dir)
    meta = {
        "name": name, "description": description or old.get("description"),
        "architecture": network.get("name") if network.get("kind") == "standard" else old.get("architecture"),
        "classes": classes, "input_size": (preprocess or {}).get("input_size") or old.get("input_size"),
        "channels": (preprocess or {}).get("channels") or old.get("channels", 3),
        "mean": preprocess.get("mean_pixel") if preprocess else old.get("mean"), "preprocess": preprocess,
        "license": license or old.get("license"),
        "source": {"url": source_url, "citation": citation},
        "trained_on": trained_on or old.get("trained_on"), "metrics": metrics or old.get("metrics") or {},
        "published_from": {"job": job.get("id") or os.path.basename(model_dir),
                           "weights": os.path.basename(weights_src)},
    }
    weights_tmp = temp_path_for(os.path.join(to_dir, ".weights-%s.h5" % entry_id))
    try:
        _copy_weights_only(weights_src, weights_tmp)
        files = {"network.prototxt": ("network", os.path.join(model_dir, "network.prototxt")),
                 "weights.h5": ("weights", weights_tmp)}
        return add_entry(to_dir, entry_id, meta, files, overwrite=overwrite)
    finally:
        if os.path.exists(weights_tmp):
            os.unlink(weights_tmp)


def _entry_target(to_dir, entry_id, overwrite):
    """Check `entry_id` and return the entry's folder path in `to_dir` (created if missing)."""
    if not mf.safe_file_name(entry_id):
        raise ValidationError("entry id %r must be a plain folder name (letters, digits, . _ + -)" % entry_id,
                              field="entry_id")
    os.makedirs(to_dir, exist_ok=True)
    final = os.path.join(to_dir, entry_id)
    if os.path.exists(final) and not overwrite:
        raise ConflictError("%s already exists in %s; choose another name or pass overwrite" % (entry_id, to_dir))
    return final


def add_entry(to_dir, entry_id, meta, files, remote_files=(), overwrite=False):
    """Write entry folder `entry_id` in store `to_dir` and list it in master.json; return its manifest.

    Args:
        meta: manifest fields (name, description, architecture, classes [names or
            {name, color}], input_size, channels, mean, license, source, trained_on, metrics, ...).
        files: {file name in the entry: (role, source path or bytes)}. `labels.txt` and
            `colormap.json` are generated from `meta["classes"]` unless given.
        remote_files: manifest `files[]` items for weights hosted elsewhere
            ({role, name, url, size, sha256 | sha1 | md5, note}); marked "needs internet".
    """
    final = _entry_target(to_dir, entry_id, overwrite)
    classes = mf.normalize_classes(meta.get("classes"))
    tmp = temp_path_for(final)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        records = []
        files = dict(files)
        if classes and "labels.txt" not in files:
            files["labels.txt"] = ("labels", "".join(c["name"] + "\n" for c in classes).encode("utf-8"))
        if classes and "colormap.json" not in files:
            files["colormap.json"] = ("colormap", json.dumps([c["color"] for c in classes]).encode("utf-8"))
        for name, (role, src) in files.items():
            if not mf.safe_file_name(name):
                raise ValidationError("entry file name %r must be a plain file name" % name)
            dst = os.path.join(tmp, name)
            if isinstance(src, bytes):
                with open(dst, "wb") as f:
                    f.write(src)
            else:
                shutil.copyfile(src, dst)
            records.append(file_record(dst, role))
        for item in remote_files:
            records.append({k: v for k, v in item.items() if v is not None})
        manifest = dict({k: v for k, v in meta.items() if k != "license_text"}, format=mf.FORMAT, id=entry_id, framework=meta.get("framework", "caffe"),
                        classes=classes, num_classes=len(classes) if classes else meta.get("num_classes"),
                        files=records,
                        published_at=meta["published_at"] if "published_at" in meta
                        else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        write_json_atomic(os.path.join(tmp, "manifest.json"), manifest)
        info = {"name": meta.get("name") or entry_id, "framework": "caffe"}
        by_role = {r["role"]: r["name"] for r in records if "url" not in r}
        for key, role in (("snapshot file", "weights"), ("model file", "network"), ("labels file", "labels")):
            if role in by_role:
                info[key] = by_role[role]
        write_json_atomic(os.path.join(tmp, "info.json"), info)
        if meta.get("license_text"):
            with open(os.path.join(tmp, "license.txt"), "w", encoding="utf-8") as f:
                f.write(meta["license_text"])
        with _master_lock(to_dir):
            if os.path.exists(final):
                if not overwrite:
                    raise ConflictError("%s already exists in %s" % (entry_id, to_dir))
                shutil.rmtree(final)
            os.replace(tmp, final)
            add_to_master(to_dir, entry_id)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


class _master_lock:
    """An exclusive flock on `<store>/.master.lock` around a read-modify-write of master.json."""

    def __init__(self, to_dir):
        self.path = os.path.join(to_dir, LOCK)

    def __enter__(self):
        self.f = open(self.path, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def add_to_master(to_dir, entry_id, msg=None):
    """Append `entry_id` to `master.json` (created if missing); call under the lock."""
    path = os.path.join(to_dir, MASTER)
    master = {"msg": msg or "digits-seg model store", "children": []}
    if os.path.isfile(path):
        try:
            master = read_json(path)
        except ValueError as e:
            raise ValidationError("%s is not valid JSON (%s); fix or delete it" % (path, e))
    children = [c for c in master.get("children", []) if c != entry_id]
    children.append(entry_id)
    master["children"] = children
    write_json_atomic(path, master)
    return master


def rebuild_master(to_dir, msg=None):
    """Rewrite `master.json` from the entry folders present (those with manifest.json or info.json)."""
    with _master_lock(to_dir):
        path = os.path.join(to_dir, MASTER)
        old = read_json(path) if os.path.isfile(path) else {}
        present = sorted(n for n in os.listdir(to_dir) if mf.safe_file_name(n) and (
            os.path.isfile(os.path.join(to_dir, n, "manifest.json"))
            or os.path.isfile(os.path.join(to_dir, n, "info.json"))))
        ordered = [c for c in old.get("children", []) if c in present]
        ordered += [c for c in present if c not in ordered]
        master = {"msg": msg or old.get("msg") or "digits-seg model store", "children": ordered}
        write_json_atomic(path, master)
        return master

