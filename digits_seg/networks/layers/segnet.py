"""The caffe-segnet fork's layers: `BN`, `Upsample` (max-unpooling) and `Pooling` with a mask top.

SegNet's published prototxts use these instead of BVLC Caffe's BatchNorm + Scale and
Deconvolution, so CamVid users' files compile unmodified:

- `BN` normalises with the batch's statistics (`bn_mode: LEARN`, the default) or applies
  only its learned scale and shift (`bn_mode: INFERENCE`, after SegNet's
  `compute_bn_statistics.py` folded the statistics into them). Its caffemodel blobs are
  scale and shift, each 1×C×1×1. Departure: in LEARN mode we also keep running mean and
  variance (two more blobs, 1×C×1×1) and use them when not training, which is what
  `compute_bn_statistics.py` would compute; caffe-segnet keeps using batch statistics.
  Loading folds or fills them (`adapt_blobs`), so either kind of weights fits either mode.
- `Pooling` with a second top returns the max-pooling mask: for each output, the index
  h * W + w of its maximum in the input plane (Caffe stores it as a float blob; we keep
  integers).
- `Upsample` puts each value back at its mask index in a zero map (max-unpooling); the
  output is `upsample_h`×`upsample_w`, else the input times `scale` (or `scale_h`/
  `scale_w`), one smaller where `pad_out_h`/`pad_out_w` is set.
"""

import torch
import torch.nn.functional as F

from ..fillers import fill
from .base import LAYERS, CaffeLayer, hw, register
from .pooling import _torch_pool_size, caffe_pool_size

BN_MODES = ("LEARN", "INFERENCE")
BN_EPS = 1e-9
"""caffe-segnet's fixed variance epsilon (`var_eps_`)."""
BN_MOMENTUM = 0.1
"""Weight of each batch in the running statistics kept for evaluation (our addition)."""


class BN(CaffeLayer):
    def __init__(self, spec, channels, mode, scale_filler, shift_filler):
        super().__init__(spec, [spec.in_shapes[0]])
        self.mode = mode
        self.scale = torch.nn.Parameter(torch.empty(1, channels, 1, 1))
        self.shift = torch.nn.Parameter(torch.empty(1, channels, 1, 1))
        fill(self.scale.data, scale_filler, "%s scale_filler" % spec.where(), default="constant")
        fill(self.shift.data, shift_filler, "%s shift_filler" % spec.where(), default="constant")
        self.notes = []
        if scale_filler is None:
            self.notes.append("%s has no scale_filler: caffe-segnet starts its scale at 0, so the "
                              "layer outputs only its shift until trained; add "
                              "bn_param { scale_filler { type: \"constant\" value: 1 } }" % spec.where())
        if mode == "LEARN":
            self.register_buffer("running_mean", torch.zeros(1, channels, 1, 1))
            self.register_buffer("running_var", torch.ones(1, channels, 1, 1))

    def forward(self, x):
        c = x.shape[1]
        if self.mode == "INFERENCE":
            return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)
        return F.batch_norm(x, self.running_mean.view(c), self.running_var.view(c),
                            self.scale.view(c), self.shift.view(c), self.training, BN_MOMENTUM, BN_EPS)

    def caffe_blobs(self):
        if self.mode == "INFERENCE":
            return [self.scale, self.shift]
        return [self.scale, self.shift, self.running_mean, self.running_var]

    def adapt_blobs(self, blobs):
        """Return (blobs in this mode's layout, note) from a file's 2 (caffe-segnet) or 4 blobs."""
        import numpy as np
        if self.mode == "INFERENCE" and len(blobs) == 4:
            scale, shift, mean, var = (np.asarray(b, dtype=np.float64).reshape(-1) for b in blobs)
            folded = scale / np.sqrt(var + BN_EPS)
            return ([folded.reshape(1, -1, 1, 1), (shift - mean * folded).reshape(1, -1, 1, 1)],
                    "running mean/variance folded into scale and shift (bn_mode INFERENCE)")
        if self.mode == "LEARN" and len(blobs) == 2:
            c = self.scale.shape[1]
            return (list(blobs) + [np.zeros((1, c, 1, 1), np.float32), np.ones((1, c, 1, 1), np.float32)],
                    "scale and shift only (caffe-segnet layout): evaluation uses mean 0, variance 1, "
                    "right for weights folded by compute_bn_statistics.py")
        return blobs, ""


@register("BN")
def build_bn(spec):
    spec.expect_bottoms(1)
    if spec.num_tops != 1:
        raise spec.error("only one top is supported (the batch mean/variance tops of some forks are "
                         "not); remove the extra tops")
    shape = spec.in_shapes[0]
    if len(shape) != 4:
        raise spec.error("expects a 4-D N×C×H×W input, got shape %s" % list(shape))
    p = spec.param("bn_param")
    mode = spec.choice(p, "bn_mode", "LEARN", BN_MODES)
    return BN(spec, shape[1], mode, p.get("scale_filler"), p.get("shift_filler"))


