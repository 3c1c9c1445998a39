"""Validate the model form (HTML strings or typed JSON) into the canonical training params dict.

The canonical dict is what `trainer.train` reads and what job.json stores, so a job can be
cloned (`?clone=<id>`) from it. `base_lr` and `batch_size` may hold several comma-separated
values (a sweep, as DIGITS allowed); `expand_sweep` turns such a dict into one dict per
combination, each with scalar values, and the jobs layer creates one job per dict.
"""

import itertools

from ..errors import ValidationError
from .lr_policy import POLICIES
from .solver import SOLVER_TYPES

NETWORK_KINDS = ("standard", "custom", "previous", "pretrained")
"""Where the network description comes from."""

MEAN_MODES = ("none", "pixel", "image", "model")
"""Mean subtraction: nothing, the dataset's per-channel mean, its mean image, or (the default when
fine-tuning) the preprocessing of the model the job starts from (training/input_recipe.py)."""

CLASS_WEIGHTINGS = ("none", "inverse", "median")
"""Class weights for the loss: none, inverse frequency, median frequency balancing."""

DEFAULTS = {
    "epochs": 30,
    "snapshot_interval": 1.0,
    "val_interval": 1.0,
    "batch_size": None,
    "iter_size": 1,
    "solver_type": "SGD",
    "base_lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "lr_policy": "step",
    "lr_step_size": 33.0,
    "lr_gamma": 0.1,
    "lr_power": 1.0,
    "lr_stepvalues": [50.0, 85.0],
    "seed": None,
    "early_stop_patience": 0,
    "mean_subtraction": "pixel",
    "freeze_bn": "auto",
    "crop_size": None,
    "hflip": False,
    "random_scale": None,
    "class_weighting": "none",
    "dice_weight": 0.0,
    "device": "auto",
    "num_gpus": 1,
    "amp": True,
    "loader_workers": 2,
    "log_interval": 10,
    "val_previews": 4,
}
"""Canonical params and their defaults (DIGITS' defaults where it had the field)."""


def _blank(v):
    return v is None or (isinstance(v, str) and not v.strip())


def _number(raw, field, kind, minimum=None, maximum=None, allow_none=False):
    v = raw.get(field)
    if _blank(v):
        if allow_none:
            return None
        v = DEFAULTS[field]
        if v is None:
            return None
    try:
        x = kind(float(v)) if kind is int and isinstance(v, str) and "." in v else kind(v)
    except (TypeError, ValueError):
        raise ValidationError("%s must be a number, got %r" % (field, v), field=field)
    if kind is int and isinstance(v, float) and v != int(v):
        raise ValidationError("%s must be a whole number, got %r" % (field, v), field=field)
    if x != x or x in (float("inf"), float("-inf")):
        raise ValidationError("%s must be a finite number, got %r" % (field, v), field=field)
    if minimum is not None and x < minimum:
        raise ValidationError("%s must be at least %s, got %s" % (field, minimum, x), field=field)
    if maximum is not None and x > maximum:
        raise ValidationError("%s must be at most %s, got %s" % (field, maximum, x), field=field)
    return x


def _list(raw, field, kind, minimum=None):
    """Parse a comma-separated string (or a list, or a scalar) into a list of numbers."""
    v = raw.get(field)
    if _blank(v):
        return None
    items = v if isinstance(v, (list, tuple)) else str(v).split(",") if isinstance(v, str) else [v]
    out = []
    for item in items:
        if _blank(item):
            continue
        out.append(_number({field: item.strip() if isinstance(item, str) else item}, field, kind, minimum))
    return out or None


def _bool(raw, field):
    v = raw.get(field)
    if _blank(v):
        v = DEFAULTS[field]
    if isinstance(v, (list, tuple)):  # a form's hidden "0" followed by its checked checkbox's "1"
        v = v[-1] if v else DEFAULTS[field]
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


def _choice(raw, field, choices, default=None):
    v = raw.get(field)
    v = default if _blank(v) else v
    if v is None:
        v = DEFAULTS[field]
    for c in choices:
        if str(v).lower() == c.lower():
            return c
    raise ValidationError("Unknown %s %r. Available: %s" % (field, v, ", ".join(choices)), field=field)


