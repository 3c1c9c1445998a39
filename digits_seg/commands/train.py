"""`digits-seg train`: create model jobs (queued, or `--now` in this process with a progress bar)."""

import json

from .follow import add_wait_argument


def register(subparsers, common):
    """Add the `train` sub-command to the `digits-seg` parser."""
    p = subparsers.add_parser("train", parents=[common], help="train a segmentation network on a dataset (a model job)")
    p.add_argument("--dataset", help="dataset job id (required unless --resume)")
    net = p.add_mutually_exclusive_group()
    net.add_argument("--network", help="standard network name (e.g. fcn-alexnet, fcn-8s, unet, tiny-fcn)")
    net.add_argument("--custom", metavar="PROTOTXT", help="file with a custom Caffe network description")
    net.add_argument("--previous", metavar="JOB", help="start from a finished model job's network and weights")
    net.add_argument("--pretrained", metavar="JOB", help="start from an imported pretrained model job")
    p.add_argument("--snapshot", default=None, help="snapshot of --previous: best (default), last or an iteration")
    p.add_argument("--name", default=None, help="job name (default: network on dataset)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 30 or the network's)")
    p.add_argument("--batch-size", default=None, help="images per batch; comma-separated values make a sweep")
    p.add_argument("--iter-size", type=int, default=None, help="batches accumulated per solver step")
    p.add_argument("--lr", dest="base_lr", default=None,
                   help="base learning rate (default 0.01); comma-separated values make a sweep. NaN loss: lower it")
    p.add_argument("--solver", dest="solver_type", default=None,
                   help="SGD, Nesterov, Adam, AdamW, RMSProp, AdaGrad or AdaDelta")
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--lr-policy", default=None, help="fixed, step, multistep, exp, inv, poly, sigmoid or cosine")
    p.add_argument("--lr-step-size", type=float, default=None, help="step size in %% of training (step, sigmoid)")
    p.add_argument("--lr-stepvalues", default=None, help="comma-separated %% of training (multistep)")
    p.add_argument("--lr-gamma", type=float, default=None)
    p.add_argument("--lr-power", type=float, default=None)
    p.add_argument("--snapshot-interval", type=float, default=None, help="epochs between snapshots (default 1)")
    p.add_argument("--val-interval", type=float, default=None, help="epochs between validations (default 1)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--early-stop", dest="early_stop_patience", type=int, default=None,
                   help="stop after this many validations without a better mIoU (0: off)")
    p.add_argument("--mean", dest="mean_subtraction", choices=["none", "pixel", "image", "model"], default=None,
                   help="mean subtraction (default: none for the standard networks; 'model', the preprocessing of "
                        "the model it starts from, for --pretrained/--previous)")
    p.add_argument("--freeze-bn", dest="freeze_bn", choices=["auto", "on", "off"], default=None,
                   help="BatchNorm uses the start weights' running statistics in training (auto: on below batch 8 "
                        "when starting from trained weights)")
    p.add_argument("--crop", dest="crop_size", type=int, default=None, help="random crop size (image and label)")
    flip = p.add_mutually_exclusive_group()
    flip.add_argument("--hflip", action="store_true", default=None, help="random horizontal flips (default: the "
                                                                            "network's advice)")
    flip.add_argument("--no-hflip", dest="hflip", action="store_false", help="no random horizontal flips")
    p.add_argument("--scale", dest="random_scale", default=None, help="random scale range, e.g. 0.5-2.0")
    p.add_argument("--class-weighting", choices=["none", "inverse", "median"], default=None)
    p.add_argument("--dice", dest="dice_weight", type=float, default=None, help="weight of an extra Dice loss term")
    p.add_argument("--device", default=None, help="auto, cpu, gpu, gpu:K[@host], gpus:N[@host] (N GPUs, DDP) or cpus:N")
    p.add_argument("--no-amp", action="store_true", help="train in float32 on CUDA (default: bf16 autocast)")
    p.add_argument("--workers", dest="loader_workers", type=int, default=None, help="data loader processes")
    p.add_argument("--resume", metavar="JOB", default=None, help="resume a stopped model job from its last snapshot")
    p.add_argument("--now", action="store_true", help="run in this process with a progress bar instead of queueing")
    add_wait_argument(p, "the job(s)")
    p.add_argument("--json", action="store_true", help="print the created job(s) as JSON")
    p.set_defaults(func=cmd_train)


RAW_KEYS = ("epochs", "batch_size", "iter_size", "base_lr", "solver_type", "momentum", "weight_decay", "lr_policy",
            "lr_step_size", "lr_stepvalues", "lr_gamma", "lr_power", "snapshot_interval", "val_interval", "seed",
            "early_stop_patience", "mean_subtraction", "crop_size", "random_scale", "class_weighting", "dice_weight",
            "device", "loader_workers", "freeze_bn")


