"""The model-job task: train a compiled Caffe network on a dataset's LMDB, with snapshots and resume.

    train(job_dir, params, on_progress, should_stop, log, dataset_dir, resume, ...)
      ├─ setup: resolve + write network.prototxt, solver.prototxt, preprocess.json,
      │         labels.txt/colormap.json; pick device; seed; compile; init weights
      ├─ resume: last snapshot → weights, optimizer, RNG, iteration; metrics.jsonl cut back
      └─ per epoch: iterations (iter_size accumulation, bf16 autocast on CUDA)
            ├─ every log_interval: train point (loss, lr, images/s) → metrics.jsonl
            ├─ every val interval: validation point + previews, best.h5 by mIoU
            └─ every snapshot interval (epoch ends): snapshot_iter_<N>.h5

torch is imported inside `train` so that importing this module never initialises CUDA
(the RQ worker's parent process forks work horses).

Devices `gpus:N` / `cpus:N` run this same function in N spawned processes wrapped in
DistributedDataParallel (see distributed.py); `ddp` is then the process's `Rank`, and only
rank 0 writes files, logs and progress.
"""

import contextlib
import math
import os
import random
import time

import numpy as np

from ..errors import JobAborted, ValidationError
from ..fsutil import write_bytes_atomic, write_json_atomic
from . import snapshots as snaps
from .augment import IGNORE_LABEL, JointTransform, to_input
from .input_recipe import freeze_batchnorm, input_tensors, resolve_recipe, should_freeze_bn
from .loader import class_weights, make_loader, open_split
from .loss import segmentation_loss
from .lr_policy import lr_at, resolve_policy
from .metrics_log import append_metrics, metrics_path, truncate_metrics
from .network_source import resolve_network
from .solver import build_optimizer, set_lr, solver_prototxt
from .validation import run_validation, write_previews


def pick_device(params):
    """torch.device for `params["device"]`; a GPU choice without CUDA is an error, 'auto' falls back to CPU."""
    import torch

    choice = params.get("device", "auto")
    if choice == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        # Workers are pinned with CUDA_VISIBLE_DEVICES, so the chosen GPU is device 0 here.
        return torch.device("cuda", 0)
    if choice == "auto":
        return torch.device("cpu")
    raise ValidationError("This job asks for a GPU (%s) but this worker has no CUDA GPU; choose CPU or any" % choice,
                          field="device")


def _seed_everything(seed):
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _copy_dataset_files(dataset_dir, job_dir):
    for name in ("labels.txt", "colormap.json"):
        src = os.path.join(dataset_dir, name)
        if os.path.exists(src):
            with open(src, "rb") as f:
                write_bytes_atomic(os.path.join(job_dir, name), f.read())


class _Setup:
    """Everything `train` builds before the loop, kept together so the loop reads linearly."""


