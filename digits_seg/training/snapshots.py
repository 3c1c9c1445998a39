"""Snapshots: Caffe-layout HDF5 weights plus the solver state needed to resume, without pickles.

    snapshot_iter_<N>.h5
      data/<layer>/<i>                 weights (networks.weights.save_h5, Caffe's layout)
      solver/  attrs: iteration, epoch, best_miou, solver_type, param_groups (JSON),
                      rng_numpy, rng_python (JSON)
      solver/state/<param>/<key>       optimizer tensors (momentum buffers, Adam moments...)
      solver/rng/torch, solver/rng/cuda_<i>   torch RNG states (uint8 arrays)
    best.h5                            weights of the best validation mIoU (+ solver attrs)
"""

import glob
import json
import os
import random
import re

import numpy as np

from ..errors import NotFoundError, ValidationError

SNAPSHOT_RE = re.compile(r"^snapshot_iter_(\d+)\.h5$")
BEST_FILE = "best.h5"


def snapshot_name(iteration):
    return "snapshot_iter_%d.h5" % int(iteration)


def _json_safe(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def _solver_writer(optimizer, state):
    """An `extra(h5file)` callback for save_h5 that stores `state` (dict) and the optimizer's state."""
    import torch

    def extra(h5):
        g = h5.require_group("solver")
        for key, value in state.items():
            g.attrs[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) or value is None else value
        g.attrs["rng_numpy"] = json.dumps(_numpy_rng_state())
        g.attrs["rng_python"] = json.dumps(_python_rng_state())
        rng = g.require_group("rng")
        rng.create_dataset("torch", data=torch.get_rng_state().numpy())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                rng.create_dataset("cuda_%d" % i, data=s.numpy())
        if optimizer is None:
            return
        sd = optimizer.state_dict()
        groups = [{k: _json_safe(v) for k, v in pg.items()} for pg in sd["param_groups"]]
        g.attrs["param_groups"] = json.dumps(groups)
        st = g.require_group("state")
        for idx, entries in sd["state"].items():
            pg = st.require_group(str(idx))
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    pg.create_dataset(key, data=value.detach().float().cpu().numpy()
                                      if value.dtype == torch.bfloat16 else value.detach().cpu().numpy())
                else:
                    pg.attrs[key] = _json_safe(value)

    return extra


def _numpy_rng_state():
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def _python_rng_state():
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def save_snapshot(net, optimizer, path, state):
    """Write weights + solver state to `path` atomically (save_h5 writes a temp file, then renames)."""
    from ..networks.weights import save_h5

    save_h5(net, path, extra=_solver_writer(optimizer, state))


def read_solver_attrs(path):
    """The `solver` attributes of a snapshot as plain values ({} for a weights-only file)."""
    import h5py

    with h5py.File(path, "r") as h5:
        if "solver" not in h5:
            return {}
        out = {}
        for k, v in h5["solver"].attrs.items():
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            if isinstance(v, str) and k in ("param_groups", "rng_numpy", "rng_python", "extra"):
                v = json.loads(v)
            elif isinstance(v, np.generic):
                v = v.item()
            out[k] = v
        return out


def load_solver_state(path, optimizer, restore_rng=True):
    """Restore optimizer tensors and RNG states from a snapshot; return its solver attributes."""
    import h5py
    import torch

    attrs = read_solver_attrs(path)
    if "iteration" not in attrs:
        raise ValidationError("%s has no solver state (it is a weights-only file); it cannot be resumed" % path)
    with h5py.File(path, "r") as h5:
        g = h5["solver"]
        if optimizer is not None and "param_groups" in attrs:
            groups = attrs["param_groups"]
            for pg in groups:
                if isinstance(pg.get("betas"), list):
                    pg["betas"] = tuple(pg["betas"])
            state = {}
            for idx, pg in g.get("state", {}).items():
                entry = {k: torch.from_numpy(np.array(ds)) for k, ds in pg.items()}
                entry.update({k: (v.item() if isinstance(v, np.generic) else v) for k, v in pg.attrs.items()})
                state[int(idx)] = entry
            try:
                optimizer.load_state_dict({"state": state, "param_groups": groups})
            except (ValueError, KeyError) as exc:
                raise ValidationError(
                    "The snapshot %s does not match this network/solver (%s); start a new training instead of resuming"
                    % (os.path.basename(path), exc)
                )
        if restore_rng and "rng" in g:
            torch.set_rng_state(torch.from_numpy(np.array(g["rng"]["torch"])))
            cuda = sorted(k for k in g["rng"] if k.startswith("cuda_"))
            if cuda and torch.cuda.is_available():
                states = [torch.from_numpy(np.array(g["rng"][k])) for k in cuda]
                if len(states) == torch.cuda.device_count():
                    torch.cuda.set_rng_state_all(states)
    if restore_rng:
        if attrs.get("rng_numpy"):
            n = attrs["rng_numpy"]
            np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), n[2], n[3], n[4]))
        if attrs.get("rng_python"):
            v, internal, gauss = attrs["rng_python"]
            random.setstate((v, tuple(internal), gauss))
    return attrs


