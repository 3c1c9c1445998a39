"""Build a *pretrained* job folder from local files: network, weights, labels, colours, manifest.

Shared by store imports and uploads. Output files (in the job folder):
`network.prototxt`, `weights.h5` (Caffe's HDF5 snapshot layout `data/<layer>/<i>`;
converted from `.caffemodel` when needed; absent when the entry has no weights),
`labels.txt`, `colormap.json` (a JSON list of `[r, g, b]`, one per class) and
`manifest.json`. Everything is first written to a staging folder and moved in at the end,
so a failure leaves no partial pretrained model.
"""

import hashlib
import json
import os
import shutil
import time

import numpy as np

from ..errors import ValidationError
from ..fsutil import write_bytes_atomic, write_json_atomic
from ..networks.weights import save_h5
from . import manifest as mf

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
OUTPUT_FILES = ("network.prototxt", "weights.h5", "labels.txt", "colormap.json", "preprocess.json", "manifest.json")
"""Files a pretrained job folder holds (weights.h5 only when the model has weights)."""


def sha256_of(path):
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_record(path, role):
    """A manifest `files[]` item for a local file."""
    return {"role": role, "name": os.path.basename(path), "size": os.path.getsize(path),
            "sha256": sha256_of(path)}


def read_network(path):
    """Read and parse a prototxt; return (text, Message) or raise ValidationError with the line."""
    from ..networks.prototxt import parse

    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise ValidationError("%s is not a text prototxt (not UTF-8); upload the network description, "
                              "not a binary file" % os.path.basename(path), field="network")
    net = parse(text, source=os.path.basename(path))
    if not (net.get_all("layer") or net.get_all("layers")):
        raise ValidationError("%s has no layers; is it a solver or an empty file?" % os.path.basename(path),
                              field="network")
    return text, net


def _layer_names(net):
    return [l.get("name") for l in net.get_all("layer") + net.get_all("layers") if l.get("name")]


def guess_num_classes(net):
    """Class count = num_output of the last (De)Convolution layer; None when there is none."""
    n = None
    for layer in net.get_all("layer") + net.get_all("layers"):
        p = layer.get("convolution_param")
        if p is not None and isinstance(p.get("num_output"), int):
            n = p.get("num_output")
    return n


def _weights_only_h5(path):
    """True for an HDF5 file holding nothing but Caffe's `data/<layer>/<i>` groups (no solver state)."""
    import h5py

    with h5py.File(path, "r") as h5:
        return set(h5.keys()) == {"data"}


def convert_weights(src, dst, log, network_text=None):
    """Write the weights of an HDF5 snapshot or a `.caffemodel` (sniffed) to `dst` as weights-only HDF5.

    Returns {layer: [blob shapes]}. Solver state in a snapshot is dropped: a pretrained
    model is a starting point, not a run to resume. A file that already is weights-only HDF5
    is kept byte for byte, so the imported file is the one whose size and sha256 were verified,
    unless a layer had to be fitted to `network_text` (see blob_fit.py).
    """
    from ..networks.weights import read_blobs, save_h5
    from .blob_fit import group_diagonal_blobs

    with open(src, "rb") as f:
        kind = "HDF5 snapshot" if f.read(8) == HDF5_SIGNATURE else ".caffemodel"
    try:
        blobs = read_blobs(src)
    except ValidationError as e:
        raise ValidationError("weights file %s: %s" % (os.path.basename(src), e.message), field="weights")
    if not blobs:
        raise ValidationError("%s holds no weight blobs; is it a .caffemodel or Caffe HDF5 snapshot?"
                              % os.path.basename(src), field="weights")
    fitted = group_diagonal_blobs(blobs, network_text, log) if network_text else blobs
    if kind == "HDF5 snapshot" and _weights_only_h5(src) and fitted is blobs:
        shutil.copyfile(src, dst)
        log("weights: %s (weights-only HDF5, %d layers) kept unchanged as weights.h5"
            % (os.path.basename(src), len(blobs)))
    else:
        blobs = fitted
        save_h5(blobs, dst)
        log("weights: %s (%s, %d layers) written as weights.h5" % (os.path.basename(src), kind, len(blobs)))
    return {k: [tuple(np.shape(a)) for a in v] for k, v in blobs.items()}


def colormap_bytes(colors):
    """colormap.json as the publisher writes it (one line), so a store's file imports unchanged."""
    return json.dumps([list(c) for c in colors]).encode("utf-8")


def _write_colormap(path, classes, given):
    """The store's own colormap.json when it holds exactly these colours, else one written from them."""
    colors = [list(c["color"]) for c in classes]
    if given:
        try:
            with open(given, "rb") as f:
                data = f.read()
            if json.loads(data.decode("utf-8")) == colors:
                write_bytes_atomic(path, data)
                return
        except (OSError, ValueError, UnicodeDecodeError):
            pass  # a colormap that does not match the classes is replaced by theirs
    write_bytes_atomic(path, colormap_bytes(colors))


