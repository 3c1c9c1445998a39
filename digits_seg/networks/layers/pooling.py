"""Caffe Pooling: MAX/AVE with Caffe's ceil rounding, its padding rule, and global pooling.

Caffe sizes the output as ceil((H + 2p - k) / s) + 1 and, when padding is used, drops the
last window if it would start at or beyond H + p. AVE divides each window by its size
clipped to H + p (so padding counts, the ceil overhang does not). torch's `ceil_mode`
agrees except when p > k/2 (torch refuses) or when p == 0 and s > k (torch drops a window
Caffe keeps); those cases take an explicit-padding path.
"""


import torch
import torch.nn.functional as F

from .base import CaffeLayer, hw, register


def _ceil_div(a, b):
    """ceil(a / b) in integers: sizes stay symbolic when torch.export traces the net (a float
    ceil made the exporter assume the traced size's parity, so odd sizes came out wrong)."""
    return -((-a) // b)


def caffe_pool_size(size, k, s, p, round_mode="CEIL"):
    """Return Caffe's pooled size along one axis."""
    if round_mode == "FLOOR":
        return (size + 2 * p - k) // s + 1
    out = _ceil_div(size + 2 * p - k, s) + 1
    if p > 0 and (out - 1) * s >= size + p:
        out -= 1
    return out


def _torch_pool_size(size, k, s, p):
    out = _ceil_div(size + 2 * p - k, s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


class Pooling(CaffeLayer):
    def __init__(self, spec, out_shapes, method, k, s, p, is_global, round_mode):
        super().__init__(spec, out_shapes)
        self.method, self.k, self.s, self.p = method, k, s, p
        self.is_global, self.round_mode = is_global, round_mode
        # Decided once from the geometry, not per input: a size-dependent branch would make
        # torch.export freeze the traced size (and ONNX graphs wrong at other sizes).
        # With 2p <= k, torch's ceil mode equals Caffe's except when p == 0 and s > k.
        self.fast = all(2 * pi <= ki for pi, ki in zip(p, k)) and (
            round_mode == "FLOOR" or all(pi > 0 or si <= ki for pi, si, ki in zip(p, s, k)))

    def forward(self, x):
        if self.is_global:
            if self.method == "MAX":
                return x.amax(dim=(2, 3), keepdim=True)
            return x.mean(dim=(2, 3), keepdim=True)
        k, s, p = self.k, self.s, self.p
        if self.fast:
            ceil = self.round_mode == "CEIL"
            if self.method == "MAX" and ceil and p == (0, 0):
                # Caffe's ceil rounding as right/bottom padding + floor mode: the same windows,
                # with sizes torch.export can follow at any input size (torch's ceil_mode
                # adds a size guard it cannot prove, which breaks a dynamic-size export).
                return F.max_pool2d(F.pad(x, (0, s[1] - 1, 0, s[0] - 1), value=float("-inf")), k, s)
            if self.method == "MAX":
                return F.max_pool2d(x, k, s, p, ceil_mode=ceil)
            return F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=True)
        h, w = x.shape[2], x.shape[3]
        oh = caffe_pool_size(h, k[0], s[0], p[0], self.round_mode)
        ow = caffe_pool_size(w, k[1], s[1], p[1], self.round_mode)
        return self._explicit(x, h, w, oh, ow)

    def _explicit(self, x, h, w, oh, ow):
        """Pad by hand so a floor-mode pool yields exactly Caffe's windows."""
        k, s, p = self.k, self.s, self.p
        extra_h = max(0, (oh - 1) * s[0] + k[0] - h - p[0])
        extra_w = max(0, (ow - 1) * s[1] + k[1] - w - p[1])
        if self.method == "MAX":
            xp = F.pad(x, (p[1], extra_w, p[0], extra_h), value=float("-inf"))
            y = F.max_pool2d(xp, k, s)[:, :, :oh, :ow]
            # A window wholly in padding gives -inf; Caffe leaves -FLT_MAX there.
            return y.clamp_min(torch.finfo(y.dtype).min)
        xp = F.pad(x, (p[1], extra_w, p[0], extra_h))
        total = F.avg_pool2d(xp, k, s)[:, :, :oh, :ow] * (k[0] * k[1])
        rows = [min(i * s[0] - p[0] + k[0], h + p[0]) - (i * s[0] - p[0]) for i in range(oh)]
        cols = [min(j * s[1] - p[1] + k[1], w + p[1]) - (j * s[1] - p[1]) for j in range(ow)]
        div = torch.tensor(rows, dtype=x.dtype, device=x.device)[:, None] * \
            torch.tensor(cols, dtype=x.dtype, device=x.device)[None, :]
        return total / div


@register("Pooling")
def build_pooling(spec):
    spec.expect_bottoms(1)
    shape = spec.in_shapes[0]
    if len(shape) != 4:
        raise spec.error("expects a 4-D N×C×H×W input, got shape %s" % list(shape))
    p = spec.param("pooling_param")
    method = spec.choice(p, "pool", "MAX", ("MAX", "AVE"))
    round_mode = spec.choice(p, "round_mode", "CEIL", ("CEIL", "FLOOR"))
    n, c, h, w = shape
    is_global = bool(p.get("global_pooling", False))
    if is_global:
        return Pooling(spec, [(n, c, 1, 1)], method, (h, w), (1, 1), (0, 0), True, round_mode)
    k = hw(spec, p, "kernel", required=True)
    s = hw(spec, p, "stride", 1)
    pad = hw(spec, p, "pad", 0)
    if 0 in k or 0 in s:
        raise spec.error("kernel and stride must be >= 1")
    for kk, pp in zip(k, pad):
        if pp >= kk:
            raise spec.error("pad (%d) must be smaller than the kernel (%d)" % (pp, kk))
    oh = caffe_pool_size(h, k[0], s[0], pad[0], round_mode)
    ow = caffe_pool_size(w, k[1], s[1], pad[1], round_mode)
    if oh < 1 or ow < 1 or h + 2 * pad[0] < k[0] or w + 2 * pad[1] < k[1]:
        raise spec.error("input %d×%d is smaller than the pooling kernel %d×%d"
                         % (h, w, k[0], k[1]), "use a larger input size")
    return Pooling(spec, [(n, c, oh, ow)], method, k, s, pad, False, round_mode)