def list_snapshots(job_dir, include_best=False):
    """Snapshots in `job_dir`, oldest first: [{name, path, iteration, epoch, size, mtime, best}]."""
    out = []
    for path in glob.glob(os.path.join(job_dir, "snapshot_iter_*.h5")):
        m = SNAPSHOT_RE.match(os.path.basename(path))
        if not m:
            continue
        out.append(_describe(path, int(m.group(1))))
    out.sort(key=lambda s: s["iteration"])
    best = os.path.join(job_dir, BEST_FILE)
    if include_best and os.path.exists(best):
        d = _describe(best, None)
        d["best"] = True
        out.append(d)
    return out


def _describe(path, iteration):
    st = os.stat(path)
    d = {"name": os.path.basename(path), "path": path, "iteration": iteration, "epoch": None,
         "size": st.st_size, "mtime": st.st_mtime, "best": False}
    try:
        attrs = read_solver_attrs(path)
    except OSError:
        return d  # unreadable (e.g. truncated by a full disk): listed, so the user can delete it
    if iteration is None:
        d["iteration"] = attrs.get("iteration")
    d["epoch"] = attrs.get("epoch")
    d["val_mean_iou"] = attrs.get("best_miou") if d["best"] or iteration is None else None
    return d


def resolve_snapshot(job_dir, snapshot="best"):
    """Path of `snapshot` in `job_dir`: 'best' (falls back to the last), 'last', an iteration, or a file name."""
    snaps = list_snapshots(job_dir)
    if snapshot in (None, "", "last", "latest"):
        if not snaps:
            raise NotFoundError("No snapshot in %s yet: train for at least one snapshot interval" % job_dir)
        return snaps[-1]["path"]
    if snapshot == "best":
        best = os.path.join(job_dir, BEST_FILE)
        if os.path.exists(best):
            return best
        return resolve_snapshot(job_dir, "last")
    name = str(snapshot)
    if name.isdigit():
        name = snapshot_name(int(name))
    path = os.path.join(job_dir, os.path.basename(name))
    if not os.path.exists(path):
        choices = ", ".join(["best"] + [str(s["iteration"]) for s in snaps])
        raise NotFoundError("No snapshot %r in this model. Available: %s" % (snapshot, choices))
    return path


def export_caffemodel(job_dir, snapshot="best", out_path=None, name=None):
    """Convert a snapshot to `.caffemodel` (next to it unless `out_path`) and return the path."""
    from ..networks.caffemodel import write_caffemodel
    from ..networks.weights import read_blobs

    src = resolve_snapshot(job_dir, snapshot)
    if out_path is None:
        out_path = os.path.splitext(src)[0] + ".caffemodel"
    write_caffemodel(read_blobs(src), out_path, name=name or os.path.basename(os.path.normpath(job_dir)))
    return out_path
