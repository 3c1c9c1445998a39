"""The model form, declared once (`ModelSource` + `TrainingParams`), and its validation into job.json's params.

The canonical dict is what `trainer.train` reads and what job.json stores, so a job can be
cloned (`?clone=<id>`) from it; its keys and values are those of the hand-written
validation this replaced, so old jobs load and clone unchanged. `base_lr` and `batch_size`
may hold several comma-separated values (a sweep, as DIGITS allowed); `expand_sweep` turns
such a dict into one dict per combination and the jobs layer creates one job per dict.

The form's labels, hints and limits, the `train` CLI options and the README's table are
all read from these declarations (see `digits_seg.declare`).
"""

import itertools
from typing import Optional

from pydantic import BaseModel

from ..declare import (Flag, Float, Int, Name, blank, check, choice, clean_name, field_error, numbers, param,
                       raise_errors)
from .lr_policy import POLICIES
from .param_types import MAX_PROCESSES, Device, Scale
from .solver import SOLVER_TYPES

NETWORK_KINDS = ("standard", "custom", "previous", "pretrained")
"""Where the network description comes from."""

MEAN_MODES = ("none", "pixel", "image", "model")
"""Mean subtraction: nothing, the dataset's per-channel mean, its mean image, or (the default when
fine-tuning) the preprocessing of the model the job starts from (training/input_recipe.py)."""

FREEZE_BN = ("auto", "on", "off")
"""Whether BatchNorm keeps the start weights' running statistics in training (auto: below batch 8 from trained weights)."""

CLASS_WEIGHTINGS = ("none", "inverse", "median")
"""Class weights for the loss: none, inverse frequency, median frequency balancing."""

MAX_BATCH_SIZE = 1024
"""Largest batch: 1024 images of 32×32 already fill a large GPU; more is a typo (10^9) that would fail late."""

MAX_CROP_SIZE = 4096
"""Largest random crop: the widest public segmentation images (Mapillary Vistas) are about 4000 px wide;
a larger square crop only pads with ignored pixels (16384² × batch would need gigabytes per image)."""

NETWORK_DEFAULT = "the standard network's recommendation, else %s"


class ModelSource(BaseModel):
    """The model form's choice of dataset, name and network (folded into `params["network"]`)."""

    dataset_id: Optional[str] = param(None, "Dataset", "A finished segmentation dataset, or one still being created: "
                                      "the model then waits for it.", cli="--dataset")
    name: Optional[Name] = param(None, "Model name", "Shown on the home page and in the model store if you publish it. "
                                 "Blank: the network and dataset names.", placeholder="network on dataset")
    network_kind: choice(*NETWORK_KINDS) = param(
        "standard", "Network", "Standard: a shipped network sized for the dataset's classes. Custom: your Caffe "
        "prototxt. Previous: continue from a model you trained. Pretrained: an imported model (layers whose class "
        "count differs are re-initialised).", cli=False)
    network: Optional[str] = param(None, "Standard network", "A shipped network (fcn-alexnet, fcn-8s, unet, "
                                   "tiny-fcn...); its recommended solver fills the blank fields.", cli="--network",
                                   default_text="fcn-alexnet")
    custom_network: Optional[str] = param(
        None, "Network description (Caffe prototxt)", "Inputs are blobs `data` (N×C×H×W, raw 0-255 pixels minus the "
        "chosen mean) and `label`; end with SoftmaxWithLoss (ignore_label 255). Data layers are replaced.",
        cli="--custom")
    previous_job: Optional[str] = param(None, "Previous model", "Continue from a model you trained (its network and "
                                        "weights); it must have a snapshot.", cli="--previous")
    previous_snapshot: Optional[str] = param("best", "Snapshot", "best (highest validation mIoU), last, or an "
                                             "iteration number.", cli="--snapshot")
    pretrained_job: Optional[str] = param(None, "Pretrained model", "Imported from the model store or uploaded on the "
                                          "store page.", cli="--pretrained")


