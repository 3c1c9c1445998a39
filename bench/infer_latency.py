"""Benchmark: server time for one 512×512 image vs a bare forward pass of the same model, same run.

Builds a model folder with FCN-AlexNet (21 classes, filler-initialised weights saved as
best.h5, a mean pixel in preprocess.json), then measures, interleaved round by round:
  - `forward`: the compiled net on a ready input tensor (torch.inference_mode) — the baseline;
  - `predict`: `Predictor.predict(uint8 image)` (preprocess, forward, argmax, to numpy) in PyTorch;
  - `predict_onnxruntime` (CPU only): the same with the snapshot's verified ONNX graph run in
               ONNX Runtime (`backend="onnxruntime"`; the export time is reported once, and the
               share of pixels where both engines predict the same class);
  - `http`:    `POST /models/<id>/infer.json?encode=none` with the PNG through a real HTTP
               socket to the app (`create_app` under werkzeug's threaded server): client
               round trip, and `http_server` = the response's `timing.server_s` (decode,
               cached-model lookup, predict, histogram; the JSON answer without images).
Prints JSON: p50/p95 per path and the overhead ratios predict/forward and http/forward.

    python bench/infer_latency.py [--network fcn-alexnet] [--size 512] [--runs 10] [--device cpu]
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

import numpy as np  # noqa: E402


def percentile(values, q):
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def build_model(jobs_dir, network, classes, size):
    """Write a finished model job the way the trainer does; return (job id, folder)."""
    import torch

    from digits_seg.fsutil import write_json_atomic
    from digits_seg.jobs.job import JobState
    from digits_seg.jobs.store import JobStore
    from digits_seg.networks.compiler import compile_net
    from digits_seg.networks.standard import standard_prototxt
    from digits_seg.networks.weights import save_h5

    store = JobStore(jobs_dir)
    job = store.create("model", "bench %s" % network, {"network": {"kind": "standard", "name": network}})
    d = store.job_dir(job.id)
    text = standard_prototxt(network, classes)
    with open(os.path.join(d, "network.prototxt"), "w") as f:
        f.write(text)
    torch.manual_seed(0)
    save_h5(compile_net(text, phase="train"), os.path.join(d, "best.h5"))
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("\n".join("class%d" % i for i in range(classes)) + "\n")
    write_json_atomic(os.path.join(d, "preprocess.json"), {
        "channels": 3, "channel_order": "RGB", "mean_subtraction": "pixel",
        "mean_pixel": [104.0, 117.0, 123.0], "scale": 1.0, "input_size": [size, size]})
    for state in (JobState.RUNNING, JobState.DONE):
        store.set_state(job.id, state)
    return job.id, d


def start_http(jobs_dir, device):
    """Serve the real app (create_app) on a free loopback port; return (url, stop)."""
    import logging

    from werkzeug.serving import make_server

    from digits_seg.config import load_settings
    from digits_seg.web.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log lines in the JSON output
    settings = load_settings({"jobs_dir": jobs_dir, "infer_device": device}, environ={})
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return "http://127.0.0.1:%d" % server.server_port, server.shutdown


def http_once(url, job_id, png):
    import urllib.request

    boundary = "----benchboundary"
    body = (("--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
             "Content-Type: image/png\r\n\r\n" % boundary).encode() + png + ("\r\n--%s--\r\n" % boundary).encode())
    req = urllib.request.Request("%s/models/%s/infer.json?encode=none" % (url, job_id), data=body, method="POST",
                                 headers={"Content-Type": "multipart/form-data; boundary=%s" % boundary,
                                          "X-Requested-With": "digits-seg", "Accept": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        doc = json.loads(resp.read())
    return time.perf_counter() - t0, doc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--network", default="fcn-alexnet")
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime path")
    args = ap.parse_args(argv)

    import torch
    from PIL import Image

    from digits_seg.inference.predictor import Predictor

    tmp = tempfile.mkdtemp(prefix="bench-infer-")
    try:
        t0 = time.perf_counter()
        job_id, model_dir = build_model(tmp, args.network, args.classes, args.size)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        predictor = Predictor.from_model_dir(model_dir, device=args.device, backend="torch")
        load_s = time.perf_counter() - t0
        ort = None
        if predictor.device.type == "cpu" and not args.no_onnx:
            t0 = time.perf_counter()
            ort = Predictor.from_model_dir(model_dir, device="cpu", backend="onnxruntime")
            export_s = time.perf_counter() - t0
        image = np.random.RandomState(0).randint(0, 256, (args.size, args.size, 3)).astype(np.uint8)
        x = predictor.to_tensor(image)
        net = predictor.net

        def sync():
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()

        def bare():
            with torch.inference_mode():
                net(x)
            sync()

        def pred():
            predictor.predict(image)
            sync()

        def pred_ort():
            ort.predict(image)

        def in_fresh_thread(fn):
            # The HTTP server runs each request in a new thread; on a loaded CPU, torch's
            # intra-op threading behaves differently there than in the main thread, so the
            # baseline is also measured that way (forward_thread) for a like-for-like ratio.
            def run():
                th = threading.Thread(target=fn)
                th.start()
                th.join()
            return run

        url = stop = None
        if not args.no_http:
            url, stop = start_http(tmp, args.device)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        png = buf.getvalue()

        times = {"forward": [], "forward_thread": [], "predict": [], "predict_onnxruntime": [], "http": [],
                 "http_server": []}
        rng = np.random.RandomState(1)
        for i in range(args.warmup + args.runs):
            order = [("forward", bare), ("forward_thread", in_fresh_thread(bare)), ("predict", pred)]
            if ort is not None:
                order.append(("predict_onnxruntime", pred_ort))
            rng.shuffle(order)  # no path always runs first (or right after another) in a round
            for name, fn in order:
                t = time.perf_counter()
                fn()
                dt = time.perf_counter() - t
                if i >= args.warmup:
                    times[name].append(dt)
            if url:
                dt, doc = http_once(url, job_id, png)
                if i >= args.warmup:
                    times["http"].append(dt)
                    server = (doc.get("timing") or {}).get("server_s")
                    if server is not None:
                        times["http_server"].append(server)
        if stop:
            stop()
        result = {
            "benchmark": "infer_latency",
            "network": args.network, "classes": args.classes, "image": [args.size, args.size],
            "device": str(predictor.device), "torch_threads": torch.get_num_threads(), "runs": args.runs,
            "model_build_s": round(build_s, 3), "model_load_s": round(load_s, 3),
        }
        for name, vals in times.items():
            if vals:
                result[name] = {"p50_s": round(percentile(vals, 50), 4), "p95_s": round(percentile(vals, 95), 4)}
        if ort is not None:
            same = float((ort.predict(image) == predictor.predict(image)).mean())
            result.update({"onnx_export_s": round(export_s, 2),
                           "onnx_exporter": (getattr(ort, "onnx_report", None) or {}).get("exporter"),
                           "onnx_exporter_notes": (getattr(ort, "onnx_report", None) or {}).get("exporter_notes"),
                           "onnxruntime_same_class_share": round(same, 6),
                           "ratio_onnxruntime_vs_pytorch_predict_p50": round(
                               result["predict_onnxruntime"]["p50_s"] / result["predict"]["p50_s"], 3)})
        base = result["forward"]["p50_s"]
        result["ratio_predict_vs_forward_p50"] = round(result["predict"]["p50_s"] / base, 3)
        base_thread = result["forward_thread"]["p50_s"]
        if "http" in result:
            result["ratio_http_vs_forward_p50"] = round(result["http"]["p50_s"] / base, 3)
            result["ratio_http_vs_forward_thread_p50"] = round(result["http"]["p50_s"] / base_thread, 3)
        if "http_server" in result:
            result["ratio_http_server_vs_forward_thread_p50"] = round(result["http_server"]["p50_s"] / base_thread, 3)
        print(json.dumps(result, indent=2))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
