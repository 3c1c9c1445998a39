"""Field types of the training declaration that need parsing beyond a number: device names, random scale.

Each parser raises ValueError with a phrase ("must be ...") that `declare.check` prefixes
with the field's label.
"""

from typing import Annotated, Optional

from pydantic import BeforeValidator

from ..declare import blank

MAX_PROCESSES = 64
"""Largest N of `gpus:N` / `cpus:N` (one machine's processes)."""


def parse_device(value):
    """The jobs layer's device names.

    'auto' (a GPU if a worker has one, else CPU), 'cpu', 'gpu' (any GPU), 'gpu:K[@host]'
    (one GPU), 'gpus:N[@host]' (N GPUs of one machine, N processes with DistributedDataParallel
    over NCCL) and 'cpus:N' (N CPU processes with DistributedDataParallel over gloo: the same
    code path as 'gpus:N', for machines without GPUs and for testing it without one).
    """
    if blank(value):
        return "auto"
    if not isinstance(value, str):
        raise ValueError("must be a device name such as auto, cpu or gpu:0, got %r" % (value,))
    s = value.strip().lower()
    if s in ("auto", "any"):
        return "auto"
    if s == "cpu":
        return "cpu"
    if s in ("cuda", "gpu", "any gpu"):
        return "gpu"
    host = value.strip().partition("@")[2]
    for prefix, canonical in (("cuda:", "gpu"), ("gpu:", "gpu"), ("gpus:", "gpus"), ("cpus:", "cpus")):
        if s.startswith(prefix):
            number, _, has_host = s[len(prefix):].partition("@")
            if not number.isdigit():
                break
            if canonical != "gpu" and not 1 <= int(number) <= MAX_PROCESSES:
                raise ValueError("%s needs a process count from 1 to %d, got %r" % (prefix[:-1], MAX_PROCESSES, value))
            if canonical == "cpus" and has_host:
                raise ValueError("cpus:N runs on any CPU worker; it takes no @host (got %r)" % (value,))
            return "%s:%d" % (canonical, int(number)) + ("@" + host if has_host else "")
    raise ValueError("%r is not a device. Use auto, cpu, gpu, gpu:K[@host], gpus:N[@host] (N GPUs of one machine) "
                     "or cpus:N" % (value,))


MAX_SCALE = 8.0
"""Largest random-scale factor (a larger one only pads or blows up the crop)."""


def parse_scale(value):
    """Random scale as [min, max] factors; '' / None / '1' mean off; '0.5-2' or '0.5,2' or [0.5, 2]."""
    if blank(value) or value is False:
        return None
    if isinstance(value, bool):
        raise ValueError("must be a range of factors such as 0.5-2.0, not true")
    if isinstance(value, str):
        parts = [x for x in value.replace("-", ",").split(",") if x.strip()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [value]
    try:
        vals = [float(x) for x in parts if not isinstance(x, bool)]
    except (TypeError, ValueError):
        raise ValueError("must be 'min-max', e.g. 0.5-2.0, got %r" % (value,))
    if len(vals) == 1:
        v = vals[0]
        vals = [min(v, 1.0 / v), max(v, 1.0 / v)] if v > 0 else [0, 0]
    if len(vals) != 2 or not (0 < vals[0] <= vals[1] <= MAX_SCALE):
        raise ValueError("must be two factors 0 < min <= max <= %g, e.g. 0.5-2.0" % MAX_SCALE)
    return None if vals == [1.0, 1.0] else vals


Device = Annotated[str, BeforeValidator(parse_device)]
Scale = Annotated[Optional[list[float]], BeforeValidator(parse_scale)]