class TrainingParams(BaseModel):
    """The solver, data and device fields of a model job (canonical names and defaults; DIGITS' where it had one)."""

    epochs: Int = param(30, "Epochs", "Passes over the training set. Validation loss rising while training loss "
                        "falls: fewer epochs or early stopping.", ge=1, le=100000, default_text=NETWORK_DEFAULT % 30,
                        placeholder="network default")
    snapshot_interval: Float = param(1.0, "Snapshot every (epochs)", "How often weights + solver state are saved; "
                                     "resume starts from the last one.", ge=0)
    val_interval: Float = param(1.0, "Validate every (epochs)", "How often the validation set is scored (loss, "
                                "accuracy, mIoU, previews). Fractions allowed.", ge=0)
    batch_size: Optional[numbers(int, ge=1, le=MAX_BATCH_SIZE)] = param(
        None, "Batch size", "Images per batch; out of memory: lower it (or use Batch accumulation). 1 for "
        "variable-size datasets without a crop. Comma-separated values make one job per value (a sweep).",
        default_text=NETWORK_DEFAULT % 1, placeholder="network default")
    iter_size: Int = param(1, "Batch accumulation", "Batches whose gradients are summed before one solver step "
                           "(Caffe iter_size): a bigger effective batch without more memory.", ge=1, le=1024)
    solver_type: choice(*SOLVER_TYPES) = param("SGD", "Solver", "SGD with momentum is Caffe's default; Adam/AdamW "
                                               "need a lower learning rate (about 1e-3). CLI: a Caffe "
                                               "solver.prototxt instead fills the solver options not given.",
                                               cli="--solver",
                                               default_text=NETWORK_DEFAULT % "SGD")
    base_lr: numbers(float, gt=0) = param(0.01, "Base learning rate", "If the loss becomes NaN, lower this (e.g. by "
                                          "10x); if it barely moves, raise it. Comma-separated values make a sweep.",
                                          cli="--lr", default_text=NETWORK_DEFAULT % 0.01,
                                          placeholder="network default (0.01 if none)")
    momentum: Float = param(0.9, "Momentum", "SGD/Nesterov momentum; beta1 for Adam; rho for AdaDelta.",
                            ge=0, le=0.99999)
    weight_decay: Float = param(0.0005, "Weight decay", "L2 penalty, scaled per parameter by decay_mult. "
                                "Overfitting (val loss rises): raise it.", ge=0)
    lr_policy: choice(*POLICIES) = param("step", "LR policy", "How the learning rate changes during training. Step "
                                         "sizes are in % of training, as in DIGITS.",
                                         default_text=NETWORK_DEFAULT % "step")
    lr_step_size: Float = param(33.0, "Step size (%)", "step/sigmoid: % of training between drops (or the sigmoid "
                                "centre).", ge=0.01, le=100)
    lr_stepvalues: numbers(float, ge=0, le=100) = param([50.0, 85.0], "Step values (%)", "multistep: "
                                                        "comma-separated % of training where the rate drops.")
    lr_gamma: Float = param(0.1, "Gamma", "step/multistep: multiplier per drop; exp: per-iteration factor; "
                            "inv/sigmoid: rate.")
    lr_power: Float = param(1.0, "Power", "inv and poly: the exponent.")
    seed: Optional[Int] = param(None, "Random seed", "Blank: random. Fixes initialisation, shuffling and "
                                "augmentation, to compare runs fairly.", ge=0, le=2**31 - 1,
                                default_text="random")
    early_stop_patience: Int = param(0, "Early stopping patience", "Stop after this many validations without a "
                                     "better mean IoU; 0 = off.", ge=0, cli="--early-stop")
    mean_subtraction: choice(*MEAN_MODES) = param(
        "pixel", "Mean subtraction", "The shipped networks scale raw pixels themselves (none). For custom Caffe nets: "
        "pixel (per-channel mean) or image (mean image). Previous/pretrained: the model's own preprocessing (model); "
        "another choice shifts the inputs its first layers learned.", cli="--mean",
        default_text="none for standard networks, model for previous/pretrained, else pixel")
    freeze_bn: choice(*FREEZE_BN) = param(
        "auto", "Freeze BatchNorm statistics", "Caffe's use_global_stats in training: BatchNorm keeps the start "
        "weights' running statistics instead of learning from tiny batches (statistics of 1-7 images are too noisy). "
        "auto: on below batch 8 when starting from trained weights.")
    crop_size: Optional[Int] = param(None, "Random crop (px)", "Crop image AND label together to this square size "
                                     "(padding labels with 255 when smaller). Needed for batches of different-size "
                                     "images; out of memory: lower it.", ge=1, le=MAX_CROP_SIZE, cli="--crop",
                                     default_text="the standard network's recommendation, else none")
    hflip: Flag = param(False, "Random horizontal flip", "Mirror half the images (and labels) left-right: more data "
                        "for free unless left and right differ in your classes.")
    random_scale: Scale = param(None, "Random scale", "Resize by a random factor in this range, e.g. 0.5-2.0 "
                                "(labels: nearest neighbour).", cli="--scale", placeholder="off",
                                allowed="min-max factors, 0 < min ≤ max ≤ 8")
    class_weighting: choice(*CLASS_WEIGHTINGS) = param(
        "none", "Class weighting", "Weights the loss from the dataset's class pixel counts so rare classes count "
        "more; try median when small classes get IoU 0.")
    dice_weight: Float = param(0.0, "Dice loss weight", "Adds this times (1 - soft Dice) to the cross-entropy; "
                               "0 = off.", ge=0, le=100, cli="--dice")
    device: Device = param("auto", "Device", "auto (a GPU if a worker has one), cpu, gpu (any GPU), gpu:K[@host], "
                           "gpus:N[@host] (N GPUs of one machine, DistributedDataParallel) or cpus:N.",
                           allowed="auto, cpu, gpu, gpu:K[@host], gpus:N[@host], cpus:N")
    num_gpus: Int = param(1, "GPUs", "Above 1: that many GPUs of one machine (DistributedDataParallel), served by a "
                          "worker started with --gpu all. The batch size is per GPU.", ge=1, le=MAX_PROCESSES)
    amp: Flag = param(True, "bf16 mixed precision on GPU", "Autocast to bfloat16 on CUDA: faster, less memory. "
                      "Loss NaN or unstable only on GPU: turn it off.")
    loader_workers: Int = param(2, "Data loader processes", "Processes decoding and augmenting batches; GPU "
                                "waiting for data (low GPU use): raise it.", ge=0, le=64, cli="--workers")
    log_interval: Int = param(10, "Log every (iterations)", "How often the training loss is recorded and plotted.",
                              ge=1)
    val_previews: Int = param(4, "Validation previews", "Validation images whose predicted masks are saved at each "
                              "validation (shown on the model page).", ge=0, le=32)