def _network(raw):
    """Canonical network choice: {"kind", "name" | "prototxt" | "job_id" (+ "snapshot")}."""
    net = raw.get("network")
    if isinstance(net, dict):
        src = dict(net)
    else:
        src = {"kind": raw.get("network_kind") or ("standard" if net else None), "name": net}
        src["prototxt"] = raw.get("custom_network")
        src["job_id"] = raw.get("previous_job") or raw.get("pretrained_job")
        src["snapshot"] = raw.get("previous_snapshot")
    kind = src.get("kind") or "standard"
    if kind not in NETWORK_KINDS:
        raise ValidationError("Unknown network kind %r. Available: %s" % (kind, ", ".join(NETWORK_KINDS)), field="network_kind")
    if kind == "standard":
        name = (src.get("name") or "").strip()
        if not name:
            raise ValidationError("Choose a standard network", field="network")
        try:
            from ..networks.standard import STANDARD_NETWORKS
        except ImportError:
            STANDARD_NETWORKS = None
        if STANDARD_NETWORKS is not None and name not in STANDARD_NETWORKS:
            raise ValidationError(
                "Unknown standard network %r. Available: %s" % (name, ", ".join(sorted(STANDARD_NETWORKS))),
                field="network",
            )
        return {"kind": kind, "name": name}
    if kind == "custom":
        text = src.get("prototxt") or ""
        if not text.strip():
            raise ValidationError("Paste a network description (Caffe prototxt) for a custom network", field="custom_network")
        return {"kind": kind, "prototxt": text}
    job_id = (src.get("job_id") or "").strip()
    if not job_id:
        field = "previous_job" if kind == "previous" else "pretrained_job"
        raise ValidationError("Choose a %s model to start from" % kind, field=field)
    out = {"kind": kind, "job_id": job_id}
    if kind == "previous":
        snap = src.get("snapshot")
        out["snapshot"] = "best" if _blank(snap) else str(snap).strip()
    return out


def default_model_name(network, dataset_name, store):
    """"<network> on <dataset>": the standard network's name, or the model training starts from."""
    kind = network["kind"]
    if kind == "standard":
        label = network["name"]
    elif kind == "custom":
        label = "custom network"
    else:
        from ..errors import NotFoundError

        try:
            start = store.get(network["job_id"]).name
        except NotFoundError:
            start = network["job_id"]
        label = ("%s, fine-tuned" if kind == "pretrained" else "%s, continued") % start
    return "%s on %s" % (label, dataset_name)


def _network_defaults(network):
    """The recommended solver of a standard network (batch size, crop, lr...), or {}."""
    if network["kind"] in ("pretrained", "previous"):
        # Preprocessing is part of a trained model: keep it (training/input_recipe.py).
        return {"mean_subtraction": "model"}
    if network["kind"] != "standard":
        return {}
    try:
        from ..networks.standard import STANDARD_NETWORKS
    except ImportError:
        return {}
    info = STANDARD_NETWORKS.get(network["name"])
    rec = dict(getattr(info, "solver", None) or {})
    for theirs, ours in (("power", "lr_power"), ("gamma", "lr_gamma")):
        if theirs in rec:
            rec[ours] = rec.pop(theirs)
    # The shipped networks scale raw 0-255 pixels in their first layer: subtracting a mean
    # as well would shift their inputs twice.
    rec.setdefault("mean_subtraction", "none")
    return rec


