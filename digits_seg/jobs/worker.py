"""Run an RQ worker for digits-seg: pinned to one GPU (or CPU, or all GPUs), advertising itself in Redis."""

import itertools
import os
import socket
import time

from ..gpus import list_gpus
from .queue import WORKER_INFO_TTL_S, advertise_worker, connect, get_queue


def worker_queues(gpu):
    """Queue names a worker listens on, most specific first."""
    if gpu is None:
        return ["cpu", "default"]
    if gpu == "all":
        # Multi-GPU (DistributedDataParallel) jobs only: see queue.py's docstring.
        return ["gpu.%s.all" % socket.gethostname(), "gpu.all"]
    return ["gpu.%s.%s" % (socket.gethostname(), gpu), "gpu", "default"]


def run_worker(redis_url, gpu=None, name=None, burst=False, logging_level="WARNING"):
    """Work jobs until stopped (SIGTERM: finish the current job; a second one: stop now).

    `gpu` is a physical GPU index; it is pinned with CUDA_VISIBLE_DEVICES before anything
    can import torch, so tasks see it as cuda:0. `gpu="all"` pins nothing (the inherited
    CUDA_VISIBLE_DEVICES, if any, still limits it) and serves multi-GPU jobs only.
    """
    gpu_info = None
    if gpu == "all":
        visible = list_gpus()
        gpu_info = {"name": ", ".join(sorted({g["name"] for g in visible})) or "no GPU visible",
                    "memory_mb": min((g["memory_mb"] for g in visible), default=None), "count": len(visible)}
        os.environ["DIGITS_SEG_WORKER_GPU"] = "all"  # job.json records the job ran on all GPUs
    elif gpu is not None:
        matches = [g for g in list_gpus() if g["index"] == int(gpu)]
        gpu_info = matches[0] if matches else {"index": int(gpu), "name": "GPU %s" % gpu, "memory_mb": None}
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        os.environ["DIGITS_SEG_WORKER_GPU"] = str(gpu)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker must not grab a GPU
        os.environ.pop("DIGITS_SEG_WORKER_GPU", None)

    from rq import Worker
    from rq.serializers import JSONSerializer

    conn = connect(redis_url)
    host = socket.gethostname()
    name = name or "%s.%s.%d" % (host, "gpu%s" % gpu if gpu is not None else "cpu", os.getpid())

    class SegWorker(Worker):
        """RQ worker that also publishes host/GPU/current-job info for the model form."""

        def heartbeat(self, timeout=None, pipeline=None):
            super().heartbeat(timeout, pipeline)
            try:
                current = self.get_current_job_id()
            except Exception:
                current = None
            info = {"name": self.name, "host": host, "pid": os.getpid(),
                    "gpu": None if gpu is None else gpu if gpu == "all" else int(gpu),
                    "gpu_count": gpu_info.get("count", 1) if gpu_info else 0,
                    "gpu_name": gpu_info["name"] if gpu_info else None,
                    "memory_mb": gpu_info["memory_mb"] if gpu_info else None,
                    "busy_job": current.decode() if isinstance(current, bytes) else current}
            try:
                advertise_worker(self.connection, self.name, info)
            except Exception:
                pass

    import redis

    queues = [get_queue(conn, q) for q in worker_queues(gpu)]
    worker_name = name
    for attempt in itertools.count(1):
        worker = SegWorker(queues, connection=conn, name=worker_name, serializer=JSONSerializer,
                           worker_ttl=WORKER_INFO_TTL_S, job_monitoring_interval=5)
        try:
            worker.work(burst=burst, logging_level=logging_level, with_scheduler=False)
            return
        except Exception as exc:
            # Redis went away (killed, restarting; RQ surfaces that as ConnectionError or as
            # whatever its command failed with): wait for it here instead of exiting, so the
            # worker does not crash-loop while `serve` restarts its embedded Redis.
            if not isinstance(exc, redis.exceptions.ConnectionError) and wait_for_redis(conn, 0.5):
                raise  # Redis is fine: a real error
            print("worker %s: lost Redis (%s); waiting for it to come back" % (worker_name, exc), flush=True)
            if not wait_for_redis(conn, REDIS_WAIT_S):
                raise
            worker_name = "%s.r%d" % (name, attempt)  # the old name may still be registered
        finally:
            try:
                conn.delete("digits_seg:worker:" + worker_name)
            except Exception:
                pass


REDIS_WAIT_S = 300
"""Seconds a worker waits for a vanished Redis to answer again before it gives up and exits."""


def wait_for_redis(conn, timeout):
    """Ping `conn` until it answers (True) or `timeout` seconds passed (False)."""
    import redis

    deadline = time.time() + timeout
    while True:
        try:
            conn.ping()
            return True
        except redis.exceptions.RedisError:
            if time.time() >= deadline:
                return False
            time.sleep(0.5)