DEFAULTS = {name: field.default for name, field in TrainingParams.model_fields.items()}
"""Canonical params and their defaults."""


def _standard_networks():
    try:
        from ..networks.standard import STANDARD_NETWORKS
    except ImportError:
        return None
    return STANDARD_NETWORKS


def _network(raw, errors):
    """Canonical network choice: {"kind", "name" | "prototxt" | "job_id" (+ "snapshot")}; problems go to `errors`."""
    net = raw.get("network")
    if isinstance(net, dict):
        src = dict(net)
    else:
        src = {"kind": raw.get("network_kind") or ("standard" if net else None), "name": net,
               "prototxt": raw.get("custom_network"), "job_id": raw.get("previous_job") or raw.get("pretrained_job"),
               "snapshot": raw.get("previous_snapshot")}
    kind = src.get("kind") or "standard"
    if kind not in NETWORK_KINDS:
        errors.append(field_error(ModelSource, "network_kind", "must be one of %s, got %r"
                                  % (", ".join(NETWORK_KINDS), kind)))
        return {"kind": "custom", "prototxt": ""}
    if kind == "standard":
        name = src.get("name") if isinstance(src.get("name"), str) else ""
        name = name.strip()
        known = _standard_networks()
        if not name:
            errors.append(field_error(ModelSource, "network", "is not chosen: choose a standard network"))
        elif known is not None and name not in known:
            errors.append(field_error(ModelSource, "network", "%r is not shipped. Available: %s"
                                      % (name, ", ".join(sorted(known)))))
        return {"kind": kind, "name": name}
    if kind == "custom":
        text = src.get("prototxt") if isinstance(src.get("prototxt"), str) else ""
        if not text.strip():
            errors.append(field_error(ModelSource, "custom_network", "is empty: paste a network description (Caffe "
                                      "prototxt) for a custom network"))
        return {"kind": kind, "prototxt": text}
    field = "previous_job" if kind == "previous" else "pretrained_job"
    job_id = src.get("job_id") if isinstance(src.get("job_id"), str) else ""
    job_id = job_id.strip()
    if not job_id:
        errors.append(field_error(ModelSource, field, "is not chosen: choose a %s model to start from" % kind))
    out = {"kind": kind, "job_id": job_id}
    if kind == "previous":
        snap = src.get("snapshot")
        out["snapshot"] = "best" if blank(snap) else str(snap).strip()
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
    known = _standard_networks()
    if network["kind"] != "standard" or known is None or network["name"] not in known:
        return {}
    rec = dict(getattr(known[network["name"]], "solver", None) or {})
    for theirs, ours in (("power", "lr_power"), ("gamma", "lr_gamma")):
        if theirs in rec:
            rec[ours] = rec.pop(theirs)
    # The shipped networks scale raw 0-255 pixels in their first layer: subtracting a mean
    # as well would shift their inputs twice.
    rec.setdefault("mean_subtraction", "none")
    return rec