def validate_params(raw, settings=None, dataset_info=None):
    """Turn a submitted model form / JSON body into the canonical params dict.

    Args:
        dataset_info: the dataset's `DatasetInfo` (for variable-size checks and class
            counts); None skips dataset-dependent checks (e.g. for a schedule preview).
    """
    raw = dict(raw or {})
    p = {}
    dataset = raw.get("dataset_id") or raw.get("dataset")
    p["dataset_id"] = str(dataset).strip() if not _blank(dataset) else None
    p["network"] = _network(raw)
    # The jobs layer resolves these ids to folders (`previous_dir`, `pretrained_dir`).
    p["previous_id"] = p["network"]["job_id"] if p["network"]["kind"] == "previous" else None
    p["pretrained_id"] = p["network"]["job_id"] if p["network"]["kind"] == "pretrained" else None
    rec = _network_defaults(p["network"])
    size = ((getattr(dataset_info, "splits", None) or {}).get("train") or {}).get("size")
    if rec.get("crop_size") and size and rec["crop_size"] > min(size):
        # The network's advice assumes larger images: padding small images up to it would
        # only waste compute on ignored pixels, so train on whole images instead.
        rec["crop_size"] = None
    advised = set()  # fields filled from the network's advice, not by the user
    for key in ("batch_size", "crop_size", "base_lr", "lr_policy", "solver_type", "epochs", "momentum",
                "weight_decay", "lr_power", "lr_gamma", "mean_subtraction", "hflip", "class_weighting"):
        if _blank(raw.get(key)) and rec.get(key) is not None:
            raw[key] = rec[key]
            advised.add(key)

    p["epochs"] = _number(raw, "epochs", int, 1, 100000)
    p["snapshot_interval"] = _number(raw, "snapshot_interval", float, 0)
    p["val_interval"] = _number(raw, "val_interval", float, 0)
    batch = _list(raw, "batch_size", int, 1)
    p["iter_size"] = _number(raw, "iter_size", int, 1, 1024)
    p["solver_type"] = _choice(raw, "solver_type", SOLVER_TYPES)
    lrs = _list(raw, "base_lr", float, 0) or [DEFAULTS["base_lr"]]
    if any(lr <= 0 for lr in lrs):
        raise ValidationError("base_lr must be greater than 0 (if the loss becomes NaN, lower it)", field="base_lr")
    p["base_lr"] = lrs[0] if len(lrs) == 1 else lrs
    p["momentum"] = _number(raw, "momentum", float, 0, 0.99999)
    p["weight_decay"] = _number(raw, "weight_decay", float, 0)
    p["lr_policy"] = _choice(raw, "lr_policy", POLICIES)
    p["lr_step_size"] = _number(raw, "lr_step_size", float, 0.01, 100)
    p["lr_gamma"] = _number(raw, "lr_gamma", float)
    p["lr_power"] = _number(raw, "lr_power", float)
    p["lr_stepvalues"] = _list(raw, "lr_stepvalues", float, 0) or list(DEFAULTS["lr_stepvalues"])
    if any(v > 100 for v in p["lr_stepvalues"]):
        raise ValidationError("lr_stepvalues are percentages of training: each must be 0-100", field="lr_stepvalues")
    p["seed"] = _number(raw, "seed", int, 0, 2**31 - 1, allow_none=True)
    p["early_stop_patience"] = _number(raw, "early_stop_patience", int, 0)

    p["mean_subtraction"] = _choice(raw, "mean_subtraction", MEAN_MODES)
    if p["mean_subtraction"] == "model" and p["network"]["kind"] not in ("pretrained", "previous"):
        raise ValidationError("mean_subtraction 'model' keeps the preprocessing of a pretrained or previous model; "
                              "for a %s network choose none, pixel or image" % p["network"]["kind"],
                              field="mean_subtraction")
    p["freeze_bn"] = _choice(raw, "freeze_bn", ("auto", "on", "off"), default="auto")
    crop = _number(raw, "crop_size", int, 1, 16384, allow_none=True)
    p["crop_size"] = crop
    p["hflip"] = _bool(raw, "hflip")
    p["random_scale"] = _scale_range(raw.get("random_scale"))
    p["class_weighting"] = _choice(raw, "class_weighting", CLASS_WEIGHTINGS)
    p["dice_weight"] = _number(raw, "dice_weight", float, 0, 100)

    p["device"], p["num_gpus"] = _device_and_gpus(raw)
    p["amp"] = _bool(raw, "amp")
    p["loader_workers"] = _number(raw, "loader_workers", int, 0, 64)
    p["log_interval"] = _number(raw, "log_interval", int, 1)
    p["val_previews"] = _number(raw, "val_previews", int, 0, 32)

    variable = bool(getattr(dataset_info, "variable_size", False))
    if batch is None:
        batch = [1]
    if variable and crop is None and any(b > 1 for b in batch):
        raise ValidationError(
            "This dataset has images of different sizes: use batch size 1 or set a random crop size "
            "so every image in a batch has the same size",
            field="batch_size",
        )
    p["batch_size"] = batch[0] if len(batch) == 1 else batch
    if dataset_info is not None:
        splits = getattr(dataset_info, "splits", {}) or {}
        if not (splits.get("train") or {}).get("count"):
            raise ValidationError("The dataset has no training images", field="dataset")
        if p["class_weighting"] != "none" and not hasattr(dataset_info, "class_pixel_counts"):
            if "class_weighting" not in advised:
                raise ValidationError("The dataset has no class statistics for class weighting",
                                      field="class_weighting")
            p["class_weighting"] = "none"  # the network's advice needs statistics this dataset lacks
    return p


