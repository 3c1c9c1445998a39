"""The "worker check" job: proves a worker runs jobs, reports its device, counts steps."""

import os
import platform
import socket
import time

from ..errors import JobAborted, ValidationError


def check_worker(job_dir, params, *, on_progress, should_stop, log, settings=None):
    """Count `steps` steps of `interval_s` seconds, then report what the worker sees.

    Useful to users (is my GPU worker alive? does it see CUDA?) and to the tests that
    exercise the queue without training anything.
    """
    steps = int(params.get("steps", 5))
    interval = float(params.get("interval_s", 0.2))
    if params.get("fail"):
        raise ValidationError(str(params["fail"]))
    for i in range(steps):
        if should_stop():
            raise JobAborted()
        time.sleep(interval)
        with open(os.path.join(job_dir, "steps.txt"), "a") as f:
            f.write("%d %d\n" % (i, os.getpid()))
        on_progress((i + 1) / steps, "step %d of %d" % (i + 1, steps))
    info = {"host": socket.gethostname(), "python": platform.python_version(), "steps": steps,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if params.get("probe_torch"):
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["device_name"] = torch.cuda.get_device_name(0)
    log("Worker check: %s" % info)
    return info
