"""BatchNorm (Caffe's three blobs), Scale, Bias and LRN."""

import torch
import torch.nn.functional as F

from ..fillers import fill
from .base import CaffeLayer, register


class BatchNorm(CaffeLayer):
    """Caffe BatchNorm: no affine part; blobs are mean sum, variance sum and their weight.

    Caffe accumulates `mean = maf * mean + batch_mean` and `scale = maf * scale + 1`, so
    the running statistics are blob / scale. Without `use_global_stats`, Caffe uses batch
    statistics in TRAIN and the stored ones in TEST; we follow `module.training`, which
    the compiler sets from the phase.
    """

    def __init__(self, spec, channels, use_global, maf, eps):
        super().__init__(spec, [spec.in_shapes[0]])
        self.use_global, self.maf, self.eps = use_global, maf, eps
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("variance", torch.zeros(channels))
        self.register_buffer("scale_factor", torch.zeros(1))

    def running_stats(self):
        s = self.scale_factor
        factor = torch.where(s == 0, torch.zeros_like(s), 1.0 / torch.where(s == 0, torch.ones_like(s), s))
        return self.mean * factor, self.variance * factor

    def forward(self, x):
        use_global = self.use_global if self.use_global is not None else not self.training
        if use_global:
            mean, var = self.running_stats()
            return F.batch_norm(x, mean.to(x.dtype), var.to(x.dtype), None, None, False, 0.0, self.eps)
        y = F.batch_norm(x, None, None, None, None, True, 0.0, self.eps)
        with torch.no_grad():
            dims = [0] + list(range(2, x.dim()))
            m = x.numel() // x.shape[1]
            var, mean = torch.var_mean(x.float(), dim=dims, unbiased=False)
            corr = m / (m - 1) if m > 1 else 1.0
            self.mean.mul_(self.maf).add_(mean)
            self.variance.mul_(self.maf).add_(var * corr)
            self.scale_factor.mul_(self.maf).add_(1.0)
        return y

    def caffe_blobs(self):
        return [self.mean, self.variance, self.scale_factor]


@register("BatchNorm")
def build_batchnorm(spec):
    spec.expect_bottoms(1)
    shape = spec.in_shapes[0]
    if len(shape) < 2:
        raise spec.error("needs an input with a channel axis, got shape %s" % list(shape))
    p = spec.param("batch_norm_param")
    use_global = p.get("use_global_stats")
    return BatchNorm(spec, shape[1], None if use_global is None else bool(use_global),
                     spec.number(p, "moving_average_fraction", 0.999),
                     spec.number(p, "eps", 1e-5, float, 0.0))


def _param_shape(spec, p, shape, axis_default=1):
    axis = spec.axis(p.get("axis", axis_default), len(shape))
    num_axes = spec.number(p, "num_axes", 1, int, -1)
    end = len(shape) if num_axes == -1 else axis + num_axes
    if end > len(shape):
        raise spec.error("axis %d + num_axes %d exceed the %d-D input" % (axis, num_axes, len(shape)))
    return axis, tuple(shape[axis:end])


class _Affine(CaffeLayer):
    """Multiply by a scale and/or add a bias, broadcast from `axis` (Scale and Bias)."""

    def __init__(self, spec, axis, pshape, ndim, learn_scale, bias, scale_filler, bias_filler):
        super().__init__(spec, [spec.in_shapes[0]])
        self.view = tuple(pshape) + (1,) * (ndim - axis - len(pshape))
        self.axis = axis
        self.weight = None
        self.bias = None
        if learn_scale:
            self.weight = torch.nn.Parameter(torch.empty(pshape))
            fill(self.weight.data, scale_filler, "%s filler" % spec.where(), default="constant")
            if scale_filler is None:
                with torch.no_grad():
                    self.weight.fill_(1.0)
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(pshape))
            fill(self.bias.data, bias_filler, "%s bias_filler" % spec.where())

    def forward(self, x, other=None):
        y = x
        if other is not None:
            if self.weight is None and self.caffe_type == "Scale":
                y = y * other.reshape(tuple(other.shape) + (1,) * (x.dim() - self.axis - other.dim()))
            elif self.caffe_type == "Bias":
                return y + other.reshape(tuple(other.shape) + (1,) * (x.dim() - self.axis - other.dim()))
        if self.weight is not None:
            y = y * self.weight.view(self.view)
        if self.bias is not None:
            y = y + self.bias.view(self.view)
        return y

    def caffe_blobs(self):
        return [b for b in (self.weight, self.bias) if b is not None]


def _affine(spec, pname, is_scale):
    spec.expect_bottoms(1, 2)
    p = spec.param(pname)
    shape = spec.in_shapes[0]
    axis, pshape = _param_shape(spec, p, shape)
    if len(spec.in_shapes) == 2:
        other = spec.in_shapes[1]
        if tuple(shape[axis:axis + len(other)]) != tuple(other):
            raise spec.error("bottom[1] shape %s does not match bottom[0] %s from axis %d"
                             % (list(other), list(shape), axis))
        pshape = tuple(other)
    learn_scale = is_scale and len(spec.in_shapes) == 1
    bias = bool(p.get("bias_term", False)) if is_scale else len(spec.in_shapes) == 1
    bias_filler = p.get("bias_filler") if is_scale else p.get("filler")
    return _Affine(spec, axis, pshape, len(shape), learn_scale, bias,
                   p.get("filler") if is_scale else None, bias_filler)


@register("Scale")
def build_scale(spec):
    return _affine(spec, "scale_param", True)


@register("Bias")
def build_bias(spec):
    return _affine(spec, "bias_param", False)


class LRN(CaffeLayer):
    """Caffe LRN: x / (k + alpha/n * sum of squares over the window) ^ beta."""

    def __init__(self, spec, size, alpha, beta, k, across):
        super().__init__(spec, [spec.in_shapes[0]])
        self.size, self.alpha, self.beta, self.k, self.across = size, alpha, beta, k, across

    def forward(self, x):
        if self.across:
            return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)
        pad = (self.size - 1) // 2
        avg = F.avg_pool2d(x * x, self.size, 1, pad, count_include_pad=True)
        return x * (self.k + self.alpha * avg).pow(-self.beta)


@register("LRN")
def build_lrn(spec):
    spec.expect_bottoms(1)
    if len(spec.in_shapes[0]) != 4:
        raise spec.error("expects a 4-D input, got shape %s" % list(spec.in_shapes[0]))
    p = spec.param("lrn_param")
    size = spec.number(p, "local_size", 5, int, 1)
    if size % 2 == 0:
        raise spec.error("local_size must be odd, got %d" % size)
    region = spec.choice(p, "norm_region", "ACROSS_CHANNELS", ("ACROSS_CHANNELS", "WITHIN_CHANNEL"))
    return LRN(spec, size, spec.number(p, "alpha", 1.0), spec.number(p, "beta", 0.75),
               spec.number(p, "k", 1.0), region == "ACROSS_CHANNELS")
