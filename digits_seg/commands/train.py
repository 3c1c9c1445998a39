"""`digits-seg train`: create model jobs (queued, or `--now` in this process with a progress bar)."""

import json

from .follow import add_quiet_argument, add_wait_argument, announce


def register(subparsers, common):
    """Add the `train` sub-command to the `digits-seg` parser; its solver options come from the declaration."""
    from ..declare import specs
    from ..training.params import ModelSource, TrainingParams
    from .options import add_declared, declared_help

    p = subparsers.add_parser("train", parents=[common], help="train a segmentation network on a dataset (a model job)")
    source = {s.name: s for s in specs(ModelSource)}
    p.add_argument("--dataset", help=declared_help(source["dataset_id"]) + " Required unless --resume.")
    net = p.add_mutually_exclusive_group()
    net.add_argument("--network", help=declared_help(source["network"]))
    net.add_argument("--custom", metavar="PROTOTXT", help="File with a custom Caffe network description. "
                     + declared_help(source["custom_network"]))
    net.add_argument("--previous", metavar="JOB", help=declared_help(source["previous_job"]))
    net.add_argument("--pretrained", metavar="JOB", help=declared_help(source["pretrained_job"]))
    p.add_argument("--snapshot", default=None, help=declared_help(source["previous_snapshot"]))
    p.add_argument("--name", default=None, help=declared_help(source["name"]))
    add_declared(p, TrainingParams)
    p.add_argument("--no-hflip", dest="hflip", action="store_const", const=False,
                   help="No random horizontal flips, even where the network's recipe has them. Default: the "
                        "network's recipe (off for the shipped networks).")
    p.add_argument("--resume", metavar="JOB", default=None, help="resume a stopped model job from its last snapshot")
    p.add_argument("--now", action="store_true", help="run in this process with a progress bar instead of queueing")
    add_wait_argument(p, "the job(s)")
    p.add_argument("--json", action="store_true", help="print the created job(s) as JSON")
    add_quiet_argument(p)
    p.set_defaults(func=cmd_train)


def _raw(args):
    import os

    from ..training.params import TrainingParams
    from .options import declared_values

    raw = declared_values(args, TrainingParams)
    raw["dataset_id"] = args.dataset
    if args.custom:
        path = os.path.abspath(args.custom)
        if not os.path.isfile(path):
            from ..errors import ValidationError

            raise ValidationError("--custom %s %s" % (args.custom, "is not a file" if os.path.exists(path)
                                                      else "does not exist"), field="custom_network")
        with open(path, "r", encoding="utf-8") as f:
            raw["network"] = {"kind": "custom", "prototxt": f.read()}
    elif args.previous:
        raw["network"] = {"kind": "previous", "job_id": args.previous, "snapshot": args.snapshot}
    elif args.pretrained:
        raw["network"] = {"kind": "pretrained", "job_id": args.pretrained}
    else:
        raw["network"] = {"kind": "standard", "name": args.network or "fcn-alexnet"}
    return raw


def _apply_solver_file(raw, info):
    """`--solver FILE`: fill the solver fields the command line left blank from a Caffe solver file.

    Returns lines saying what was mapped (max_iter becomes epochs for this dataset and batch size).
    """
    import os

    from ..errors import ValidationError
    from ..training.solver_file import read_solver, solver_to_params

    value = raw.get("solver_type")
    if not isinstance(value, str) or not (os.path.isfile(value) or value.endswith(".prototxt")):
        return []
    if not os.path.isfile(value):
        raise ValidationError("--solver %s: no such solver file" % value, field="solver_type")
    del raw["solver_type"]
    with open(value, encoding="utf-8") as fh:
        msg = read_solver(fh.read(), value)
    count = ((info.splits.get("train") or {}).get("count") if info is not None else None)
    batch = str(raw.get("batch_size") or "1").split(",")[0].strip()
    fields, said = solver_to_params(msg, count, int(batch) if batch.isdigit() else 1, value,
                                    loss=_solver_loss(msg, os.path.dirname(os.path.abspath(value)), raw, info),
                                    keep=set(raw))
    for key, v in fields.items():
        if key in raw:
            said.append("%s: kept the command line's %s" % (key, raw[key]))
        else:
            raw[key] = v
    return said