def _prepare(job_dir, params, log, dataset_dir, pretrained_dir, previous_dir, ddp):
    import torch

    main = ddp is None or ddp.main  # only rank 0 writes the job's files

    from ..datasets.info import DatasetInfo
    from ..networks.compiler import compile_net

    s = _Setup()
    s.info = info = DatasetInfo.load(dataset_dir)
    s.num_classes = info.num_classes
    text, s.init_weights = resolve_network(params, s.num_classes, log, pretrained_dir, previous_dir)
    if main:
        write_bytes_atomic(os.path.join(job_dir, "network.prototxt"), text.encode("utf-8"))
        _copy_dataset_files(dataset_dir, job_dir)
    s.device = ddp.device() if ddp is not None else pick_device(params)
    s.cuda = s.device.type == "cuda"
    seed = params.get("seed")
    s.seed = int(seed) if seed is not None else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    _seed_everything(s.seed)
    if s.cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # Layers are sized from the input shape: a greyscale dataset gets a 1-channel conv1.
    size = (info.splits.get("train") or {}).get("size") or [224, 224]
    crop = params.get("crop_size")
    in_h, in_w = (int(crop), int(crop)) if crop else (int(size[1]), int(size[0]))
    s.net = compile_net(text, phase="train", include_loss=False, input_shape=(int(info.channels or 3), in_h, in_w))
    ignore = (s.net.loss_spec or {}).get("ignore_label")
    s.ignore_label = IGNORE_LABEL if ignore is None else int(ignore)
    if s.ignore_label != IGNORE_LABEL and s.ignore_label >= s.num_classes:
        # e.g. SegNet's ignore_label 11 = CamVid's void class, which our datasets store as 255.
        log("The network ignores label %d (outside the dataset's %d classes); the dataset marks unlabelled "
            "pixels %d, so those are ignored" % (s.ignore_label, s.num_classes, IGNORE_LABEL))
        s.ignore_label = IGNORE_LABEL
    if (s.net.loss_spec or {}).get("normalization") in ("BATCH_SIZE", "NONE") and main:  # FCN's normalize: false
        log("The network's loss normalization %s is not used: the loss is averaged over labelled pixels, at base_lr %g "
            "(a Caffe rate for its sum is rescaled only when mapped from its solver file)"
            % (s.net.loss_spec["normalization"], float(params["base_lr"])))

    train_db, val_db = open_split(dataset_dir, "train"), None
    if (info.splits.get("val") or {}).get("count"):
        val_db = open_split(dataset_dir, "val")
    bs = int(params.get("batch_size") or 1)
    crop = params.get("crop_size")
    if info.variable_size and not crop and bs > 1:
        raise ValidationError("Images differ in size: use batch size 1 or a crop size", field="batch_size")
    workers = int(params.get("loader_workers", 2))
    shard = {"rank": ddp.rank, "world_size": ddp.world_size} if ddp is not None else {}
    transform = JointTransform(crop, bool(params.get("hflip")), params.get("random_scale"), s.ignore_label)
    s.train_loader, s.train_sampler = make_loader(train_db, batch_size=bs, shuffle=True, transform=transform,
                                                  seed=s.seed, workers=workers, pin_memory=s.cuda, **shard)
    s.val_loader = None
    if val_db is not None:
        val_bs = 1 if info.variable_size else bs
        s.val_loader, _ = make_loader(val_db, batch_size=val_bs, shuffle=False, transform=None, seed=s.seed,
                                      workers=min(workers, 1), pin_memory=s.cuda, pad=False, **shard)
    if workers > 0:
        # Loader workers are forked and open their own LMDB handles; py-lmdb refuses to open
        # an environment that the parent still holds open ("already open in this process"),
        # so the parent lets go of its handles (it only needed them to count records).
        from ..datasets.lmdb_io import forget_readers

        forget_readers(dataset_dir)
    s.batch_size = bs
    s.iter_size = int(params.get("iter_size", 1))
    s.batches_per_epoch = math.ceil(len(s.train_sampler) / bs)
    s.iters_per_epoch = math.ceil(s.batches_per_epoch / s.iter_size)
    s.total_iters = s.iters_per_epoch * int(params["epochs"])
    s.schedule = resolve_policy(params, s.total_iters)
    kind = (params.get("network") or {}).get("kind")
    source_dir = pretrained_dir if kind == "pretrained" else previous_dir if kind == "previous" else None
    s.recipe = resolve_recipe(params, info, [crop, crop] if crop else info.splits["train"].get("size"), source_dir,
                              log if main else (lambda _t: None))
    if main:
        write_bytes_atomic(os.path.join(job_dir, "solver.prototxt"),
                           solver_prototxt(params, s.total_iters, s.iters_per_epoch).encode("utf-8"))
        # The dataset's resize: inference scales new images the same way (inference/geometry.py).
        s.recipe = dict(s.recipe, resize=getattr(info, "resize", None), resize_mode=getattr(info, "resize_mode", None))
        write_json_atomic(os.path.join(job_dir, "preprocess.json"), s.recipe)
    s.mean, s.bgr, s.scale = input_tensors(s.recipe, info, s.device)
    weights = None
    net_weights = (s.net.loss_spec or {}).get("class_weights")
    if net_weights and params.get("class_weighting", "none") == "none":
        if len(net_weights) != s.num_classes:
            raise ValidationError("The network's loss layer has %d class_weighting values but the dataset has %d "
                                  "classes; give one per class" % (len(net_weights), s.num_classes), field="network")
        log("Class weights from the network's loss layer (class_weighting): %s"
            % ", ".join("%.4g" % w for w in net_weights))
        weights = torch.tensor(net_weights, dtype=torch.float32, device=s.device)
    elif params.get("class_weighting", "none") != "none":
        weights = class_weights(params["class_weighting"], info.class_pixel_counts("train")[: s.num_classes])
        log("Class weights (%s frequency): %s" % (params["class_weighting"], ", ".join("%.3g" % w for w in weights)))
        weights = torch.from_numpy(weights).to(s.device)
    s.class_weights = weights
    s.amp = bool(params.get("amp", True)) and s.cuda
    s.channels_last = s.cuda
    s.net.to(s.device)
    if s.channels_last:
        s.net.to(memory_format=torch.channels_last)
    s.optimizer = build_optimizer(s.net.param_groups(float(params["base_lr"]), float(params.get("weight_decay", 0))),
                                  params)
    return s


