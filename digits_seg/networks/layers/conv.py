"""Convolution, Deconvolution and InnerProduct with Caffe's geometry and blob layout."""

import torch
import torch.nn.functional as F

from ..fillers import fill
from .base import CaffeLayer, hw, register


def _conv_geometry(spec):
    p = spec.param("convolution_param")
    if not p.has("num_output"):
        raise spec.error("convolution_param.num_output is required")
    geo = {
        "num_output": spec.number(p, "num_output", 0, int, 1),
        "kernel": hw(spec, p, "kernel", required=True),
        "stride": hw(spec, p, "stride", 1),
        "pad": hw(spec, p, "pad", 0),
        "dilation": hw(spec, p, "dilation", 1),
        "group": spec.number(p, "group", 1, int, 1),
        "bias": bool(p.get("bias_term", True)),
        "axis": p.get("axis", 1),
    }
    if 0 in geo["kernel"] or 0 in geo["stride"] or 0 in geo["dilation"]:
        raise spec.error("kernel, stride and dilation must be >= 1")
    if geo["axis"] != 1:
        raise spec.error("only axis 1 (N×C×H×W) convolution is supported")
    return p, geo


class _ConvBase(CaffeLayer):
    def __init__(self, spec, out_shapes, weight_shape, nout, geo, p):
        super().__init__(spec, out_shapes)
        self.stride, self.padding = geo["stride"], geo["pad"]
        self.dilation, self.groups = geo["dilation"], geo["group"]
        self.weight = torch.nn.Parameter(torch.empty(weight_shape))
        self.notes = [n for n in [fill(self.weight.data, p.get("weight_filler"),
                                       "%s weight_filler" % spec.where())] if n]
        if geo["bias"]:
            self.bias = torch.nn.Parameter(torch.empty(nout))
            fill(self.bias.data, p.get("bias_filler"), "%s bias_filler" % spec.where())
        else:
            self.bias = None

    def caffe_blobs(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


class Convolution(_ConvBase):
    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class Deconvolution(_ConvBase):
    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  0, self.groups, self.dilation)


def _check_4d(spec):
    spec.expect_bottoms(1)
    if len(spec.in_shapes[0]) != 4:
        raise spec.error("expects a 4-D N×C×H×W input, got shape %s" % list(spec.in_shapes[0]))
    return spec.in_shapes[0]


def _checked_geometry(spec):
    """Input shape and convolution geometry of a (de)convolution, with the group rule checked."""
    n, c, h, w = _check_4d(spec)
    p, g = _conv_geometry(spec)
    if c % g["group"] or g["num_output"] % g["group"]:
        raise spec.error("input channels (%d) and num_output (%d) must be divisible by group %d"
                         % (c, g["num_output"], g["group"]))
    return n, c, h, w, p, g


@register("Convolution")
def build_convolution(spec):
    n, c, h, w, p, g = _checked_geometry(spec)
    out = []
    for size, k, s, pad, d in zip((h, w), g["kernel"], g["stride"], g["pad"], g["dilation"]):
        ext = d * (k - 1) + 1
        o = (size + 2 * pad - ext) // s + 1
        if size + 2 * pad < ext:
            raise spec.error("kernel (%d with dilation %d) is larger than the padded input %d×%d"
                             % (k, d, h, w), "use a larger input size or more padding")
        out.append(o)
    wshape = (g["num_output"], c // g["group"]) + g["kernel"]
    return Convolution(spec, [(n, g["num_output"], out[0], out[1])], wshape, g["num_output"], g, p)


@register("Deconvolution")
def build_deconvolution(spec):
    n, c, h, w, p, g = _checked_geometry(spec)
    out = []
    for size, k, s, pad, d in zip((h, w), g["kernel"], g["stride"], g["pad"], g["dilation"]):
        o = s * (size - 1) + d * (k - 1) + 1 - 2 * pad
        if o < 1:
            raise spec.error("output size would be %d (too much padding)" % o)
        out.append(o)
    wshape = (c, g["num_output"] // g["group"]) + g["kernel"]
    return Deconvolution(spec, [(n, g["num_output"], out[0], out[1])], wshape, g["num_output"], g, p)


class InnerProduct(CaffeLayer):
    def __init__(self, spec, out_shapes, axis, k, nout, p):
        super().__init__(spec, out_shapes)
        self.axis, self.k = axis, k
        self.weight = torch.nn.Parameter(torch.empty(nout, k))
        fill(self.weight.data, p.get("weight_filler"), "%s weight_filler" % spec.where())
        self.bias = None
        if bool(p.get("bias_term", True)):
            self.bias = torch.nn.Parameter(torch.empty(nout))
            fill(self.bias.data, p.get("bias_filler"), "%s bias_filler" % spec.where())

    def forward(self, x):
        flat = x.flatten(self.axis)
        if flat.shape[-1] != self.k:
            from ...errors import ValidationError
            raise ValidationError("layer '%s' (InnerProduct) was built for %d inputs per item but "
                                  "got %d (input %s); compile the network for this input size"
                                  % (self.caffe_name, self.k, flat.shape[-1], list(x.shape)))
        return F.linear(flat, self.weight, self.bias)

    def caffe_blobs(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


@register("InnerProduct")
def build_inner_product(spec):
    spec.expect_bottoms(1)
    p = spec.param("inner_product_param")
    if not p.has("num_output"):
        raise spec.error("inner_product_param.num_output is required")
    if p.get("transpose", False):
        raise spec.error("transpose: true is not supported")
    shape = spec.in_shapes[0]
    axis = spec.axis(p.get("axis", 1), len(shape))
    nout = spec.number(p, "num_output", 0, int, 1)
    k = 1
    for d in shape[axis:]:
        k *= d
    return InnerProduct(spec, [tuple(shape[:axis]) + (nout,)], axis, k, nout, p)
