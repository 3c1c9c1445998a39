"""DDP smoke run: the same training job on one GPU and on two (NCCL), images/s from each job's metrics.

Builds a SynthCity dataset job, then runs `digits-seg train --now` twice in subprocesses
(`--device gpu:0`, then `--device gpus:2`) with the same recipe, and reads the median
`images_per_s` the trainer logged. Prints one JSON object: both rates, the ratio two/one
(ideal 2.0) and each job's final state. Needs 2 visible CUDA GPUs.

    python bench/ddp_smoke.py --network fcn-alexnet --size 256 --images 256 --batch 16
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def dataset_job(jobs, count, size):
    from digits_seg.config import load_settings
    from digits_seg.datasets import synthcity
    from digits_seg.datasets.create import create_dataset
    from digits_seg.datasets.params import validate_params
    from digits_seg.jobs.job import JobState
    from digits_seg.jobs.store import JobStore

    src = os.path.join(jobs, "..", "src")
    synthcity.generate(src, count, size=(size, size), seed=0)
    settings = load_settings({"jobs_dir": jobs, "data_roots": os.path.dirname(jobs)}, environ={})
    params = validate_params({"images": os.path.join(src, "images"), "labels": os.path.join(src, "labels"),
                              "classes_file": os.path.join(src, "classes.txt"), "val_pct": 10}, settings)
    store = JobStore(jobs)
    job = store.create("dataset", "ddp smoke", params)
    store.set_state(job.id, JobState.RUNNING)
    create_dataset(store.job_dir(job.id), params, settings=settings, log=lambda t: None)
    store.set_state(job.id, JobState.DONE)
    return job.id


def train(jobs, dataset, device, args):
    cmd = [sys.executable, "-m", "digits_seg.cli", "train", "--jobs-dir", jobs, "--dataset", dataset,
           "--network", args.network, "--epochs", str(args.epochs), "--batch-size", str(args.batch),
           "--device", device, "--name", "ddp smoke %s" % device, "--now"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    from digits_seg.jobs.store import JobStore
    from digits_seg.training.metrics_log import read_metrics

    store = JobStore(jobs)
    jobs_of_run = sorted((j for j in store.list() if j.kind == "model" and device in j.name), key=lambda j: j.id)
    if not jobs_of_run:
        return {"device": device, "error": "no job created", "rc": proc.returncode, "stderr": proc.stderr[-800:]}
    job = jobs_of_run[-1]
    rates = [float(r["images_per_s"]) for r in read_metrics(store.job_dir(job.id), "train") if r.get("images_per_s")]
    return {"device": device, "state": job.state.value, "rc": proc.returncode, "job": job.id,
            "images_per_s_median": round(statistics.median(rates[1:] or rates), 2) if rates else None,
            "error": (job.error or {}).get("message")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", default="fcn-alexnet")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args(argv)
    root = tempfile.mkdtemp(prefix="bench-ddp-")
    try:
        jobs = os.path.join(root, "jobs")
        os.makedirs(jobs)
        ds = dataset_job(jobs, args.images, args.size)
        one = train(jobs, ds, "gpu:0", args)
        two = train(jobs, ds, "gpus:2", args)
        ratio = None
        if one.get("images_per_s_median") and two.get("images_per_s_median"):
            ratio = round(two["images_per_s_median"] / one["images_per_s_median"], 3)
        print(json.dumps({"benchmark": "ddp_smoke", "network": args.network, "size": args.size,
                          "batch_per_gpu": args.batch, "one_gpu": one, "two_gpus": two,
                          "ratio_two_vs_one": ratio}, indent=2))
        return 0 if two.get("state") == "done" else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