def _loss_fn(s, params):
    dice = float(params.get("dice_weight") or 0.0)

    def fn(scores, target):
        return segmentation_loss(scores, target, ignore_label=s.ignore_label, weight=s.class_weights, dice_weight=dice)

    return fn


def _autocast(s):
    import torch

    if s.amp:
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


def _check_scores(scores, labels):
    if scores.shape[-2:] != labels.shape[-2:]:
        raise ValidationError(
            "The network's score blob is %s×%s but the label is %s×%s: add a Crop layer (as FCN does) or use an "
            "input size the network maps to itself" % (scores.shape[-1], scores.shape[-2], labels.shape[-1],
                                                         labels.shape[-2]), field="network")


def train(job_dir, params, *, on_progress, should_stop, log, dataset_dir, resume=False, pretrained_dir=None,
          previous_dir=None, ddp=None, **_extra):
    """Train the job's network; return a summary {iterations, epochs, best_val_mean_iou, last_snapshot}."""
    import torch

    if not dataset_dir or not os.path.isdir(dataset_dir):
        raise ValidationError("The dataset of this model (%s) no longer exists" % dataset_dir, field="dataset")
    from . import distributed

    multi = distributed.parse_device(params.get("device"))
    if ddp is None and multi is not None:
        return distributed.launch(job_dir, params, on_progress=on_progress, should_stop=should_stop, log=log,
                                  backend=multi[0], world_size=multi[1], dataset_dir=dataset_dir, resume=resume,
                                  pretrained_dir=pretrained_dir, previous_dir=previous_dir)
    main = ddp is None or ddp.main
    s = _prepare(job_dir, params, log, dataset_dir, pretrained_dir, previous_dir, ddp)
    log("Network compiled: %d classes, %d parameters, device %s%s" % (
        s.num_classes, sum(p.numel() for p in s.net.parameters()), s.device, ", bf16 autocast" if s.amp else ""))
    log("%d iterations (%d per epoch, batch %d x iter_size %d)" % (s.total_iters, s.iters_per_epoch, s.batch_size,
                                                                 s.iter_size))
    start_epoch, iteration, best = 0, 0, None
    from ..networks.weights import load_weights

    if resume and snaps.list_snapshots(job_dir):
        path = snaps.list_snapshots(job_dir)[-1]["path"]
        load_weights(s.net, path)
        attrs = snaps.load_solver_state(path, s.optimizer)
        iteration, start_epoch = int(attrs["iteration"]), int(attrs["epoch"])
        best = attrs.get("best_miou")
        best = None if best is None or (isinstance(best, float) and math.isnan(best)) else float(best)
        kept = truncate_metrics(job_dir, iteration) if main else 0
        log("Resumed from %s (iteration %d, epoch %d; %d metric points kept)" % (
            os.path.basename(path), iteration, start_epoch, kept))
    else:
        if resume:
            log("Resume requested but no snapshot exists yet: starting from the beginning")
        if main and os.path.exists(metrics_path(job_dir)):
            os.unlink(metrics_path(job_dir))
        for p in snaps.list_snapshots(job_dir, include_best=True) if main else []:
            os.unlink(p["path"])
        if s.init_weights:
            report = load_weights(s.net, s.init_weights, reinit="all-mismatched")
            for line in report.lines():
                log(line)
    if should_freeze_bn(params, s.init_weights is not None):
        frozen = freeze_batchnorm(s.net)
        if frozen:
            log("BatchNorm statistics frozen in %d layers (batch size %d, start weights loaded): training uses the "
                "loaded running statistics, as Caffe's use_global_stats" % (len(frozen), s.batch_size))
    if s.channels_last:
        s.net.to(memory_format=torch.channels_last)
    # DDP broadcasts rank 0's weights here, after any resume / initial weights were loaded.
    model = ddp.wrap(s.net) if ddp is not None else s.net
    world = ddp.world_size if ddp is not None else 1

    loss_fn = _loss_fn(s, params)
    autocast = _autocast(s)

    def prepare(images):
        return to_input(images, s.mean, channels_last=s.channels_last, bgr=s.bgr, scale=s.scale)

    epochs = int(params["epochs"])
    log_every = int(params.get("log_interval", 10))
    val_every = float(params.get("val_interval") or 0)
    val_iters = max(1, int(round(val_every * s.iters_per_epoch))) if val_every > 0 else 0
    snap_epochs = max(1, int(math.ceil(float(params.get("snapshot_interval") or 0)))) \
        if float(params.get("snapshot_interval") or 0) > 0 else 0
    patience = int(params.get("early_stop_patience") or 0)
    colormap = getattr(s.info, "colormap", None)
    state = {"best": best, "since_best": 0}

    def snapshot(epoch):
        if not main:
            return
        path = os.path.join(job_dir, snaps.snapshot_name(iteration))
        snaps.save_snapshot(s.net, s.optimizer, path, {
            "iteration": iteration, "epoch": epoch, "best_miou": state["best"] if state["best"] is not None else
            float("nan"), "solver_type": params.get("solver_type", "SGD"), "seed": s.seed})
        log("Snapshot %s" % os.path.basename(path))

    def validate(epoch_float):
        if ddp is not None:
            ddp.sync_buffers(s.net)
        res, previews = run_validation(s.net, s.val_loader, device=s.device, num_classes=s.num_classes,
                                       ignore_label=s.ignore_label, loss_fn=loss_fn, prepare=prepare,
                                       autocast=autocast, preview_count=int(params.get("val_previews", 4)),
                                       preview_ids=_preview_ids(ddp, s.val_loader, int(params.get("val_previews", 4))),
                                       reduce=ddp.sum_ if ddp is not None else None)
        label = ("%g" % epoch_float).replace(".", "_")
        if main:
            write_previews(job_dir, label, previews, colormap)
        rec = {"type": "val", "iteration": iteration, "epoch": round(epoch_float, 4), "time": time.time(),
               "preview_dir": "val_previews/epoch_%s" % label}
        rec.update({k: res[k] for k in ("loss", "pixel_acc", "mean_acc", "mean_iou", "fw_iou", "per_class_iou",
                                        "per_class_acc", "confusion")})
        if rec["loss"] is not None and not math.isfinite(rec["loss"]):
            _nan_error(params, "validation")
        if main:
            append_metrics(job_dir, rec)
        log("Validation at epoch %g: loss %.4f, pixel acc %.4f, mean acc %.4f, mIoU %.4f, fw IoU %.4f" % (
            epoch_float, rec["loss"] or 0, rec["pixel_acc"] or 0, rec["mean_acc"] or 0, rec["mean_iou"] or 0,
            rec["fw_iou"] or 0))
        miou = rec["mean_iou"]
        if miou is not None and (state["best"] is None or miou > state["best"]):
            state["best"] = miou
            state["since_best"] = 0
            if main:
                snaps.save_snapshot(s.net, None, os.path.join(job_dir, snaps.BEST_FILE), {
                    "iteration": iteration, "epoch": round(epoch_float, 4), "best_miou": miou})
        else:
            state["since_best"] += 1

    if s.init_weights and iteration == 0 and s.val_loader is not None and val_iters:
        # The untouched start model's score: what fine-tuning has to beat (or at least keep).
        validate(0.0)
    loss_acc = torch.zeros((), device=s.device)
    n_acc, images_acc, t_last = 0, 0, time.time()
    stopped_early = False
    try:
        for epoch in range(start_epoch, epochs):
            s.train_sampler.set_epoch(epoch)
            s.net.train()
            batches = 0
            for images, labels, _ in s.train_loader:
                if ddp.any_stop(s.device) if ddp is not None else should_stop():
                    raise JobAborted()
                if batches % s.iter_size == 0:
                    set_lr(s.optimizer, lr_at(s.schedule, iteration) / s.schedule["base_lr"])
                    s.optimizer.zero_grad(set_to_none=True)
                images = images.to(s.device, non_blocking=True)
                labels = labels.to(s.device, non_blocking=True)
                # Gradients are averaged across processes only on the step's last micro-batch.
                sync = (batches + 1) % s.iter_size == 0 or batches + 1 >= s.batches_per_epoch
                with contextlib.nullcontext() if ddp is None or sync else model.no_sync():
                    with autocast():
                        out = model(prepare(images))
                    scores = out[s.net.score_blob]
                    if iteration == 0 and batches == 0:
                        _check_scores(scores, labels)
                    loss = loss_fn(scores, labels)
                    (loss / s.iter_size).backward()
                loss_acc += loss.detach()
                n_acc += 1
                images_acc += images.shape[0]
                batches += 1
                if batches % s.iter_size and batches < s.batches_per_epoch:
                    continue
                s.optimizer.step()
                iteration += 1
                epoch_float = epoch + batches / float(s.batches_per_epoch)
                if iteration % log_every == 0 or batches == s.batches_per_epoch:
                    if ddp is not None:
                        ddp.sum_(loss_acc)  # every rank sees the same mean, so all stop on a NaN
                    mean_loss = float(loss_acc.item()) / max(1, n_acc * world)
                    if not math.isfinite(mean_loss):
                        _nan_error(params, "training")
                    now = time.time()
                    if main:
                        append_metrics(job_dir, {
                            "type": "train", "iteration": iteration, "epoch": round(epoch_float, 4),
                            "loss": mean_loss, "lr": lr_at(s.schedule, iteration - 1), "time": now,
                            "images_per_s": images_acc * world / max(1e-9, now - t_last)})
                    loss_acc.zero_()
                    n_acc, images_acc, t_last = 0, 0, now
                    on_progress(iteration / float(s.total_iters),
                                "epoch %d/%d, iteration %d/%d, loss %.4f" % (epoch + 1, epochs, iteration,
                                                                             s.total_iters, mean_loss))
                if s.val_loader is not None and val_iters and iteration % val_iters == 0:
                    validate(epoch_float)
                    t_last = time.time()
                    if patience and state["since_best"] >= patience:
                        stopped_early = True
                        break
            done_epoch = epoch + 1
            if stopped_early:
                log("Early stopping: validation mIoU did not improve for %d validations" % patience)
                snapshot(done_epoch)
                break
            if (snap_epochs and done_epoch % snap_epochs == 0) or done_epoch == epochs:
                snapshot(done_epoch)
    except torch.OutOfMemoryError:
        raise ValidationError(
            "Out of GPU memory with batch size %d%s: reduce the batch size (e.g. to %d) or the crop size, and use "
            "batch accumulation (iter_size) to keep the effective batch" % (
                s.batch_size, ", crop %s" % params.get("crop_size") if params.get("crop_size") else "",
                max(1, s.batch_size // 2)), field="batch_size")
    finally:
        _shutdown_loaders(s)
    on_progress(1.0, "done")
    last = snaps.list_snapshots(job_dir)
    return {"iterations": iteration, "epochs": epochs, "best_val_mean_iou": state["best"],
            "last_snapshot": last[-1]["name"] if last else None, "stopped_early": stopped_early}


def _preview_ids(ddp, loader, count):
    """Rank 0 previews the first `count` samples of its own share; other ranks keep none."""
    if ddp is None or loader is None:
        return None
    if not ddp.main:
        return ()
    return [i for _, i in list(iter(loader.sampler))[:count]]


def _shutdown_loaders(s):
    """Stop persistent loader workers now rather than whenever the iterator is garbage-collected."""
    for loader in (s.train_loader, s.val_loader):
        it = getattr(loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()


def _nan_error(params, where):
    raise ValidationError(
        "The %s loss became NaN or infinite (base learning rate %g): lower the learning rate (e.g. by 10x), "
        "or check the mean subtraction" % (where, float(params["base_lr"])), field="base_lr")
