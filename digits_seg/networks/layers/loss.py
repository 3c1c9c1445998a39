"""SoftmaxWithLoss and Accuracy with Caffe's ignore_label and normalisation rules."""

import torch
import torch.nn.functional as F

from .base import CaffeLayer, register

NORMALIZATIONS = ("FULL", "VALID", "BATCH_SIZE", "NONE")


def loss_settings(spec):
    """Return (ignore_label or None, normalization) as Caffe resolves them."""
    p = spec.param("loss_param")
    ignore = p.get("ignore_label")
    if ignore is not None:
        ignore = spec.number(p, "ignore_label", 0, int)
    if p.has("normalization"):
        norm = spec.choice(p, "normalization", "VALID", NORMALIZATIONS)
    elif p.has("normalize"):
        norm = "VALID" if bool(p.get("normalize")) else "BATCH_SIZE"
    else:
        norm = "VALID"
    return ignore, norm


def loss_class_weights(spec, num_classes=None):
    """Return caffe-segnet's `class_weighting` list when `weight_by_label_freqs` is set, else None."""
    p = spec.param("loss_param")
    weights = spec.numbers(p, "class_weighting", float)
    if not bool(p.get("weight_by_label_freqs", False)):
        return None
    if not weights:
        raise spec.error("weight_by_label_freqs is set but no class_weighting values are given",
                         "add one class_weighting: <w> per class, or remove weight_by_label_freqs")
    if num_classes is not None and len(weights) != num_classes:
        raise spec.error("has %d class_weighting values for %d classes" % (len(weights), num_classes),
                         "give one value per class")
    return weights


def _flat_label(label, scores, axis, where):
    """Return the label as integer indices shaped like `scores` without the class axis."""
    want = tuple(scores.shape[:axis]) + tuple(scores.shape[axis + 1:])
    if tuple(label.shape) != want:
        if label.numel() != _count(want):
            from ...errors import ValidationError
            raise ValidationError("%s: label shape %s does not match scores %s (expected %s)"
                                  % (where, list(label.shape), list(scores.shape), list(want)))
        label = label.reshape(want)
    if label.dtype != torch.long:
        label = label.long()
    return label


def _count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class SoftmaxWithLoss(CaffeLayer):
    def __init__(self, spec, out_shapes, axis, ignore, norm, weights=None):
        super().__init__(spec, out_shapes)
        self.axis, self.ignore_label, self.normalization = axis, ignore, norm
        self.register_buffer("class_weights", None if weights is None else torch.tensor(weights),
                             persistent=False)

    def forward(self, scores, label):
        label = _flat_label(label, scores, self.axis, "layer '%s'" % self.caffe_name)
        ignore = -100 if self.ignore_label is None else self.ignore_label
        if self.axis != 1:
            scores = scores.movedim(self.axis, 1)
        weight = None if self.class_weights is None else self.class_weights.to(scores.device)
        total = F.cross_entropy(scores.float(), label, weight=weight, ignore_index=ignore, reduction="sum")
        if self.normalization == "VALID":
            if self.ignore_label is None:
                denom = float(label.numel())
                return total / max(denom, 1.0)
            valid = (label != ignore).sum().clamp_min(1)
            return total / valid
        if self.normalization == "FULL":
            return total / max(float(label.numel()), 1.0)
        if self.normalization == "BATCH_SIZE":
            return total / float(_count(scores.shape[:self.axis]) if self.axis > 0 else 1)
        return total


@register("SoftmaxWithLoss")
def build_softmax_loss(spec):
    spec.expect_bottoms(2)
    shape = spec.in_shapes[0]
    axis = spec.axis(spec.param("softmax_param").get("axis", 1), len(shape))
    ignore, norm = loss_settings(spec)
    weights = loss_class_weights(spec, shape[axis])
    return SoftmaxWithLoss(spec, [()], axis, ignore, norm, weights)


class Accuracy(CaffeLayer):
    def __init__(self, spec, out_shapes, axis, top_k, ignore):
        super().__init__(spec, out_shapes)
        self.axis, self.top_k, self.ignore_label = axis, top_k, ignore

    def forward(self, scores, label):
        overall = self._overall(scores, label)
        if len(self.out_shapes) == 1:
            return overall
        with torch.no_grad():
            flat = _flat_label(label, scores, self.axis, "layer '%s'" % self.caffe_name)
            pred = scores.argmax(self.axis)
            c = scores.shape[self.axis]
            valid = (flat >= 0) & (flat < c)
            if self.ignore_label is not None:
                valid &= flat != self.ignore_label
            target = flat[valid]
            total = torch.bincount(target, minlength=c).float()
            hits = torch.bincount(target[pred[valid] == target], minlength=c).float()
            return overall, hits / total.clamp_min(1)

    def _overall(self, scores, label):
        with torch.no_grad():
            label = _flat_label(label, scores, self.axis, "layer '%s'" % self.caffe_name)
            if self.top_k == 1:
                hit = scores.argmax(self.axis) == label
            else:
                top = scores.topk(self.top_k, self.axis).indices
                hit = (top == label.unsqueeze(self.axis)).any(self.axis)
            if self.ignore_label is None:
                return hit.float().mean()
            valid = label != self.ignore_label
            return (hit & valid).sum().float() / valid.sum().clamp_min(1).float()


@register("Accuracy")
def build_accuracy(spec):
    spec.expect_bottoms(2)
    if spec.num_tops not in (1, 2):
        raise spec.error("has %d tops; Accuracy has one (overall) or two (and per class)" % spec.num_tops)
    p = spec.param("accuracy_param")
    shape = spec.in_shapes[0]
    axis = spec.axis(p.get("axis", 1), len(shape))
    top_k = spec.number(p, "top_k", 1, int, 1)
    if top_k > shape[axis]:
        raise spec.error("top_k %d exceeds the %d classes" % (top_k, shape[axis]))
    ignore = spec.number(p, "ignore_label", 0, int) if p.has("ignore_label") else None
    tops = [()] if spec.num_tops == 1 else [(), (shape[axis],)]
    return Accuracy(spec, tops, axis, top_k, ignore)