def check_name(name):
    """A model job name from a client, trimmed and checked before anything is written ("" when blank)."""
    return clean_name(ModelSource, name)


def validate_params(raw, settings=None, dataset_info=None):
    """Turn a submitted model form / JSON body into the canonical params dict; every problem at once.

    Args:
        settings: for `max_sweep_jobs` (None: its default).
        dataset_info: the dataset's `DatasetInfo` (for variable-size checks and class
            counts); None skips dataset-dependent checks (e.g. for a schedule preview).
    Raises:
        ValidationError whose `.errors` lists every field problem.
    """
    raw = dict(raw or {})
    errors = []
    source, source_errors = check(ModelSource, {k: v for k, v in raw.items() if k in ("dataset_id", "name")})
    errors += source_errors
    dataset = raw.get("dataset_id") or raw.get("dataset")
    p = {"dataset_id": str(dataset).strip() if not blank(dataset) else None, "network": _network(raw, errors)}
    # The jobs layer resolves these ids to folders (`previous_dir`, `pretrained_dir`).
    p["previous_id"] = p["network"]["job_id"] if p["network"]["kind"] == "previous" else None
    p["pretrained_id"] = p["network"]["job_id"] if p["network"]["kind"] == "pretrained" else None
    rec = _network_defaults(p["network"])
    size = ((getattr(dataset_info, "splits", None) or {}).get("train") or {}).get("size")
    if rec.get("crop_size") and size and rec["crop_size"] > min(size):
        # The network's advice assumes larger images: padding small images up to it would
        # only waste compute on ignored pixels, so train on whole images instead.
        rec["crop_size"] = None
    for key, value in rec.items():
        if key in DEFAULTS and blank(raw.get(key)) and value is not None:
            raw[key] = value

    values, field_errors = check(TrainingParams, raw)
    errors += field_errors
    bad = {e["field"] for e in errors}
    p.update(values)
    lrs = values["base_lr"] if isinstance(values["base_lr"], list) else [values["base_lr"]]
    batches = values["batch_size"] or [1]
    p["base_lr"] = lrs[0] if len(lrs) == 1 else lrs
    p["batch_size"] = batches[0] if len(batches) == 1 else batches
    p["device"], p["num_gpus"] = _device_and_gpus(values, raw, errors, bad)
    errors += _cross_checks(p, values, dataset_info, settings, bad)
    raise_errors(errors)
    return p