def convert_pytorch_weights(path, log):
    """Convert a torchvision `.pth` (see networks/torchvision_weights.py) and log what was done."""
    from ..networks.torchvision_weights import convert_file

    converted = convert_file(path)
    for line in converted.lines():
        log("weights: " + line)
    return converted


def _pytorch_network(converted, files, entry, log):
    """The standard network a converted .pth belongs to, for an upload that has no prototxt."""
    from ..networks.prototxt import parse
    from ..networks.standard import standard_prototxt

    count = None
    if files.get("labels"):
        with open(files["labels"], "r", encoding="utf-8", errors="replace") as f:
            count = sum(1 for ln in f if ln.strip())
    count = count or converted.num_classes or len(entry.get("classes") or []) or 21
    log("network: standard network %s with %d classes (no network file was given)"
        % (converted.architecture.network, count))
    text = standard_prototxt(converted.architecture.network, max(count, 2))
    return text, parse(text, source=converted.architecture.network)


def check_blobs_fit(converted, text, name):
    """Raise ValidationError unless every converted layer exists in the network with the same blob shapes."""
    from ..networks.compiler import compile_net

    have = {k: [tuple(b.shape) for b in v]
            for k, v in compile_net(text, "deploy", device="meta").layer_blobs().items()}
    absent = [k for k in converted.blobs if k not in have]
    wrong = ["%s %s (network: %s)" % (k, [list(b.shape) for b in v], [list(x) for x in have[k]])
             for k, v in converted.blobs.items() if k in have and [tuple(b.shape) for b in v] != have[k]]
    if absent or wrong:
        raise ValidationError("%s weights do not fit the network %s: %s%s. Use the standard network %s (or upload "
                              "the .pth without a network file)"
                              % (converted.architecture.title, name,
                                 "no layers %s" % ", ".join(absent[:8]) if absent else "",
                                 ("; " if absent and wrong else "") + ("blob shapes differ: %s" % "; ".join(wrong[:4])
                                                                       if wrong else ""),
                                 converted.architecture.network), field="weights")


def read_mean_binaryproto(path):
    """Per-channel mean of a Caffe mean file (BlobProto, as DIGITS wrote `mean.binaryproto`)."""
    from ..networks import wire

    with open(path, "rb") as f:
        buf = f.read()
    data, dims, legacy = [], [], {}
    for field, wtype, value in wire.iter_fields(buf):
        if field == 5 and wtype == wire.LENGTH:
            data.extend(np.frombuffer(bytes(value), dtype="<f4").tolist())
        elif field == 5 and wtype == wire.FIXED32:
            data.append(wire.as_float32(value))
        elif field == 7 and wtype == wire.LENGTH:
            for f2, w2, v2 in wire.iter_fields(value):
                if f2 == 1 and w2 == wire.LENGTH:
                    pos = 0
                    while pos < len(v2):
                        d, pos = wire.read_varint(v2, pos)
                        dims.append(d)
                elif f2 == 1:
                    dims.append(v2)
        elif field in (1, 2, 3, 4) and wtype == wire.VARINT:
            legacy[field] = value
    if not dims and legacy:
        dims = [legacy.get(i, 1) for i in (1, 2, 3, 4)]
    if not data or not dims:
        raise ValidationError("%s is not a Caffe mean file (BlobProto with data)" % os.path.basename(path),
                              field="mean")
    arr = np.asarray(data, dtype=np.float32)
    channels = dims[-3] if len(dims) >= 3 else 1
    if arr.size % max(channels, 1):
        raise ValidationError("%s: %d values do not fit shape %s" % (os.path.basename(path), arr.size, dims),
                              field="mean")
    return [round(float(v), 4) for v in arr.reshape(channels, -1).mean(axis=1)]


def _classes_from(files, entry, net, log):
    if files.get("labels"):
        with open(files["labels"], "r", encoding="utf-8", errors="replace") as f:
            names = [ln.strip() for ln in f if ln.strip()]
        if not names:
            raise ValidationError("labels file %s is empty; one class name per line"
                                  % os.path.basename(files["labels"]), field="labels")
        known = {c["name"]: c["color"] for c in entry.get("classes") or []}
        palette = mf.default_colormap(len(names))
        return [{"name": n, "color": known.get(n) or palette[i]} for i, n in enumerate(names)]
    if entry.get("classes"):
        return entry["classes"]
    n = guess_num_classes(net)
    if not n:
        raise ValidationError("no labels file and the network has no convolution layer to count classes "
                              "from; add a labels file (one class name per line)", field="labels")
    log("warning: no labels given; naming the %d classes class_0..class_%d" % (n, n - 1))
    palette = mf.default_colormap(n)
    return [{"name": "class_%d" % i, "color": palette[i]} for i in range(n)]


