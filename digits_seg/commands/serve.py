"""`serve`, `worker`, `jobs` and `check` sub-commands."""

import json
import time

from ..config import SETTINGS
from .options import add_setting


def register(subparsers, common):
    p = subparsers.add_parser("serve", parents=[common], help="start Redis (embedded), workers and the web app")
    # Every setting is a `serve` flag (the README's Settings table is generated from the same list).
    for s in SETTINGS:
        if s.name not in ("jobs_dir", "redis_url"):
            add_setting(p, s.name)
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("worker", parents=[common], help="run one worker (joins REDIS_URL or a local serve)")
    p.add_argument("--gpu", type=_gpu_arg, default=None,
                   help="physical GPU index to pin (CUDA_VISIBLE_DEVICES); 'all': no pin, serve multi-GPU "
                        "(gpus:N) jobs only; omit for CPU")
    p.add_argument("--name", default=None, help="worker name (default host.gpuN.pid)")
    p.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    p.set_defaults(func=cmd_worker)

    p = subparsers.add_parser("jobs", parents=[common], help="list, show, abort, delete or resume jobs")
    p.add_argument("action", choices=["list", "show", "abort", "delete", "resume", "log"], help="what to do")
    p.add_argument("job_id", nargs="?", help="the job (all actions but list)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_jobs)

    p = subparsers.add_parser("check", parents=[common], help="queue a worker-check job and wait for it")
    p.add_argument("--steps", type=int, default=3, help="steps of the check job (each probes the worker)")
    p.add_argument("--device", default="default", help="queue: default | cpu | gpu")
    p.set_defaults(func=cmd_check)


def _gpu_arg(text):
    """--gpu value: a GPU index, or 'all' (a worker for multi-GPU DistributedDataParallel jobs)."""
    import argparse

    if text.strip().lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--gpu takes a GPU index or 'all', got %r" % text)


def cmd_serve(args, settings):
    from ..server import Server

    return Server(settings).run()


def cmd_worker(args, settings):
    from ..jobs.service import resolve_redis_url
    from ..jobs.worker import run_worker

    url = resolve_redis_url(settings)
    print("digits-seg worker: Redis %s, %s" % (url, "GPU %s" % args.gpu if args.gpu is not None else "CPU"),
          flush=True)
    run_worker(url, gpu=args.gpu, name=args.name, burst=args.burst)
    return 0


def cmd_jobs(args, settings):
    from ..errors import ValidationError
    from ..jobs.service import JobService

    service = JobService(settings)
    if args.action == "list":
        jobs = service.store.list()
        if args.json:
            print(json.dumps([j.to_dict() for j in jobs], indent=2))
        for j in jobs if not args.json else []:
            print("%s  %-10s %-8s %5.1f%%  %s" % (j.id, j.kind, j.state.value,
                                                 100 * (j.progress or {}).get("fraction", 0), j.name))
        return 0
    if not args.job_id:
        raise ValidationError("give a job id", field="job_id")
    if args.action == "show":
        print(json.dumps(service.get(args.job_id).to_dict(), indent=2))
    elif args.action == "log":
        print(service.store.read_log(args.job_id)[0], end="")
    elif args.action == "abort":
        job = service.abort_and_wait(args.job_id)
        print("%s is %s" % (job.id, job.state.value))
    elif args.action == "delete":
        service.delete(args.job_id)
        print("deleted %s" % args.job_id)
    elif args.action == "resume":
        job = service.resume(args.job_id)
        print("%s is %s" % (job.id, job.state.value))
    return 0


def cmd_check(args, settings):
    from ..jobs.service import JobService

    service = JobService(settings)
    job = service.submit("check", "worker check", {"steps": args.steps, "interval_s": 0.2, "probe_torch": True},
                         queue=args.device)
    print("queued %s; waiting for a worker..." % job.id, flush=True)
    while not job.state.finished:
        time.sleep(0.5)
        job = service.get(job.id)
    print(json.dumps({"state": job.state.value, "result": job.result, "error": job.error}, indent=2))
    return 0 if job.state.value == "done" else 1