def _scale_range(v):
    """Random scale as [min, max] factors; '' / None / '1' mean off; '0.5-2' or '0.5,2' or [0.5, 2]."""
    if _blank(v) or v is False:
        return None
    if isinstance(v, str):
        parts = [x for x in v.replace("-", ",").split(",") if x.strip()]
    elif isinstance(v, (list, tuple)):
        parts = list(v)
    else:
        parts = [v]
    try:
        vals = [float(x) for x in parts]
    except (TypeError, ValueError):
        raise ValidationError("random_scale must be 'min-max', e.g. 0.5-2.0, got %r" % (v,), field="random_scale")
    if len(vals) == 1:
        vals = [min(vals[0], 1.0 / vals[0]) if vals[0] > 0 else 0, max(vals[0], 1.0 / vals[0]) if vals[0] > 0 else 0]
    if len(vals) != 2 or not (0 < vals[0] <= vals[1] <= 8):
        raise ValidationError("random_scale must be two factors 0 < min <= max <= 8, e.g. 0.5-2.0", field="random_scale")
    if vals == [1.0, 1.0]:
        return None
    return vals


def _device(v):
    """The jobs layer's device names.

    'auto' (a GPU if a worker has one, else CPU), 'cpu', 'gpu' (any GPU), 'gpu:K[@host]'
    (one GPU), 'gpus:N[@host]' (N GPUs of one machine, N processes with DistributedDataParallel
    over NCCL) and 'cpus:N' (N CPU processes with DistributedDataParallel over gloo: the same
    code path as 'gpus:N', for machines without GPUs and for testing it without one).
    """
    if _blank(v):
        return "auto"
    s = str(v).strip().lower()
    if s in ("auto", "any"):
        return "auto"
    if s == "cpu":
        return "cpu"
    if s in ("cuda", "gpu", "any gpu"):
        return "gpu"
    host = str(v).strip().partition("@")[2]
    for prefix, canonical in (("cuda:", "gpu"), ("gpu:", "gpu"), ("gpus:", "gpus"), ("cpus:", "cpus")):
        if s.startswith(prefix):
            number, _, has_host = s[len(prefix):].partition("@")
            if not number.isdigit():
                break
            if canonical != "gpu" and not 1 <= int(number) <= 64:
                raise ValidationError("%s needs a process count from 1 to 64, got %r" % (prefix[:-1], v),
                                      field="device")
            if canonical == "cpus" and has_host:
                raise ValidationError("cpus:N runs on any CPU worker; it takes no @host (got %r)" % (v,),
                                      field="device")
            return "%s:%d" % (canonical, int(number)) + ("@" + host if has_host else "")
    raise ValidationError("Unknown device %r. Use auto, cpu, gpu, gpu:K[@host], gpus:N[@host] (N GPUs of one "
                          "machine) or cpus:N" % (v,), field="device")


def _device_and_gpus(raw):
    """(device, num_gpus): the form's 'GPUs' count folds into the device ('gpu' + 3 GPUs → 'gpus:3')."""
    device = _device(raw.get("device"))
    count = _number(raw, "num_gpus", int, 1, 64)
    kind, _, rest = device.partition(":")
    if kind == "gpus":
        n = int(rest.partition("@")[0])
        if not _blank(raw.get("num_gpus")) and count not in (1, n):
            raise ValidationError("device %s asks for %d GPUs but num_gpus is %d: give one of them" % (
                device, n, count), field="num_gpus")
        return device, n
    if count > 1:
        if device == "cpu" or kind == "cpus":
            raise ValidationError("num_gpus > 1 needs a GPU device, not %s (use cpus:N for several CPU "
                                  "processes)" % device, field="num_gpus")
        host = rest.partition("@")[2] if kind == "gpu" else ""
        return "gpus:%d" % count + ("@" + host if host else ""), count
    return device, 1


def expand_sweep(params):
    """One params dict per combination of the swept `base_lr` and `batch_size` values (DIGITS' sweeps)."""
    lrs = params["base_lr"] if isinstance(params.get("base_lr"), list) else [params.get("base_lr")]
    batches = params["batch_size"] if isinstance(params.get("batch_size"), list) else [params.get("batch_size")]
    out = []
    for lr, bs in itertools.product(lrs, batches):
        q = dict(params)
        q["base_lr"] = lr
        q["batch_size"] = bs
        out.append(q)
    return out