def _preprocess_record(entry, mean_file_pixel):
    """The imported model's preprocess.json: the entry's `preprocess`, else RGB with its mean file's mean, if any.

    Training from this model and inference with it both read this file, so what the store
    says the model expects is what it gets. A manifest's bare `mean` list is not used: the
    bundled FCN entries give the authors' mean there while their networks subtract their own.
    """
    rec = dict(entry.get("preprocess") or {})
    rec.setdefault("channels", entry.get("channels") or 3)
    rec.setdefault("channel_order", "RGB")
    if mean_file_pixel is not None and not rec.get("mean_pixel"):
        rec["mean_pixel"] = list(mean_file_pixel)
    rec.setdefault("mean_subtraction", "pixel" if rec.get("mean_pixel") else "none")
    if rec["mean_subtraction"] == "none":
        rec["mean_pixel"] = None
    rec.setdefault("scale", 1.0)
    rec.setdefault("input_size", entry.get("input_size"))
    return rec


def assemble(job_dir, files, entry, log, provenance):
    """Build the pretrained model in `job_dir` from local `files` ({role: path}); return the manifest.

    Args:
        files: must have "network"; may have "weights", "labels", "mean", "license".
        entry: an entry dict (manifest.py) describing the model (name, classes, license, ...).
        provenance: JSON-able dict recorded as `imported_from` (store URL, upload names, ...).
    """
    from ..networks.torchvision_weights import is_pytorch_file

    converted = None
    if files.get("weights") and is_pytorch_file(files["weights"]):
        converted = convert_pytorch_weights(files["weights"], log)
    if not files.get("network") and converted is None:
        raise ValidationError("the model has no network description (prototxt); it cannot be imported",
                              field="network")
    stage = os.path.join(job_dir, ".assemble-partial")
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    try:
        if files.get("network"):
            text, net = read_network(files["network"])
        else:
            text, net = _pytorch_network(converted, files, entry, log)
        out = {"network": os.path.join(stage, "network.prototxt")}
        with open(out["network"], "w", encoding="utf-8") as f:
            f.write(text)
        if converted is not None:
            check_blobs_fit(converted, text, os.path.basename(files.get("network") or converted.architecture.network))
            out["weights"] = os.path.join(stage, "weights.h5")
            save_h5(converted.blobs, out["weights"])
            shapes = {k: [tuple(b.shape) for b in v] for k, v in converted.blobs.items()}
        elif files.get("weights"):
            out["weights"] = os.path.join(stage, "weights.h5")
            shapes = convert_weights(files["weights"], out["weights"], log, network_text=text)
        if files.get("weights"):
            names = set(_layer_names(net))
            unused = sorted(set(shapes) - names)
            if unused:
                log("note: weights for layers not in the network (ignored when training): %s"
                    % ", ".join(unused[:20]))
        else:
            log("note: this model has no weights; training from it starts from the fillers")
        classes = _classes_from(files, entry, net, log)
        out["labels"] = os.path.join(stage, "labels.txt")
        with open(out["labels"], "w", encoding="utf-8") as f:
            f.write("".join(c["name"] + "\n" for c in classes))
        out["colormap"] = os.path.join(stage, "colormap.json")
        _write_colormap(out["colormap"], classes, files.get("colormap"))
        mean = entry.get("mean")
        if files.get("mean"):
            mean = read_mean_binaryproto(files["mean"])
            log("mean: per-channel mean %s from %s" % (mean, os.path.basename(files["mean"])))
        if converted is not None:  # what torchvision's weights were trained on, whatever the entry says
            preprocess = converted.preprocess
            log("preprocess.json: %s (the input these weights expect)" % preprocess)
        else:
            preprocess = _preprocess_record(entry, mean if files.get("mean") else None)
        write_json_atomic(os.path.join(stage, "preprocess.json"), preprocess)
        if files.get("license"):
            out["license"] = os.path.join(stage, "license.txt")
            shutil.copyfile(files["license"], out["license"])
        manifest = {k: v for k, v in entry.items() if k not in ("files", "warnings", "location", "store")}
        manifest.update({
            "format": mf.FORMAT,
            "classes": classes,
            "num_classes": len(classes),
            "mean": mean,
            "preprocess": preprocess,
            "has_weights": "weights" in out,
            "needs_internet": False,
            "files": [file_record(p, role) for role, p in out.items()],
            "imported_from": provenance,
            "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        manifest["size_bytes"] = sum(f["size"] for f in manifest["files"])
        write_json_atomic(os.path.join(stage, "manifest.json"), manifest)
        # manifest.json last: its presence marks a complete pretrained model.
        for name in sorted(os.listdir(stage), key=lambda n: n == "manifest.json"):
            os.replace(os.path.join(stage, name), os.path.join(job_dir, name))
        return manifest
    finally:
        shutil.rmtree(stage, ignore_errors=True)
