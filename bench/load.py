"""Web load vs training: N concurrent clients on the status/home/model pages (plus uploads to
"Test one image") against a live `digits-seg serve`, with and without a training job running.

Phases, each `--duration` seconds, on one server and one jobs dir:
  alone      training only                          → the baseline images/s
  load       clients only                           → requests/s, p50/p95/p99, non-2xx
  both       clients while the same job trains       → requests/s ... and images/s under load
The ratio images/s (both) / images/s (alone) is what page load costs training. The web side
runs niced (`DIGITS_SEG_WEB_NICE`, default 10; `--web-nice 0` to compare). The clients run
in this process at nice 19, standing in for browsers on other machines.

    python bench/load.py                      # 20 clients, 15 s per phase
    python bench/load.py --clients 40 --duration 30 --web-nice 0
Prints one JSON object.
"""

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_jobs(root):
    """A finished SynthCity dataset (48 pairs, 64x64) and a tiny-fcn model trained one epoch on it."""
    from tests.reliability.conftest import build_tiny_model

    return build_tiny_model(__import__("pathlib").Path(root))


def start_serve(jobs, port, web_nice):
    import subprocess

    env = dict(os.environ, DIGITS_SEG_JOBS_DIR=jobs, DIGITS_SEG_PORT=str(port), DIGITS_SEG_WORKERS="1",
               DIGITS_SEG_WEB_NICE=str(web_nice), PYTHONUNBUFFERED="1")
    env.pop("REDIS_URL", None)
    log = open(os.path.join(os.path.dirname(jobs), "serve.log"), "wb")
    proc = subprocess.Popen([sys.executable, "-m", "digits_seg.cli", "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    import requests

    for _ in range(300):
        try:
            if requests.get("http://127.0.0.1:%d/index.json" % port, timeout=2).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("serve did not start")


def submit_training(url, dataset_id):
    import requests

    r = requests.post(url + "/models.json", json={"name": "load bench", "dataset_id": dataset_id, "network": "tiny-fcn",
                                                  "network_kind": "standard", "epochs": 100000, "batch_size": 4,
                                                  "device": "cpu", "loader_workers": 0, "val_interval": 1000,
                                                  "snapshot_interval": 1000})
    r.raise_for_status()
    return r.json()["id"]


def images_per_s(jobs, job_id, since, until):
    """Median training throughput logged by the job between two times (wall clock)."""
    from digits_seg.training.metrics_log import read_metrics

    values = []
    for rec in read_metrics(os.path.join(jobs, job_id), "train"):
        t = rec.get("time") or rec.get("t")
        if rec.get("images_per_s") and (t is None or since <= t <= until):
            values.append(rec["images_per_s"])
    values.sort()
    return values[len(values) // 2] if values else None


def hammer(url, paths, upload, clients, duration):
    """`clients` threads request `paths` round-robin (and every 10th request uploads an image) for `duration` s."""
    import requests

    latencies, failures, lock = [], [0], threading.Lock()
    stop = time.time() + duration

    def client(i):
        session = requests.Session()
        n = i
        while time.time() < stop:
            n += 1
            t0 = time.perf_counter()
            try:
                if upload and n % 10 == 0:
                    r = session.post(upload, files={"image": ("x.png", PNG, "image/png")},
                                     headers={"X-Requested-With": "bench"}, timeout=60)
                else:
                    r = session.get(url + paths[n % len(paths)], timeout=60)
                ok = 200 <= r.status_code < 300
            except requests.RequestException:
                ok = False
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                failures[0] += not ok

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1) if latencies else None
    return {"requests": len(latencies), "requests_per_s": round(len(latencies) / elapsed, 1), "p50_ms": pct(0.50),
            "p95_ms": pct(0.95), "p99_ms": pct(0.99), "non_2xx": failures[0]}


def _png():
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), np.uint8)).save(buf, "PNG")
    return buf.getvalue()


PNG = None


def main():
    global PNG
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--duration", type=float, default=15.0, help="seconds per phase")
    ap.add_argument("--web-nice", type=int, default=10, help="DIGITS_SEG_WEB_NICE of the server")
    ap.add_argument("--port", type=int, default=5391)
    args = ap.parse_args()
    PNG = _png()
    root = tempfile.mkdtemp(prefix="digits-seg-load-")
    proc = None
    try:
        built = build_jobs(root)
        proc = start_serve(built["jobs"], args.port, args.web_nice)
        os.nice(19)  # the clients stand in for browsers elsewhere: they must not take the training's CPU
        url = "http://127.0.0.1:%d" % args.port
        model = built["model"]
        paths = ["/", "/index.json", "/models/%s" % model, "/models/%s.json" % model,
                 "/jobs/status.json?ids=%s" % model, "/jobs/%s/status.json" % model]
        upload = url + "/models/%s/infer.json?encode=url" % model
        load = hammer(url, paths, upload, args.clients, args.duration)

        job = submit_training(url, built["dataset"])
        import requests

        while requests.get(url + "/jobs/%s/status.json" % job).json()["state"] != "running":
            time.sleep(0.5)
        time.sleep(min(10.0, args.duration / 2))  # warm-up: torch import, first batches
        t0 = time.time()
        time.sleep(args.duration)
        alone = images_per_s(built["jobs"], job, t0, time.time())
        t0 = time.time()
        both = hammer(url, paths, upload, args.clients, args.duration)
        under = images_per_s(built["jobs"], job, t0, time.time())
        print(json.dumps({
            "clients": args.clients, "duration_s": args.duration, "web_nice": args.web_nice,
            "cpus": os.cpu_count(), "load_without_training": load, "load_with_training": both,
            "training_images_per_s_alone": alone, "training_images_per_s_under_load": under,
            "training_ratio_under_load": round(under / alone, 3) if alone and under else None,
            "note": "one machine shared with other sessions: absolute numbers vary; the ratio is the result",
        }, indent=2))
    finally:
        if proc is not None:
            import signal

            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(40)
            except Exception:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
