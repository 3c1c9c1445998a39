"""Layer registry and the pieces every Caffe layer implementation shares.

A builder is registered per Caffe type name and called with a `LayerSpec` (the layer's
prototxt message, its input shapes and phase); it returns a `CaffeLayer`, a
`torch.nn.Module` whose `forward(*bottoms)` returns one tensor (or a tuple when the layer
has several tops) and whose `out_shapes` were computed at build time for the layer table.
"""

import torch

from ...errors import ValidationError

LAYERS = {}
"""Caffe type name -> builder(spec) -> CaffeLayer; filled by `register` at import."""


def register(*type_names):
    """Register a builder under one or more Caffe type names."""
    def deco(fn):
        for name in type_names:
            LAYERS[name] = fn
        return fn
    return deco


def _empty_message():
    from ..prototxt import Message
    return Message()


class LayerSpec:
    """What a builder needs: the layer message, bottom shapes (with N), phase, top count."""

    def __init__(self, msg, in_shapes, phase="train", num_tops=1, source="<string>"):
        self.msg = msg
        self.name = str(msg.get("name", "?"))
        self.type = str(msg.get("type", "?"))
        self.in_shapes = [tuple(s) for s in in_shapes]
        self.phase = phase
        self.num_tops = num_tops
        self.source = source

    @property
    def line(self):
        return getattr(self.msg, "line", None)

    def where(self):
        """Describe the layer for an error message: name, type and source line."""
        line = " at %s line %s" % (self.source, self.line) if self.line else ""
        return "layer '%s' (%s%s)" % (self.name, self.type, line)

    def error(self, text, fix=None):
        """Return a ValidationError about this layer (the caller raises it)."""
        msg = "%s: %s" % (self.where(), text)
        if fix:
            msg += "; " + fix
        return ValidationError(msg, field="network")

    def param(self, name):
        """Return the sub-message `name` (e.g. `convolution_param`) or an empty one."""
        value = self.msg.get(name)
        if value is None:
            return _empty_message()
        if not hasattr(value, "get_all"):
            raise self.error("%s must be a block { ... }, got %r" % (name, value))
        return value

    def expect_bottoms(self, lo, hi=None):
        n = len(self.in_shapes)
        hi = lo if hi is None else hi
        if n < lo or (hi >= 0 and n > hi):
            want = str(lo) if lo == hi else ("%d or more" % lo if hi < 0 else "%d to %d" % (lo, hi))
            raise self.error("needs %s bottom blob(s), got %d" % (want, n))

    def number(self, p, field, default, kind=float, minimum=None):
        """Read a scalar field of sub-message `p`, checking its type and lower bound."""
        value = p.get(field, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error("%s must be a number, got %r" % (field, value))
        if kind is int and int(value) != value:
            raise self.error("%s must be an integer, got %r" % (field, value))
        value = kind(value)
        if minimum is not None and value < minimum:
            raise self.error("%s must be >= %s, got %s" % (field, minimum, value))
        return value

    def choice(self, p, field, default, allowed):
        value = str(p.get(field, default)).upper()
        if value not in allowed:
            raise self.error("%s: %s is not supported; use one of %s"
                             % (field, value, ", ".join(allowed)))
        return value

    def numbers(self, p, field, kind=int):
        """Read a repeated numeric field of sub-message `p` as a list of `kind`."""
        out = []
        for value in p.get_all(field):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (kind is int and int(value) != value):
                raise self.error("%s must be %s, got %r"
                                 % (field, "an integer" if kind is int else "a number", value))
            out.append(kind(value))
        return out

    def axis(self, value, ndim):
        """Canonicalise a possibly negative axis against `ndim` dims."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error("axis must be an integer, got %r" % (value,))
        ax = int(value)
        if ax < 0:
            ax += ndim
        if not 0 <= ax < ndim:
            raise self.error("axis %d is out of range for a %d-D blob" % (int(value), ndim))
        return ax


class CaffeLayer(torch.nn.Module):
    """Base module: `out_shapes` (from build time) and `caffe_blobs()` in Caffe's order."""

    def __init__(self, spec, out_shapes):
        super().__init__()
        self.caffe_name = spec.name
        self.caffe_type = spec.type
        self.out_shapes = [tuple(int(d) for d in s) for s in out_shapes]

    def caffe_blobs(self):
        """Return the learnable/stat tensors in Caffe's blob order (weights first)."""
        return []

    def extra_repr(self):
        return "%s %s" % (self.caffe_type, self.caffe_name)


def hw(spec, p, base, default=None, required=False):
    """Read a 2-D geometry value (`kernel_size`/`kernel_h`+`kernel_w`, also repeated)."""
    h, w = p.get(base + "_h"), p.get(base + "_w")
    if base == "kernel" and h is None:
        h, w = p.get("kernel_h"), p.get("kernel_w")
    single = p.get_all(base if base != "kernel" else "kernel_size")
    if h is not None or w is not None:
        if h is None or w is None:
            raise spec.error("both %s_h and %s_w must be given" % (base, base))
        vals = (h, w)
    elif len(single) == 1:
        vals = (single[0], single[0])
    elif len(single) == 2:
        vals = tuple(single)
    elif len(single) > 2:
        raise spec.error("only 2-D %s is supported, got %d values" % (base, len(single)))
    elif required:
        raise spec.error("%s is required" % (base if base != "kernel" else "kernel_size"))
    else:
        vals = (default, default)
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise spec.error("%s must be a non-negative integer, got %r" % (base, v))
    return tuple(int(v) for v in vals)


def param_mults(spec, nblobs):
    """Return [(lr_mult, decay_mult)] per blob from the layer's `param { }` blocks."""
    params = spec.msg.get_all("param")
    if any(not hasattr(p, "get_all") for p in params):
        raise spec.error("param must be a block like param { lr_mult: 1 decay_mult: 1 }")
    if len(params) > nblobs and nblobs >= 0:
        raise spec.error("has %d param blocks but only %d blob(s)" % (len(params), nblobs))
    out = []
    for i in range(nblobs):
        p = params[i] if i < len(params) else None
        lr = spec.number(p, "lr_mult", 1.0) if p is not None else 1.0
        dm = spec.number(p, "decay_mult", 1.0) if p is not None else 1.0
        out.append((lr, dm))
    return out