def _raw(args):
    raw = {k: getattr(args, k) for k in RAW_KEYS if getattr(args, k) is not None}
    raw["dataset_id"] = args.dataset
    if args.hflip is not None:
        raw["hflip"] = bool(args.hflip)
    if args.no_amp:
        raw["amp"] = False
    if args.custom:
        with open(args.custom, "r", encoding="utf-8") as f:
            raw["network"] = {"kind": "custom", "prototxt": f.read()}
    elif args.previous:
        raw["network"] = {"kind": "previous", "job_id": args.previous, "snapshot": args.snapshot}
    elif args.pretrained:
        raw["network"] = {"kind": "pretrained", "job_id": args.pretrained}
    else:
        raw["network"] = {"kind": "standard", "name": args.network or "fcn-alexnet"}
    return raw


def _job_name(args, params, sweep, dataset_name, store):
    from ..training.params import default_model_name

    base = args.name or default_model_name(params["network"], dataset_name, store)
    if sweep:
        base += " (lr %g, batch %s)" % (params["base_lr"], params["batch_size"])
    return base


def cmd_train(args, settings):
    from ..datasets.info import DatasetInfo
    from ..errors import ValidationError
    from ..jobs.job import JobState
    from ..jobs.store import JobStore
    from ..training.params import expand_sweep, validate_params

    store = JobStore(settings.jobs_dir)
    if args.resume:
        return _resume(args, settings, store)
    if not args.dataset:
        raise ValidationError("give --dataset <dataset job id> (see `digits-seg jobs list`)", field="dataset")
    dataset = store.get(args.dataset)
    if dataset.kind != "dataset":
        raise ValidationError("job %s is a %s job, not a dataset" % (args.dataset, dataset.kind), field="dataset")
    if dataset.state in (JobState.ERROR, JobState.ABORTED):
        raise ValidationError("dataset %r ended as %s; recreate it" % (dataset.name, dataset.state.value),
                              field="dataset")
    info = DatasetInfo.load(store.job_dir(args.dataset)) if dataset.state == JobState.DONE else None
    if info is None and args.now:
        raise ValidationError("dataset %r is still %s; wait for it or queue the model without --now"
                              % (dataset.name, dataset.state.value), field="dataset")
    params = validate_params(_raw(args), settings, info)
    runs = expand_sweep(params)
    sweep = len(runs) > 1
    created = []
    for run in runs:
        name = _job_name(args, run, sweep, dataset.name, store)
        if args.now:
            created.append(_run_now(store, name, run, settings))
        else:
            created.append(_submit(settings, name, run, dataset))
    status = 0
    if args.wait and not args.now:
        from .follow import exit_status, follow_job

        for c in created:
            job = follow_job(store, c["id"])
            c["state"] = job.state.value
            status = max(status, exit_status(job))
    if args.json:
        print(json.dumps(created))
    else:
        for c in created:
            print("%s model job %s (%s)%s" % ("finished" if args.now else c["state"] if args.wait else "queued",
                                              c["id"], c["name"], " → " + c["dir"] if args.now else ""))
    return status


def _submit(settings, name, params, dataset):
    from ..jobs.job import JobState
    from ..jobs.queue import queue_for_device
    from ..jobs.service import JobService

    service = JobService(settings)
    depends = [dataset.id] if dataset.state != JobState.DONE else []
    job = service.submit("model", name, params, queue=queue_for_device(params["device"], service.conn),
                         depends_on=depends)
    return {"id": job.id, "name": name, "state": job.state.value}


def _folders(store, params):
    def folder(key):
        return store.job_dir(params[key]) if params.get(key) else None
    return {"dataset_dir": folder("dataset_id"), "pretrained_dir": folder("pretrained_id"),
            "previous_dir": folder("previous_id")}


def _run_now(store, name, params, settings, job=None, resume=False):
    """Run `train` in this process on a new (or, resuming, existing) job folder; Ctrl-C aborts cleanly."""
    from ..training.trainer import train
    from .inprocess import run_now

    if job is None:
        job = store.create("model", name, params)
    result = run_now(store, job, train, params, interrupt_hint="; resume with --resume %s" % job.id,
                     resume=resume, **_folders(store, params))
    return {"id": job.id, "name": name, "dir": store.job_dir(job.id), **result}


def _resume(args, settings, store):
    from ..errors import ConflictError
    from ..jobs.job import JobState

    job = store.get(args.resume)
    if job.kind != "model":
        raise ConflictError("only model jobs can be resumed; %s is a %s job" % (job.id, job.kind))
    if args.now:
        if job.state == JobState.RUNNING:
            raise ConflictError("job %s is running; abort it first" % job.id)
        out = _run_now(store, job.name, job.params, settings, job=job, resume=True)
        print(json.dumps(out) if args.json else "finished model job %s → %s" % (out["id"], out["dir"]))
        return 0
    from ..jobs.service import JobService

    job = JobService(settings).resume(args.resume)
    print(json.dumps({"id": job.id, "state": job.state.value}) if args.json
          else "re-queued model job %s; it continues from its last snapshot" % job.id)
    return 0

