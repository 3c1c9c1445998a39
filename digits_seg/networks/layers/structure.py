"""Blob plumbing: Concat, Slice, Split, Crop, Flatten, Reshape, Eltwise, Silence."""

import torch

from ...errors import ValidationError
from .base import CaffeLayer, register


class Concat(CaffeLayer):
    def __init__(self, spec, out_shapes, axis):
        super().__init__(spec, out_shapes)
        self.axis = axis

    def forward(self, *xs):
        return torch.cat(xs, self.axis)


@register("Concat")
def build_concat(spec):
    spec.expect_bottoms(1, -1)
    p = spec.param("concat_param")
    ref = spec.in_shapes[0]
    axis = spec.axis(p.get("concat_dim", p.get("axis", 1)), len(ref))
    total = 0
    for s in spec.in_shapes:
        if len(s) != len(ref) or any(a != b for i, (a, b) in enumerate(zip(s, ref)) if i != axis):
            raise spec.error("bottom shapes %s differ outside the concat axis %d"
                             % ([list(x) for x in spec.in_shapes], axis),
                             "crop or pad the inputs to the same size first")
        total += s[axis]
    out = list(ref)
    out[axis] = total
    return Concat(spec, [tuple(out)], axis)


class Slice(CaffeLayer):
    def __init__(self, spec, out_shapes, axis, sizes):
        super().__init__(spec, out_shapes)
        self.axis, self.sizes = axis, list(sizes)

    def forward(self, x):
        return tuple(torch.split(x, self.sizes, self.axis))