def _solver_loss(msg, solver_dir, raw, info):
    """The loss a solver was tuned for (the network it names beside it, else the --custom one) and the
    dataset's labelled pixels at the crop training will use: what rescales its base_lr (`loss_scale`)."""
    from ..networks.standard import STANDARD_NETWORKS
    from ..training.loss_scale import loss_context

    net = raw.get("network") or {}
    network = (net["prototxt"], "the --custom network") if net.get("kind") == "custom" else None
    crop = raw.get("crop_size")
    if crop is None and net.get("kind") == "standard" and net.get("name") in STANDARD_NETWORKS:
        crop = STANDARD_NETWORKS[net["name"]].solver.get("crop_size")  # the recommendation the job will use
        size = info and (info.splits.get("train") or {}).get("size")
        crop = None if crop and size and crop > min(size) else crop
    return loss_context(msg, info, crop, network, solver_dir,
                        hint="put the network it trains beside it, named as its train_net says, or give that "
                             "network with --custom")


def _job_name(args, params, sweep, dataset_name, store):
    from ..training.params import default_model_name

    base = args.name or default_model_name(params["network"], dataset_name, store)
    if sweep:
        base += " (lr %g, batch %s)" % (params["base_lr"], params["batch_size"])
    return base


def _check_dataset(store, args):
    """The dataset job and its info (None while it is being built), or the problems with it."""
    from ..datasets.info import DatasetInfo
    from ..declare import field_error
    from ..errors import NotFoundError
    from ..jobs.job import JobState
    from ..training.params import ModelSource

    def problem(phrase):
        return None, None, [field_error(ModelSource, "dataset_id", phrase)]

    if not args.dataset:
        return problem("is missing: give --dataset <dataset job id> (see `digits-seg jobs list`)")
    try:
        dataset = store.get(args.dataset)
    except NotFoundError:
        return problem("%r does not exist in %s (see `digits-seg jobs list`)" % (args.dataset, store.jobs_dir))
    if dataset.kind != "dataset":
        return problem("%s is a %s job, not a dataset" % (args.dataset, dataset.kind))
    if dataset.state in (JobState.ERROR, JobState.ABORTED):
        return problem("%r ended as %s; recreate it" % (dataset.name, dataset.state.value))
    info = DatasetInfo.load(store.job_dir(args.dataset)) if dataset.state == JobState.DONE else None
    if info is None and args.now:
        return problem("%r is still %s; wait for it or queue the model without --now"
                       % (dataset.name, dataset.state.value))
    return dataset, info, []


def cmd_train(args, settings):
    import sys

    from ..errors import ValidationError
    from ..jobs.store import JobStore
    from ..jobs.submit_checks import device_problems, source_errors
    from ..training.params import check_name, expand_sweep, validate_params

    store = JobStore(settings.jobs_dir)
    if args.resume:
        return _resume(args, settings, store)
    # Every problem is found before anything is written: the dataset, the fields, the start model, the device.
    dataset, info, errors = _check_dataset(store, args)
    params = None
    try:
        raw = _raw(args)
        for line in _apply_solver_file(raw, info):
            print("solver file: %s" % line, file=sys.stderr)
        params = validate_params(dict(raw, name=args.name), settings, info)
    except ValidationError as exc:
        errors += exc.errors or [{"field": exc.field, "label": "", "message": exc.message}]
    warnings, service = [], None
    if params is not None:
        errors += source_errors(store, params)
        if not args.now:
            from ..jobs.queue import list_workers
            from ..jobs.service import JobService

            service = JobService(settings)
            more, warnings = device_problems(params["device"], list_workers(service.conn))
            errors += more
    if errors:
        raise ValidationError.of(errors)
    for w in warnings:
        print("warning: %s" % w, file=sys.stderr)
    args.name = check_name(args.name) or None
    runs = expand_sweep(params)
    sweep = len(runs) > 1
    created = []
    for run in runs:
        name = _job_name(args, run, sweep, dataset.name, store)
        if args.now:
            created.append(_run_now(store, name, run, settings))
        else:
            created.append(_submit(service, name, run, dataset))
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
            announce(c["id"], "%s model job %s (%s)%s" % (
                "finished" if args.now else c["state"] if args.wait else "queued", c["id"], c["name"],
                " → " + c["dir"] if args.now else ""), args)
    return status


def _submit(service, name, params, dataset):
    from ..jobs.job import JobState
    from ..jobs.queue import queue_for_device

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
    if settings.onnx_inference:  # as a queued job does: CPU inference then runs in ONNX Runtime
        from ..jobs.tasks import prepare_cpu_inference

        prepare_cpu_inference(store.job_dir(job.id), lambda text: store.append_log(job.id, text))
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

