"""Benchmark: the home page and `/index.json` with 2,000 job folders vs reading their job.json files.

Writes N realistic job folders (datasets, models with long parameter forms and results,
pretrained imports, inference runs; done, error, running and queued states) with
`Job.to_dict()` in the same JSON layout `JobStore` writes, then measures in one run:
  - `bare`:       a loop that opens and json-parses every `<id>/job.json` — the baseline;
  - `home_cold`:  `GET /` on a fresh app (empty job cache), Flask test client;
  - `json_cold`:  `GET /index.json` on another fresh app;
  - `home_warm`, `json_warm`: the same requests again on the warmed apps (median of --runs);
  - `home_warm_one_changed`: `GET /` after one job.json changed (the running-job case).
No Redis is needed: listing pages only read the jobs dir.
Prints JSON with the times (seconds) and the ratios to `bare`.

    python bench/jobs_index.py [--jobs 2000] [--runs 7] [--profile]
"""

import argparse
import cProfile
import datetime
import io
import json
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

KINDS = (("model", 0.5), ("dataset", 0.25), ("pretrained", 0.1), ("inference", 0.15))


def _model_params(rng, i):
    """A training form as the models page submits it (about 40 fields, like DIGITS)."""
    return {
        "name": "fcn-run-%d" % i, "dataset_id": "20250101-000000-%04x" % rng.randrange(65536),
        "network": rng.choice(["fcn-alexnet", "fcn8s", "segnet", "unet", "deeplab-v3"]),
        "custom_prototxt": "", "pretrained_id": "", "previous_id": "",
        "epochs": rng.choice([10, 30, 60]), "batch_size": rng.choice([1, 2, 4, 8]), "batch_accumulation": 1,
        "solver": rng.choice(["SGD", "Adam", "Nesterov"]), "base_lr": rng.choice([1e-4, 1e-3, 1e-2]),
        "lr_policy": rng.choice(["fixed", "step", "poly", "exp"]), "gamma": 0.1, "step_size": 33, "power": 0.9,
        "momentum": 0.9, "weight_decay": 5e-4, "crop_size": 224, "random_seed": rng.randrange(10 ** 6),
        "snapshot_interval": 1, "val_interval": 1, "device": rng.choice(["auto", "cpu", "gpu"]),
        "class_weights": "", "ignore_label": 255, "mean": "image",
        "augment": {"flip_h": True, "flip_v": False, "rotate_deg": 10, "scale": [0.8, 1.2], "hue": 0.05,
                    "brightness": 0.1, "contrast": 0.1, "noise": 0.0},
        "sweep": {"base_lr": [], "batch_size": []}, "notes": "trained on the office cluster " * 3,
    }


def _params(kind, rng, i):
    if kind == "model":
        return _model_params(rng, i)
    if kind == "dataset":
        return {"name": "city-%d" % i, "image_folder": "/data/city/images", "label_folder": "/data/city/labels",
                "val_percent": 10, "test_percent": 0, "resize": [256, 256], "resize_mode": "squash",
                "encoding": "png", "color_map": "palette", "class_names": ["bg", "road", "car", "person"],
                "compression": "none", "backend": "lmdb"}
    if kind == "pretrained":
        return {"name": "fcn-%d" % i, "source": "store", "entry": "fcn-alexnet-pascal", "url": "model_store/x"}
    return {"name": "batch-%d" % i, "model_id": "20250101-000000-%04x" % rng.randrange(65536),
            "snapshot": "best", "image_list": ["/data/test/%03d.png" % k for k in range(20)]}


def _result(kind, rng):
    if kind == "model":
        return {"best_epoch": rng.randrange(1, 30), "metrics": {"val_loss": rng.random(), "mean_iou": rng.random(),
                                                                 "pixel_accuracy": rng.random()},
                "snapshots": ["snapshot_epoch_%d.h5" % e for e in range(1, 11)]}
    if kind == "dataset":
        return {"train": rng.randrange(10 ** 4), "val": rng.randrange(10 ** 3), "classes": 4}
    return {"files": rng.randrange(1, 50)}


