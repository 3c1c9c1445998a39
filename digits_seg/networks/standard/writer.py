"""A small prototxt writer used to (re)generate the shipped standard networks.

The `.prototxt` files next to this module are the source of truth that users read and
edit; `generate.py` builds them with these helpers so that long, regular networks
(ResNet, DenseNet) stay consistent. Lines that carry the class count end with the marker
comment `#@num_classes` so `standard_prototxt` can substitute the dataset's count.
"""

NUM_CLASSES_MARK = "#@num_classes"
PLACEHOLDER_CLASSES = 21


def _filler(spec):
    if spec is None:
        return ""
    kind, *rest = spec
    body = 'type: "%s"' % kind
    if kind == "gaussian":
        body += " std: %s" % rest[0]
    elif kind == "constant" and rest:
        body += " value: %s" % rest[0]
    return "{ %s }" % body


class NetWriter:
    """Append layers as prototxt text; every helper returns the name of its top blob."""

    def __init__(self, name, comment="", pixels="raw 0-255 pixels"):
        self.out = ['name: "%s"' % name]
        if comment:
            self.out = ["# " + line for line in comment.strip().splitlines()] + self.out
        self.out.append("# inputs: data (N x C x H x W, %s) and label (N x 1 x H x W)" % pixels)

    def layer(self, name, type_, bottoms, tops, body=(), params=(), rules=()):
        lines = ["layer {", '  name: "%s"' % name, '  type: "%s"' % type_]
        lines += ['  bottom: "%s"' % b for b in bottoms]
        lines += ['  top: "%s"' % t for t in tops]
        for lr, dm in params:
            lines.append("  param { lr_mult: %s decay_mult: %s }" % (lr, dm))
        lines += ["  " + line for line in rules]
        lines += ["  " + line for line in body]
        lines.append("}")
        self.out.extend(lines)
        return tops[0] if tops else None

    def text(self):
        return "\n".join(self.out) + "\n"

    # -- layer helpers ----------------------------------------------------------------
    def power(self, name, bottom, scale=1.0, shift=0.0):
        return self.layer(name, "Power", [bottom], [name],
                          ["power_param { scale: %s shift: %s }" % (scale, shift)])

    def conv(self, name, bottom, nout, k, s=1, p=0, d=1, group=1, bias=True,
             wf=("msra",), bf=("constant",), classes=False, lr=(1, 2), top=None):
        mark = " " + NUM_CLASSES_MARK if classes else ""
        body = ["convolution_param {", "  num_output: %s%s" % (nout, mark),
                "  kernel_size: %d" % k]
        if s != 1:
            body.append("  stride: %d" % s)
        if p:
            body.append("  pad: %d" % p)
        if d != 1:
            body.append("  dilation: %d" % d)
        if group != 1:
            body.append("  group: %d" % group)
        if not bias:
            body.append("  bias_term: false")
        body.append("  weight_filler %s" % _filler(wf))
        if bias:
            body.append("  bias_filler %s" % _filler(bf))
        body.append("}")
        params = [(lr[0], 1)] + ([(lr[1], 0)] if bias else [])
        return self.layer(name, "Convolution", [bottom], [top or name], body, params)

    def upsample(self, name, bottom, factor, nout, k=None, classes=True):
        """Fixed bilinear Deconvolution (group = channels, lr_mult 0), as FCN/DIGITS do."""
        k = k or 2 * factor
        mark = " " + NUM_CLASSES_MARK if classes else ""
        body = ["convolution_param {", "  num_output: %s%s" % (nout, mark),
                "  group: %s%s" % (nout, mark), "  bias_term: false",
                "  kernel_size: %d" % k, "  stride: %d" % factor,
                '  weight_filler { type: "bilinear" }', "}"]
        return self.layer(name, "Deconvolution", [bottom], [name], body, [(0, 0)])

    def deconv(self, name, bottom, nout, k, s, p=0):
        body = ["convolution_param {", "  num_output: %d" % nout, "  kernel_size: %d" % k,
                "  stride: %d" % s] + (["  pad: %d" % p] if p else []) + [
                '  weight_filler { type: "msra" }', '  bias_filler { type: "constant" }', "}"]
        return self.layer(name, "Deconvolution", [bottom], [name], body, [(1, 1), (2, 0)])

    def relu(self, name, blob):
        return self.layer(name, "ReLU", [blob], [blob])

    def pool(self, name, bottom, k=2, s=2, p=0, method="MAX", global_=False, floor=False):
        if global_:
            body = ["pooling_param { pool: %s global_pooling: true }" % method]
        else:
            body = ["pooling_param { pool: %s kernel_size: %d stride: %d%s%s }"
                    % (method, k, s, " pad: %d" % p if p else "", " round_mode: FLOOR" if floor else "")]
        return self.layer(name, "Pooling", [bottom], [name], body)

    def bn(self, name, blob):
        """BatchNorm + Scale (with bias), in place, the usual Caffe pairing."""
        self.layer(name, "BatchNorm", [blob], [blob], [], [(0, 0)] * 3)
        self.layer(name + "_scale", "Scale", [blob], [blob], ["scale_param { bias_term: true }"])
        return blob

    def conv_bn_relu(self, name, bottom, nout, k, s=1, p=None, d=1):
        p = (k // 2) * d if p is None else p
        top = self.conv(name, bottom, nout, k, s, p, d, bias=False)
        self.bn(name + "_bn", top)
        return self.relu(name + "_relu", top)

    def crop(self, name, bottom, ref, offset=0, axis=2):
        return self.layer(name, "Crop", [bottom, ref], [name],
                          ["crop_param { axis: %d offset: %d }" % (axis, offset)])

    def eltwise(self, name, bottoms, op="SUM"):
        return self.layer(name, "Eltwise", bottoms, [name], ["eltwise_param { operation: %s }" % op])

    def concat(self, name, bottoms):
        return self.layer(name, "Concat", bottoms, [name], ["concat_param { axis: 1 }"])

    def dropout(self, name, blob, ratio):
        return self.layer(name, "Dropout", [blob], [blob],
                          ["dropout_param { dropout_ratio: %s }" % ratio])

    def interp(self, name, bottom, ref, align_corners=True):
        body = [] if align_corners else ["interp_param { align_corners: false }"]
        return self.layer(name, "Interp", [bottom, ref], [name], body)

    def losses(self, score, ignore=255):
        """SoftmaxWithLoss (not in deploy) and Accuracy (only in val), DIGITS style."""
        self.layer("loss", "SoftmaxWithLoss", [score, "label"], ["loss"],
                   ["loss_param { ignore_label: %d normalization: VALID }" % ignore],
                   rules=['exclude { stage: "deploy" }'])
        self.layer("accuracy", "Accuracy", [score, "label"], ["accuracy"],
                   ["accuracy_param { ignore_label: %d }" % ignore],
                   rules=['include { stage: "val" }'])
