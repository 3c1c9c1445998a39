"""Element-wise layers: ReLU, PReLU, ELU, Sigmoid, TanH, AbsVal, Power, Dropout, Softmax.

In-place use (top == bottom) is handled by the compiler, so these never modify inputs.
"""

import torch
import torch.nn.functional as F

from ..fillers import fill
from .base import CaffeLayer, register


class _Elementwise(CaffeLayer):
    def __init__(self, spec, fn):
        super().__init__(spec, [spec.in_shapes[0]])
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _one(spec):
    spec.expect_bottoms(1)


class ReLU(CaffeLayer):
    """ReLU / leaky ReLU; `inplace` is set by the compiler only where that is safe."""

    def __init__(self, spec, slope):
        super().__init__(spec, [spec.in_shapes[0]])
        self.slope = slope
        self.inplace = False

    def forward(self, x):
        if self.slope == 0.0:
            return F.relu(x, inplace=self.inplace)
        return F.leaky_relu(x, self.slope, inplace=self.inplace)


@register("ReLU")
def build_relu(spec):
    _one(spec)
    return ReLU(spec, spec.number(spec.param("relu_param"), "negative_slope", 0.0))


@register("Sigmoid")
def build_sigmoid(spec):
    _one(spec)
    return _Elementwise(spec, torch.sigmoid)


@register("TanH")
def build_tanh(spec):
    _one(spec)
    return _Elementwise(spec, torch.tanh)


@register("AbsVal")
def build_absval(spec):
    _one(spec)
    return _Elementwise(spec, torch.abs)


@register("ELU")
def build_elu(spec):
    _one(spec)
    alpha = spec.number(spec.param("elu_param"), "alpha", 1.0)
    return _Elementwise(spec, lambda x: F.elu(x, alpha))


class Power(CaffeLayer):
    """y = (shift + scale * x) ^ power."""

    def __init__(self, spec, power, scale, shift):
        super().__init__(spec, [spec.in_shapes[0]])
        self.power, self.scale, self.shift = power, scale, shift

    def forward(self, x):
        y = x
        if self.scale != 1.0:
            y = y * self.scale
        if self.shift != 0.0:
            y = y + self.shift
        if self.power != 1.0:
            y = y.pow(self.power)
        if y is x:
            y = x.clone()
        return y


@register("Power")
def build_power(spec):
    _one(spec)
    p = spec.param("power_param")
    return Power(spec, spec.number(p, "power", 1.0), spec.number(p, "scale", 1.0),
                 spec.number(p, "shift", 0.0))


class Dropout(CaffeLayer):
    """Caffe's inverted dropout: scale kept units by 1/(1-ratio) in training only."""

    def __init__(self, spec, ratio):
        super().__init__(spec, [spec.in_shapes[0]])
        self.ratio = ratio

    def forward(self, x):
        return F.dropout(x, self.ratio, self.training)


@register("Dropout")
def build_dropout(spec):
    _one(spec)
    ratio = spec.number(spec.param("dropout_param"), "dropout_ratio", 0.5, float, 0.0)
    if ratio >= 1.0:
        raise spec.error("dropout_ratio must be < 1, got %s" % ratio)
    return Dropout(spec, ratio)


class Softmax(CaffeLayer):
    def __init__(self, spec, axis):
        super().__init__(spec, [spec.in_shapes[0]])
        self.axis = axis

    def forward(self, x):
        return torch.softmax(x, self.axis)


@register("Softmax")
def build_softmax(spec):
    _one(spec)
    axis = spec.axis(spec.param("softmax_param").get("axis", 1), len(spec.in_shapes[0]))
    return Softmax(spec, axis)


class PReLU(CaffeLayer):
    def __init__(self, spec, channels, shared, filler):
        super().__init__(spec, [spec.in_shapes[0]])
        self.shared = shared
        self.weight = torch.nn.Parameter(torch.empty(1 if shared else channels))
        fill(self.weight.data, filler, "%s filler" % spec.where())
        if filler is None:
            with torch.no_grad():
                self.weight.fill_(0.25)

    def forward(self, x):
        return F.prelu(x, self.weight)

    def caffe_blobs(self):
        return [self.weight]


@register("PReLU")
def build_prelu(spec):
    _one(spec)
    shape = spec.in_shapes[0]
    if len(shape) < 2:
        raise spec.error("needs an input with a channel axis, got shape %s" % list(shape))
    p = spec.param("prelu_param")
    return PReLU(spec, shape[1], bool(p.get("channel_shared", False)), p.get("filler"))