class MaskedMaxPooling(CaffeLayer):
    """MAX pooling returning (pooled, mask) as caffe-segnet's two-top Pooling does."""

    def __init__(self, spec, out_shapes, k, s, p):
        super().__init__(spec, out_shapes)
        self.k, self.s, self.p = k, s, p

    def forward(self, x):
        return F.max_pool2d(x, self.k, self.s, self.p, ceil_mode=True, return_indices=True)


_plain_pooling = LAYERS["Pooling"]


@register("Pooling")
def build_pooling(spec):
    """Build Caffe's Pooling; with two tops, MAX pooling that also returns its mask."""
    if spec.num_tops < 2:
        return _plain_pooling(spec)
    if spec.num_tops > 2:
        raise spec.error("names %d tops; Pooling has one (or two: pooled and mask)" % spec.num_tops)
    plain = _plain_pooling(spec)
    if plain.method != "MAX" or plain.is_global or plain.round_mode != "CEIL":
        raise spec.error("a mask top needs MAX pooling (not global, CEIL rounding)",
                         "drop the second top or use pool: MAX")
    (n, c, h, w), = spec.in_shapes
    k, s, pad = plain.k, plain.s, plain.p
    if any(2 * pp > kk for pp, kk in zip(pad, k)) or \
            (caffe_pool_size(h, k[0], s[0], pad[0]), caffe_pool_size(w, k[1], s[1], pad[1])) != \
            (_torch_pool_size(h, k[0], s[0], pad[0]), _torch_pool_size(w, k[1], s[1], pad[1])):
        raise spec.error("this kernel/stride/pad geometry is not supported with a mask top",
                         "use pad <= kernel/2 (SegNet uses kernel_size 2 stride 2)")
    shape = plain.out_shapes[0]
    return MaskedMaxPooling(spec, [shape, shape], k, s, pad)


class Upsample(CaffeLayer):
    def __init__(self, spec, out_shapes, size_rule):
        super().__init__(spec, out_shapes)
        self.size_rule = size_rule

    def out_size(self, h, w):
        fixed, scale, pad_out = self.size_rule
        if fixed:
            return fixed
        return h * scale[0] - int(pad_out[0]), w * scale[1] - int(pad_out[1])

    def forward(self, x, mask):
        n, c, h, w = x.shape
        oh, ow = self.out_size(h, w)
        idx = mask.reshape(n, c, h * w).long()
        if idx.numel() and int(idx.max()) >= oh * ow:
            from ...errors import ValidationError
            raise ValidationError("layer '%s' (Upsample): a mask index (%d) lies outside its %d×%d output; "
                                  "the scale or upsample_h/upsample_w does not match the pooling layer that "
                                  "made the mask" % (self.caffe_name, int(idx.max()), oh, ow), field="network")
        out = x.new_zeros(n, c, oh * ow).scatter(2, idx, x.reshape(n, c, h * w))
        return out.view(n, c, oh, ow)


@register("Upsample")
def build_upsample(spec):
    spec.expect_bottoms(2)
    shape, mask = spec.in_shapes
    if len(shape) != 4 or tuple(mask) != tuple(shape):
        raise spec.error("needs a 4-D input and the mask of the pooling layer it undoes, with the same "
                         "shape; got %s and %s" % (list(shape), list(mask)),
                         "bottom order is: the values, then the pooling layer's mask top")
    p = spec.param("upsample_param")
    fixed = None
    if p.has("upsample_h") or p.has("upsample_w"):
        fixed = hw(spec, p, "upsample")
        if min(fixed) < 2:
            raise spec.error("upsample_h and upsample_w must be > 1")
    if p.has("scale_h") or p.has("scale_w"):
        scale = hw(spec, p, "scale")
    else:
        scale = (spec.number(p, "scale", 2, int, 2),) * 2
    if min(scale) < 2 and fixed is None:
        raise spec.error("scale must be > 1")
    pad_out = (bool(p.get("pad_out_h", False)), bool(p.get("pad_out_w", False)))
    if fixed is None and any(po and sc != 2 for po, sc in zip(pad_out, scale)):
        raise spec.error("pad_out_h/pad_out_w need scale 2 (the output size is ill-defined otherwise)")
    layer = Upsample(spec, [], (fixed, scale, pad_out))
    oh, ow = layer.out_size(shape[2], shape[3])
    if oh < shape[2] or ow < shape[3]:
        raise spec.error("output %d×%d is smaller than its input %d×%d" % (oh, ow, shape[2], shape[3]))
    layer.out_shapes = [(shape[0], shape[1], oh, ow)]
    return layer
