"""Network weights on disk: Caffe's HDF5 snapshot layout, `.caffemodel` import, and loading
into a compiled net with a per-layer report (copied / reshaped / missing / unexpected).

HDF5 layout (as Caffe's `Net::ToHDF5` writes it): dataset `data/<layer_name>/<i>` holds
blob i of the layer, float32. A layer name containing "/" becomes nested groups; reading
joins them back. Weights are matched by layer name, as Caffe does, so a pretrained
network's layers can be reused by a different architecture (fine-tuning, net surgery).

torch and h5py are imported lazily: the web process imports this module for validation
and must not pay for (or initialise) either.
"""

import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..errors import ValidationError
from ..fsutil import temp_path_for

__all__ = ["save_h5", "read_blobs", "load_weights", "LoadReport", "LayerLoad", "ALL_MISMATCHED"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ALL_MISMATCHED = "all-mismatched"
"""`reinit` value that re-initialises every layer whose weights do not fit."""

STATUSES = ("copied", "reshaped", "missing", "unexpected", "reinitialised")


def _shape_text(shape):
    return "x".join(str(d) for d in shape) if len(shape) else "scalar"


def _to_numpy(blob):
    if hasattr(blob, "detach"):  # a torch tensor
        blob = blob.detach().cpu().numpy()
    return np.ascontiguousarray(blob, dtype=np.float32)


def _blob_dict(net_or_blobs):
    if hasattr(net_or_blobs, "layer_blobs"):
        return net_or_blobs.layer_blobs()
    if hasattr(net_or_blobs, "blobs") and callable(net_or_blobs.blobs):  # a CaffeModel
        return net_or_blobs.blobs()
    if hasattr(net_or_blobs, "items"):
        return net_or_blobs
    raise ValidationError("expected a CaffeNet, a CaffeModel or a dict {layer: [arrays]}, got %s"
                          % type(net_or_blobs).__name__)


# -- HDF5 ----------------------------------------------------------------------------
def save_h5(net, path, extra=None):
    """Write the net's blobs to `path` in Caffe's HDF5 snapshot layout, atomically.

    Args:
        net: a CaffeNet (its `layer_blobs()`) or `{layer: [arrays or tensors]}`.
        extra: optional `extra(h5file)` called before the file is closed and renamed into
            place, so that added groups (e.g. solver state) are never seen half-written.
    """
    import h5py

    blobs = _blob_dict(net)
    tmp = temp_path_for(path)
    try:
        with h5py.File(tmp, "w") as h5:
            data = h5.create_group("data")
            for layer, blob_list in blobs.items():
                if not blob_list:
                    continue
                group = data.create_group(str(layer))
                for i, blob in enumerate(blob_list):
                    group.create_dataset(str(i), data=_to_numpy(blob))
            if extra is not None:
                extra(h5)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _read_h5(path):
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise ValidationError("cannot read HDF5 weights %s: %s (truncated or corrupt file?)"
                              % (path, exc)) from None
    with h5:
        if "data" not in h5 or not isinstance(h5["data"], h5py.Group):
            raise ValidationError("%s has no 'data' group: not a Caffe HDF5 snapshot (expected "
                                  "datasets data/<layer>/<blob index>)" % path)
        out = OrderedDict()
        _walk_h5(h5["data"], "", out, path, h5py)
    return out


def _walk_h5(group, prefix, out, path, h5py):
    """Collect blobs from `group`: digit-named datasets are blobs, subgroups extend the name."""
    blobs = {}
    for key, item in group.items():
        name = prefix + "/" + key if prefix else key
        if isinstance(item, h5py.Group):
            _walk_h5(item, name, out, path, h5py)
        elif key.isdigit():
            try:
                blobs[int(key)] = np.asarray(item[()], dtype=np.float32)
            except (OSError, TypeError, ValueError) as exc:
                raise ValidationError("%s: cannot read dataset data/%s: %s" % (path, name, exc)) from None
        else:
            raise ValidationError("%s: unexpected dataset data/%s (blob datasets are named "
                                  "0, 1, ...)" % (path, name))
    if blobs:
        if sorted(blobs) != list(range(len(blobs))):
            raise ValidationError("%s: layer '%s' has blobs %s; expected 0..%d without gaps"
                                  % (path, prefix, sorted(blobs), len(blobs) - 1))
        out[prefix] = [blobs[i] for i in range(len(blobs))]


def read_blobs(path):
    """Return `{layer: [float32 arrays]}` from an HDF5 snapshot or a `.caffemodel` (sniffed)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise ValidationError("weights file not found: %s" % path) from None
    except IsADirectoryError:
        raise ValidationError("%s is a folder, not a weights file" % path) from None
    if head == HDF5_MAGIC:
        return _read_h5(path)
    from .caffemodel import read_caffemodel

    return read_caffemodel(path).blobs()


# -- loading into a net --------------------------------------------------------------
@dataclass
class LayerLoad:
    """What happened to one layer's weights; `blobs` lists (index, file shape, net shape)."""

    layer: str
    status: str
    detail: str = ""
    blobs: list = field(default_factory=list)

    def to_dict(self):
        return {"layer": self.layer, "status": self.status, "detail": self.detail,
                "blobs": [{"index": i, "file_shape": list(src), "net_shape": list(dst)}
                          for i, src, dst in self.blobs]}


@dataclass
class LoadReport:
    """Per-layer outcome of `load_weights`, in network order then unexpected file layers."""

    layers: list = field(default_factory=list)
    source: str = ""

    def by_status(self, status):
        """Return the names of layers with `status` (one of STATUSES)."""
        return [l.layer for l in self.layers if l.status == status]

    def counts(self):
        return {s: len(self.by_status(s)) for s in STATUSES}

    def lines(self):
        """Return human-readable lines for the job log: a summary, then one per layer."""
        c = self.counts()
        head = "weights%s: %s" % (" from " + self.source if self.source else "",
                                  ", ".join("%d %s" % (c[s], s) for s in STATUSES))
        return [head] + ["  %s: %s%s" % (l.layer, l.status, " (%s)" % l.detail if l.detail else "")
                         for l in self.layers]

    def to_dict(self):
        return {"source": self.source, "counts": self.counts(),
                "layers": [l.to_dict() for l in self.layers]}


def _fits_legacy(src, dst):
    """Caffe compares a legacy 4-D blob with a smaller target padded by leading 1s."""
    return len(src) == 4 and len(dst) < 4 and tuple(src) == (1,) * (4 - len(dst)) + tuple(dst)


def _plan_layer(name, sources, targets):
    """Return (status, detail, blob shapes, problem) for one layer present in both."""
    shapes = [(i, tuple(s.shape), tuple(t.shape)) for i, (s, t) in enumerate(zip(sources, targets))]
    if len(sources) != len(targets):
        return ("mismatch", "", shapes,
                "layer '%s' has %d blobs in the file but %d in the network (check bias_term and "
                "the layer type)" % (name, len(sources), len(targets)))
    reshaped = []
    for i, src, dst in shapes:
        if src == dst or _fits_legacy(src, dst):
            continue
        if int(np.prod(src)) == int(np.prod(dst)):
            reshaped.append("blob %d %s -> %s" % (i, _shape_text(src), _shape_text(dst)))
            continue
        return ("mismatch", "", shapes,
                "layer '%s' blob %d has shape %s in the file but %s in the network"
                % (name, i, _shape_text(src), _shape_text(dst)))
    if reshaped:
        return "reshaped", "net surgery: " + ", ".join(reshaped), shapes, None
    return "copied", "%d blob%s" % (len(shapes), "" if len(shapes) == 1 else "s"), shapes, None


def load_weights(net, path_or_blobs, reinit=()):
    """Copy weights (file path, CaffeModel or `{layer: [arrays]}`) into `net.layer_blobs()`.

    Matching is by layer name. A blob whose element count matches but whose shape differs
    is reshaped (net surgery, e.g. fc6 4096x9216 -> 4096x256x6x6). A shape mismatch raises
    `ValidationError` before anything is copied, unless the layer is named in `reinit` (or
    `reinit == "all-mismatched"`): then it keeps its filler initialisation.
    """
    import torch

    source = ""
    if isinstance(path_or_blobs, (str, os.PathLike)):
        source = os.fspath(path_or_blobs)
        file_blobs = read_blobs(source)
    else:
        file_blobs = _blob_dict(path_or_blobs)
    targets = net.layer_blobs()
    reinit = () if reinit is None else reinit
    if isinstance(reinit, str) and reinit != ALL_MISMATCHED:
        reinit = (reinit,)
    if reinit != ALL_MISMATCHED:
        unknown = [r for r in reinit if r not in targets]
        if unknown:
            raise ValidationError("cannot re-initialise %s: no such layer with weights in the "
                                  "network (layers: %s)" % (", ".join(map(repr, unknown)),
                                                            ", ".join(targets) or "none"), field="reinit")
    report, copies, problems = LoadReport(source=source), [], []
    modules = dict(zip(getattr(net, "layer_names", ()), getattr(net, "layers", ())))
    for name, tgt in targets.items():
        src = file_blobs.get(name)
        adapt = getattr(modules.get(name), "adapt_blobs", None)
        note = ""
        if src is not None and adapt is not None:
            # A layer whose blob layout differs between forks or modes (caffe-segnet's BN).
            src, note = adapt(src)
        if src is None:
            if tgt:
                report.layers.append(LayerLoad(name, "missing", "not in the weights file; kept "
                                               "its filler initialisation"))
            continue
        if not src and not tgt:
            continue
        status, detail, shapes, problem = _plan_layer(name, src, tgt)
        if problem and (reinit == ALL_MISMATCHED or name in reinit):
            status, detail = "reinitialised", problem + "; kept its filler initialisation"
        elif problem:
            problems.append((name, problem))
            continue
        else:
            copies.append((src, tgt))
            if note:
                detail = "%s; %s" % (detail, note)
        report.layers.append(LayerLoad(name, status, detail, shapes))
    if problems:
        names = [n for n, _ in problems]
        raise ValidationError("the weights%s do not fit the network: %s. To train %s from "
                              "scratch instead, allow re-initialising layer%s %s."
                              % (" in " + source if source else "", "; ".join(p for _, p in problems),
                                 "it" if len(names) == 1 else "them",
                                 "" if len(names) == 1 else "s", ", ".join(names)),
                              field="reinit")
    for name, src in file_blobs.items():
        if name not in targets:
            report.layers.append(LayerLoad(name, "unexpected", "in the weights file but not in "
                                           "the network; ignored"))
    with torch.no_grad():
        for src, tgt in copies:
            for s, t in zip(src, tgt):
                value = torch.from_numpy(_to_numpy(s)).reshape(t.shape)
                t.copy_(value.to(dtype=t.dtype, device=t.device))
    return report