def _device_and_gpus(values, raw, errors, bad):
    """(device, num_gpus): the form's 'GPUs' count folds into the device ('gpu' + 3 GPUs → 'gpus:3')."""
    device, count = values["device"], values["num_gpus"]
    if {"device", "num_gpus"} & bad:
        return device, 1
    kind, _, rest = device.partition(":")
    if kind == "gpus":
        n = int(rest.partition("@")[0])
        if not blank(raw.get("num_gpus")) and count not in (1, n):
            errors.append(field_error(TrainingParams, "num_gpus", "is %d but device %s asks for %d GPUs: give one of "
                                      "them" % (count, device, n)))
        return device, n
    if count > 1:
        if device == "cpu" or kind == "cpus":
            errors.append(field_error(TrainingParams, "num_gpus", "above 1 needs a GPU device, not %s (use cpus:N "
                                      "for several CPU processes)" % device))
            return device, 1
        host = rest.partition("@")[2] if kind == "gpu" else ""
        return "gpus:%d" % count + ("@" + host if host else ""), count
    return device, 1


def _cross_checks(p, values, dataset_info, settings, bad):
    """Problems that involve several fields, the dataset, or the server's limits."""
    errors = []
    lrs = p["base_lr"] if isinstance(p["base_lr"], list) else [p["base_lr"]]
    batches = p["batch_size"] if isinstance(p["batch_size"], list) else [p["batch_size"]]
    limit = getattr(settings, "max_sweep_jobs", None) or _default_sweep_limit()
    if len(lrs) * len(batches) > limit and not {"base_lr", "batch_size"} & bad:
        errors.append(field_error(TrainingParams, "base_lr", "values make a sweep of %d jobs (%d learning rates × %d "
                                  "batch sizes); at most %d per submission (setting DIGITS_SEG_MAX_SWEEP_JOBS): "
                                  "sweep fewer values" % (len(lrs) * len(batches), len(lrs), len(batches), limit)))
    if p["mean_subtraction"] == "model" and p["network"]["kind"] not in ("pretrained", "previous") \
            and "mean_subtraction" not in bad:
        errors.append(field_error(TrainingParams, "mean_subtraction", "'model' keeps the preprocessing of a pretrained "
                                  "or previous model; for a %s network choose none, pixel or image"
                                  % p["network"]["kind"]))
    variable = bool(getattr(dataset_info, "variable_size", False))
    if variable and p["crop_size"] is None and any(b > 1 for b in batches) and "batch_size" not in bad:
        errors.append(field_error(TrainingParams, "batch_size", "must be 1 for this dataset, whose images have "
                                  "different sizes, unless you set a random crop size (every image in a batch needs "
                                  "the same size)"))
    if dataset_info is not None:
        splits = getattr(dataset_info, "splits", {}) or {}
        if not (splits.get("train") or {}).get("count"):
            errors.append(field_error(ModelSource, "dataset_id", "has no training images"))
        if p["class_weighting"] != "none" and not hasattr(dataset_info, "class_pixel_counts"):
            errors.append(field_error(TrainingParams, "class_weighting", "needs class statistics, which the dataset "
                                      "lacks: use none"))
    return errors


def _default_sweep_limit():
    from ..config import SETTINGS_BY_NAME

    return int(SETTINGS_BY_NAME["max_sweep_jobs"].default)


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
