"""GPU discovery without initialising CUDA (the worker's parent process forks)."""

import os
import shutil
import subprocess


def list_gpus():
    """Visible NVIDIA GPUs as dicts {index, name, memory_mb, used_mb}; [] when none.

    Uses nvidia-smi so that no CUDA context is created in this process. Honours
    CUDA_VISIBLE_DEVICES when it lists indices.
    """
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,name,memory.total,memory.used",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    gpus = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            continue
        try:
            gpus.append({"index": int(parts[0]), "name": parts[1], "memory_mb": int(float(parts[2])),
                         "used_mb": int(float(parts[3]))})
        except ValueError:
            continue
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() != "":
        wanted = [v.strip() for v in visible.split(",")]
        if all(w.isdigit() for w in wanted):
            gpus = [g for g in gpus if str(g["index"]) in wanted]
    elif visible is not None:
        return []
    return gpus
