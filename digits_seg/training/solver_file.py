"""Read a Caffe solver file into our training fields, saying what was mapped and what was not.

Caffe counts in iterations; our form counts in epochs and in % of training. With the
dataset's training-image count and the batch size, `max_iter` becomes epochs
(max_iter × iter_size × batch_size / images, rounded up) and `stepsize`/`stepvalue`
become percentages of `max_iter`.
"""

import math

from ..errors import ValidationError
from ..networks import prototxt
from .loss_scale import LossContext, rescale
from .lr_policy import POLICIES
from .solver import SOLVER_TYPES

LEGACY_TYPES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp",
                "ADADELTA": "AdaDelta", "ADAM": "Adam"}
"""Caffe's `solver_type` enum (and `type` strings, upper-cased) -> our solver names."""
IGNORED = ("net", "train_net", "test_net", "test_iter", "test_interval", "display", "average_loss",
           "snapshot", "snapshot_prefix", "snapshot_format", "solver_mode", "device_id", "test_initialization",
           "random_seed", "debug_info", "snapshot_after_train", "momentum2", "delta", "rms_decay",
           "clip_gradients", "regularization_type", "test_compute_loss", "iter_size", "max_iter")
"""Fields with no form counterpart (or handled together with another field)."""


def read_solver(text, source="solver.prototxt"):
    """Parse solver text; refuse a network file given as a solver."""
    msg = prototxt.parse(text, source)
    if msg.has("layer") or msg.has("layers"):
        raise ValidationError("%s is a network description, not a solver file (it has layers); give the "
                              "solver file (base_lr, lr_policy, max_iter, ...)" % source, field="solver")
    return msg


def solver_settings(msg):
    """Return the solver's scalar fields in file order as [{field, value, line}]."""
    out = []
    for name, value in msg:
        if isinstance(value, prototxt.Message):
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append({"field": name, "value": value if isinstance(value, (int, float)) else str(value),
                    "line": None})
    for i, item in enumerate(out):
        same = [j for j, o in enumerate(out[:i + 1]) if o["field"] == item["field"]]
        item["line"] = msg.line_of(item["field"], len(same) - 1)
    return out


def _num(msg, name, source, kind=float):
    value = msg.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("%s line %s: %s must be a number, got %r" % (source, msg.line_of(name), name, value),
                              field="solver")
    return kind(value)


def solver_to_params(msg, train_images, batch_size, source="solver.prototxt", loss=None, keep=()):
    """Return (form fields, lines saying what was mapped) for `msg` on a dataset of `train_images`.

    base_lr and weight_decay are rescaled to the loss digits-seg trains with (`loss_scale`): a rate
    tuned for a summed loss is refused when the network it was tuned for, or the dataset, is unknown.

    Args:
        train_images: images in the dataset's train split (turns max_iter into epochs); None: not mapped.
        batch_size: the batch size the job will use (Caffe's is in the net's data layer).
        loss: a `loss_scale.LossContext` (the solver's network loss, the dataset's pixels); None: unknown.
        keep: form fields the caller sets itself (not refused for, e.g. a base_lr given on the command line).
    """
    fields, said = {}, []
    iter_size = _num(msg, "iter_size", source, int) if msg.has("iter_size") else 1
    if msg.has("iter_size"):
        fields["iter_size"] = iter_size
        said.append("iter_size %d -> iter_size %d" % (iter_size, iter_size))
    if msg.has("base_lr"):
        fields["base_lr"] = _num(msg, "base_lr", source)
        said.append("base_lr %g -> base_lr %g" % (fields["base_lr"], fields["base_lr"]))
    for theirs, ours in (("momentum", "momentum"), ("weight_decay", "weight_decay"), ("gamma", "lr_gamma"),
                         ("power", "lr_power")):
        if msg.has(theirs):
            fields[ours] = _num(msg, theirs, source)
            said.append("%s %g -> %s %g" % (theirs, fields[ours], ours, fields[ours]))
    kind = msg.get("type", msg.get("solver_type"))
    if kind is not None:
        name = LEGACY_TYPES.get(str(kind).upper(), str(kind))
        if name not in SOLVER_TYPES:
            raise ValidationError("%s: solver type %s is not supported; use one of %s"
                                  % (source, kind, ", ".join(SOLVER_TYPES)), field="solver")
        fields["solver_type"] = name
        said.append("type %s -> solver_type %s" % (kind, name))
    max_iter = _num(msg, "max_iter", source, int) if msg.has("max_iter") else None
    if max_iter is not None and not train_images:
        said.append("max_iter %d not mapped to epochs: the dataset's training-image count is not known yet"
                    % max_iter)
    elif max_iter is not None:
        images = max(1, int(train_images))
        epochs = max(1, math.ceil(max_iter * iter_size * int(batch_size) / images))
        fields["epochs"] = epochs
        said.append("max_iter %d x iter_size %d x batch %d / %d training images -> epochs %d"
                    % (max_iter, iter_size, batch_size, images, epochs))
    policy = msg.get("lr_policy")
    if policy is not None:
        policy = str(policy)
        if policy not in POLICIES:
            raise ValidationError("%s line %s: lr_policy %r is not one of %s"
                                  % (source, msg.line_of("lr_policy"), policy, ", ".join(POLICIES)),
                                  field="solver")
        fields["lr_policy"] = policy
        said.append("lr_policy %s -> lr_policy %s" % (policy, policy))
    if msg.has("stepsize"):
        if not max_iter:
            raise ValidationError("%s: stepsize needs max_iter to become a percentage of training" % source,
                                  field="solver")
        pct = min(100.0, 100.0 * _num(msg, "stepsize", source) / max_iter)
        fields["lr_step_size"] = round(pct, 4)
        said.append("stepsize %d of max_iter %d -> lr_step_size %g%%" % (msg.get("stepsize"), max_iter,
                                                                         fields["lr_step_size"]))
    steps = msg.get_all("stepvalue")
    if steps:
        if not max_iter:
            raise ValidationError("%s: stepvalue needs max_iter to become a percentage of training" % source,
                                  field="solver")
        fields["lr_stepvalues"] = [round(min(100.0, 100.0 * float(v) / max_iter), 4) for v in steps]
        said.append("stepvalue %s of max_iter %d -> lr_stepvalues %s%%"
                    % (", ".join(str(v) for v in steps), max_iter,
                       ", ".join("%g" % v for v in fields["lr_stepvalues"])))
    rescale(fields, said, msg, source, loss or LossContext(), int(batch_size), keep)
    mapped = {"base_lr", "momentum", "weight_decay", "gamma", "power", "type", "solver_type", "lr_policy",
              "stepsize", "stepvalue"}
    unused = sorted({n for n, _ in msg if n not in mapped and n in IGNORED and n not in ("iter_size", "max_iter")})
    unknown = sorted({n for n, _ in msg if n not in mapped and n not in IGNORED})
    if unused:
        said.append("not used (no form field): %s" % ", ".join(unused))
    if unknown:
        said.append("not understood, ignored: %s" % ", ".join(unknown))
    return fields, said
