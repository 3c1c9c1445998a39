"""Caffe's weight fillers (initialisers), implemented on torch tensors.

Caffe computes fan-in/fan-out from the blob shape: for a blob of shape (num, channels,
...) fan_in = count / num and fan_out = count / channels. A missing filler means Caffe's
default `constant` 0, which is why prototxts for training always name one.
"""

import math

import torch

from ..errors import ValidationError

FILLER_TYPES = ("constant", "gaussian", "uniform", "xavier", "msra", "bilinear",
                "positive_unitball")


def _fans(shape):
    count = 1
    for d in shape:
        count *= int(d)
    num = int(shape[0]) if len(shape) > 0 else 1
    channels = int(shape[1]) if len(shape) > 1 else 1
    return count / max(num, 1), count / max(channels, 1)


def _norm_count(filler, shape, where):
    fan_in, fan_out = _fans(shape)
    norm = str(filler.get("variance_norm", "FAN_IN")).upper()
    if norm == "FAN_IN":
        return fan_in
    if norm == "FAN_OUT":
        return fan_out
    if norm == "AVERAGE":
        return (fan_in + fan_out) / 2.0
    raise ValidationError("%s: variance_norm %s is not one of FAN_IN, FAN_OUT, AVERAGE"
                          % (where, norm), field="network")


def bilinear_kernel(size):
    """Return a size×size bilinear interpolation kernel (FCN's upsampling weights)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    line = 1 - (og - center).abs() / factor
    return (line[:, None] * line[None, :]).float()


def fill(tensor, filler, where="filler", default="constant"):
    """Fill `tensor` in place as Caffe would for FillerParameter `filler` (a Message or None).

    Returns a note (str) when part of the filler is ignored, else None.
    """
    def get(key, dflt=None):
        value = filler.get(key, dflt) if filler is not None else dflt
        if key != "type" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValidationError("%s: %s must be a number, got %r" % (where, key, value),
                                  field="network")
        return value
    kind = str(get("type", default)).lower()
    shape = tuple(tensor.shape)
    note = None
    with torch.no_grad():
        if kind == "constant":
            tensor.fill_(float(get("value", 0.0)))
        elif kind == "gaussian":
            if get("std", 1.0) < 0:
                raise ValidationError("%s: std must be >= 0, got %s" % (where, get("std")),
                                      field="network")
            tensor.normal_(float(get("mean", 0.0)), float(get("std", 1.0)))
            if int(get("sparse", -1)) >= 0:
                note = "%s: gaussian 'sparse' is ignored (dense gaussian used)" % where
        elif kind == "uniform":
            if get("min", 0.0) > get("max", 1.0):
                raise ValidationError("%s: min (%s) is above max (%s)" % (where, get("min", 0.0),
                                      get("max", 1.0)), field="network")
            tensor.uniform_(float(get("min", 0.0)), float(get("max", 1.0)))
        elif kind == "xavier":
            n = _norm_count(filler, shape, where)
            scale = math.sqrt(3.0 / n)
            tensor.uniform_(-scale, scale)
        elif kind == "msra":
            n = _norm_count(filler, shape, where)
            tensor.normal_(0.0, math.sqrt(2.0 / n))
        elif kind == "bilinear":
            if len(shape) != 4 or shape[2] != shape[3]:
                raise ValidationError("%s: the bilinear filler needs a 4-D blob with a square "
                                      "kernel, got shape %s" % (where, list(shape)), field="network")
            tensor.copy_(bilinear_kernel(shape[2]).expand(shape))
        elif kind == "positive_unitball":
            tensor.uniform_(0.0, 1.0)
            if len(shape) > 0 and tensor.numel() > 0 and tensor.device.type != "meta":
                flat = tensor.view(shape[0], -1)
                flat.div_(flat.sum(dim=1, keepdim=True))
        else:
            raise ValidationError("%s: unknown filler type '%s'; supported: %s"
                                  % (where, kind, ", ".join(FILLER_TYPES)), field="network")
    return note