def make_jobs(jobs_dir, n, seed=0):
    """Write `n` job folders with ids spread over a year; return their ids."""
    from digits_seg.jobs.job import Job, JobState, new_job_id

    rng = random.Random(seed)
    start = datetime.datetime(2025, 1, 1, 8, 0, 0)
    ids = []
    for i in range(n):
        created = start + datetime.timedelta(minutes=263 * i + rng.randrange(60))
        kind = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
        job = Job(id=new_job_id(created), kind=kind, name="%s %d" % (kind, i),
                  created=created.astimezone().isoformat(timespec="milliseconds"),
                  params=_params(kind, rng, i), queue="gpu" if kind == "model" else "default")
        history = [JobState.QUEUED, JobState.RUNNING]
        final = rng.choices(["done", "error", "aborted", "running", "queued"], weights=[80, 8, 4, 4, 4])[0]
        if final == "queued":
            history = [JobState.QUEUED]
        elif final != "running":
            history.append(JobState(final))
        for k, state in enumerate(history):
            t = created + datetime.timedelta(seconds=30 * k)
            job.status_history.append({"state": state.value, "time": t.astimezone().isoformat(timespec="milliseconds")})
        job.progress = {"fraction": 1.0 if final == "done" else rng.random(), "eta_s": None,
                        "message": "epoch 10 of 10", "updated": time.time()}
        if final == "done":
            job.result = _result(kind, rng)
        if final == "error":
            job.error = {"message": "out of memory: reduce the batch size", "detail": "Traceback ...\n" * 20}
        job.worker = {"name": "gpu-box.gpu0.1234", "host": "gpu-box", "pid": 1234, "gpu": "0"}
        folder = os.path.join(jobs_dir, job.id)
        os.mkdir(folder)
        # Same bytes as JobStore (write_json_atomic), without the per-file fsync that only
        # slows down building the fixture.
        with open(os.path.join(folder, "job.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(job.to_dict(), indent=2, sort_keys=False))
        ids.append(job.id)
    return ids


def bare_read(jobs_dir):
    """The baseline: open and parse every job.json (what any listing must at least do once)."""
    out = []
    for name in sorted(os.listdir(jobs_dir), reverse=True):
        path = os.path.join(jobs_dir, name, "job.json")
        try:
            with open(path, encoding="utf-8") as f:
                out.append(json.load(f))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return out


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def make_client(jobs_dir):
    from digits_seg.config import load_settings
    from digits_seg.web.app import create_app

    settings = load_settings({"jobs_dir": jobs_dir}, environ={})
    app = create_app(settings)
    return app.test_client()


def get(client, path):
    response = client.get(path)
    if response.status_code != 200:
        raise SystemExit("GET %s answered %d: %s" % (path, response.status_code, response.data[:500]))
    return response


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of warm GET /")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="bench-jobs-index-")
    try:
        jobs_dir = os.path.join(root, "jobs")
        os.mkdir(jobs_dir)
        build_s, ids = timed(lambda: make_jobs(jobs_dir, args.jobs))
        total_bytes = sum(os.path.getsize(os.path.join(jobs_dir, i, "job.json")) for i in ids)

        bare_first, parsed = timed(lambda: bare_read(jobs_dir))
        assert len(parsed) == args.jobs

        home_client = make_client(jobs_dir)
        json_client = make_client(jobs_dir)
        home_cold, page = timed(lambda: get(home_client, "/"))
        json_cold, listing = timed(lambda: get(json_client, "/index.json"))
        listed = sum(len(v) for v in listing.get_json().values())
        assert listed == args.jobs, "index.json lists %d of %d jobs" % (listed, args.jobs)

        bare, home_warm, json_warm, one_changed = [], [], [], []
        from digits_seg.jobs.store import JobStore

        store = JobStore(jobs_dir)
        for r in range(args.runs):  # interleaved so machine noise hits every path alike
            bare.append(timed(lambda: bare_read(jobs_dir))[0])
            home_warm.append(timed(lambda: get(home_client, "/"))[0])
            json_warm.append(timed(lambda: get(json_client, "/index.json"))[0])
            store.update(ids[r % len(ids)], lambda j: j.notes.append("touched by the benchmark"))
            one_changed.append(timed(lambda: get(home_client, "/"))[0])

        baseline = statistics.median(bare)
        result = {
            "jobs": args.jobs, "job_json_bytes_total": total_bytes, "runs": args.runs,
            "home_page_bytes": len(page.data), "index_json_bytes": len(listing.data),
            "seconds": {
                "bare_read_first": round(bare_first, 4), "bare_read": round(baseline, 4),
                "home_cold": round(home_cold, 4), "json_cold": round(json_cold, 4),
                "home_warm": round(statistics.median(home_warm), 4),
                "json_warm": round(statistics.median(json_warm), 4),
                "home_warm_one_changed": round(statistics.median(one_changed), 4),
                "build_fixture": round(build_s, 2),
            },
            "ratio_to_bare_read": {
                "home_cold": round(home_cold / baseline, 2), "json_cold": round(json_cold / baseline, 2),
                "home_warm": round(statistics.median(home_warm) / baseline, 2),
                "json_warm": round(statistics.median(json_warm) / baseline, 2),
                "home_warm_one_changed": round(statistics.median(one_changed) / baseline, 2),
            },
        }
        print(json.dumps(result, indent=2))
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            get(home_client, "/")
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
            print(out.getvalue(), file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