@register("Slice")
def build_slice(spec):
    spec.expect_bottoms(1)
    p = spec.param("slice_param")
    shape = spec.in_shapes[0]
    axis = spec.axis(p.get("slice_dim", p.get("axis", 1)), len(shape))
    points = spec.numbers(p, "slice_point")
    n, dim = spec.num_tops, shape[axis]
    if points:
        if len(points) != n - 1:
            raise spec.error("%d slice_point(s) need %d tops, got %d" % (len(points), len(points) + 1, n))
        edges = [0] + points + [dim]
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise spec.error("slice points %s must increase within 1..%d" % (points, dim - 1))
        sizes = [b - a for a, b in zip(edges, edges[1:])]
    else:
        if dim % n:
            raise spec.error("axis %d of size %d cannot be split evenly into %d tops" % (axis, dim, n))
        sizes = [dim // n] * n
    outs = []
    for s in sizes:
        o = list(shape)
        o[axis] = s
        outs.append(tuple(o))
    return Slice(spec, outs, axis, sizes)


class Split(CaffeLayer):
    def forward(self, x):
        return tuple(x for _ in self.out_shapes)


@register("Split")
def build_split(spec):
    spec.expect_bottoms(1)
    return Split(spec, [spec.in_shapes[0]] * spec.num_tops)


class Silence(CaffeLayer):
    def forward(self, *xs):
        return ()


@register("Silence")
def build_silence(spec):
    if spec.num_tops:
        raise spec.error("Silence has no tops")
    return Silence(spec, [])


class Crop(CaffeLayer):
    """Crop bottom[0] to bottom[1]'s size on every axis from `axis`, at fixed offsets."""

    def __init__(self, spec, out_shapes, axis, offsets):
        super().__init__(spec, out_shapes)
        self.axis, self.offsets = axis, list(offsets)

    def forward(self, x, ref):
        for i, off in enumerate(self.offsets):
            d = self.axis + i
            size = ref.shape[d]
            if not torch.compiler.is_exporting() and off + size > x.shape[d]:
                raise ValidationError(
                    "layer '%s' (Crop): cannot crop %d at offset %d from axis %d of size %d "
                    "(input %s, reference %s)" % (self.caffe_name, size, off, d, x.shape[d],
                                                  list(x.shape), list(ref.shape)))
            # narrow (offset, length) rather than a slice: a slice's end is clamped to the
            # axis, and torch.export then rewrites it with an equality that holds only at
            # the traced size (an ONNX graph exported at 64x64 cropped odd sizes wrongly).
            x = x.narrow(d, off, size)
        return x


@register("Crop")
def build_crop(spec):
    spec.expect_bottoms(2)
    p = spec.param("crop_param")
    a, b = spec.in_shapes
    if len(a) != len(b):
        raise spec.error("bottoms have different ranks: %s and %s" % (list(a), list(b)))
    axis = spec.axis(p.get("axis", 2), len(a))
    offs = spec.numbers(p, "offset")
    naxes = len(a) - axis
    if len(offs) == 0:
        offs = [0] * naxes
    elif len(offs) == 1:
        offs = offs * naxes
    elif len(offs) != naxes:
        raise spec.error("needs 1 or %d offsets (axes %d..%d), got %d"
                         % (naxes, axis, len(a) - 1, len(offs)))
    out = list(a[:axis])
    for i, off in enumerate(offs):
        d = axis + i
        if off < 0 or off + b[d] > a[d]:
            raise spec.error("cannot crop size %d at offset %d from axis %d of size %d "
                             "(bottoms %s and %s)" % (b[d], off, d, a[d], list(a), list(b)),
                             "check the crop offset or the input size")
        out.append(b[d])
    return Crop(spec, [tuple(out)], axis, offs)


class Flatten(CaffeLayer):
    def __init__(self, spec, out_shapes, axis, end):
        super().__init__(spec, out_shapes)
        self.axis, self.end = axis, end

    def forward(self, x):
        return x.flatten(self.axis, self.end)


@register("Flatten")
def build_flatten(spec):
    spec.expect_bottoms(1)
    p = spec.param("flatten_param")
    shape = spec.in_shapes[0]
    axis = spec.axis(p.get("axis", 1), len(shape))
    end = spec.axis(p.get("end_axis", -1), len(shape))
    if end < axis:
        raise spec.error("end_axis %d is before axis %d" % (end, axis))
    n = 1
    for d in shape[axis:end + 1]:
        n *= d
    return Flatten(spec, [tuple(shape[:axis]) + (n,) + tuple(shape[end + 1:])], axis, end)


def _reshape(shape, dims, axis, num_axes, fail):
    """Apply Caffe's Reshape rule (0 copies a dim, -1 infers one) to `shape`."""
    end = len(shape) if num_axes == -1 else axis + num_axes
    if end > len(shape):
        fail("axis/num_axes exceed the input rank %d" % len(shape))
    new = []
    for i, d in enumerate(dims):
        if d == 0:
            if axis + i >= len(shape):
                fail("dim %d is 0 but the input has no axis %d" % (i, axis + i))
            new.append(shape[axis + i])
        else:
            new.append(d)
    total = 1
    for d in shape:
        total *= d
    known = 1
    for d in list(shape[:axis]) + new + list(shape[end:]):
        if d != -1:
            known *= d
    if new.count(-1) > 1:
        fail("at most one dim may be -1")
    if -1 in new:
        if known == 0 or total % known:
            fail("cannot infer the -1 dim: %d elements into %s" % (total, dims))
        new[new.index(-1)] = total // known
    out = tuple(shape[:axis]) + tuple(new) + tuple(shape[end:])
    count = 1
    for d in out:
        count *= d
    if count != total:
        fail("shape %s has %d elements, the input %s has %d" % (list(out), count, list(shape), total))
    return out


class Reshape(CaffeLayer):
    def __init__(self, spec, out_shapes, dims, axis, num_axes):
        super().__init__(spec, out_shapes)
        self.dims, self.axis, self.num_axes = dims, axis, num_axes

    def _fail(self, text):
        raise ValidationError("layer '%s' (Reshape): %s" % (self.caffe_name, text))

    def forward(self, x):
        return x.reshape(_reshape(tuple(x.shape), self.dims, self.axis, self.num_axes, self._fail))


@register("Reshape")
def build_reshape(spec):
    spec.expect_bottoms(1)
    p = spec.param("reshape_param")
    shape_msg = p.get("shape")
    dims = spec.numbers(shape_msg, "dim") if shape_msg is not None else []
    shape = spec.in_shapes[0]
    axis = spec.number(p, "axis", 0, int)
    if axis < 0:
        axis += len(shape) + 1
    num_axes = spec.number(p, "num_axes", -1, int, -1)
    if not 0 <= axis <= len(shape):
        raise spec.error("axis %s is out of range for a %d-D blob" % (p.get("axis"), len(shape)))

    def fail(text):
        raise spec.error(text)
    out = _reshape(shape, dims, axis, num_axes, fail)
    return Reshape(spec, [out], dims, axis, num_axes)


class Eltwise(CaffeLayer):
    def __init__(self, spec, op, coeffs):
        super().__init__(spec, [spec.in_shapes[0]])
        self.op = op
        self.coeffs = coeffs if coeffs and any(c != 1.0 for c in coeffs) else None

    def forward(self, *xs):
        if self.op == "SUM":
            if self.coeffs is None:
                y = xs[0] + xs[1]
                for x in xs[2:]:
                    y = y + x
                return y
            y = xs[0] * self.coeffs[0]
            for c, x in zip(self.coeffs[1:], xs[1:]):
                y = y + x * c
            return y
        y = xs[0]
        for x in xs[1:]:
            y = y * x if self.op == "PROD" else torch.maximum(y, x)
        return y


@register("Eltwise")
def build_eltwise(spec):
    spec.expect_bottoms(2, -1)
    p = spec.param("eltwise_param")
    op = spec.choice(p, "operation", "SUM", ("SUM", "PROD", "MAX"))
    coeffs = spec.numbers(p, "coeff", float)
    if coeffs and (op != "SUM" or len(coeffs) != len(spec.in_shapes)):
        raise spec.error("coeff needs operation SUM and one value per bottom (%d)" % len(spec.in_shapes))
    for s in spec.in_shapes[1:]:
        if s != spec.in_shapes[0]:
            raise spec.error("bottom shapes differ: %s" % [list(x) for x in spec.in_shapes],
                             "crop the inputs to the same size (Crop layer) first")
    return Eltwise(spec, op, coeffs)
