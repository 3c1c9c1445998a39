"""Rescale a Caffe solver's learning rate to the loss digits-seg really trains with.

The trainer always trains with its own loss (`training/loss.py`): the mean over labelled pixels,
Caffe's VALID normalisation, whatever the network's SoftmaxWithLoss says (the net is compiled
without its loss layers). A Caffe solver was tuned for its network's loss. FCN's
`loss_param { normalize: false }` (= normalization BATCH_SIZE) divides the summed pixel losses by
the batch size only, so its gradient is K = labelled pixels per image times ours, and its
`base_lr: 1e-14` is K times too small for our loss: copied as is, the network barely moves.

Plain SGD steps by lr × (gradient + weight_decay × w). With our gradient 1/K of Caffe's, the same
steps need lr × K and weight_decay / K (so lr × weight_decay, the decay per step, stays);
weight_decay / K also keeps the regularised objective Caffe's divided by K, so the same minimum.
Adaptive solvers (Adam, RMSProp, AdaGrad, AdaDelta) divide the gradient's scale out: their lr
stays, and weight_decay / K keeps the balance of loss and decay.

    K = what our loss divides by (labelled pixels of a batch) / what Caffe's divides by:
        VALID 1 | FULL labelled / all pixels | BATCH_SIZE labelled per image | NONE labelled per batch

K is a mean over the dataset (Caffe's divisor varies per batch with the labelled pixels; ours
takes that variation out), taken from the dataset's pixel statistics and the crop.
"""

from dataclasses import dataclass

from ..errors import DigitsSegError

SCALE_FREE = ("Adam", "AdamW", "RMSProp", "AdaGrad", "AdaDelta")
"""Solver types whose step does not grow with the gradient's scale (the lr is kept)."""
TINY_LR = 1e-8
"""A base_lr below this is a rate for a summed loss (FCN: 1e-10 to 1e-14), never for a mean one."""
DIVISOR = {"VALID": "the labelled pixels", "FULL": "all pixels, ignored ones included",
           "BATCH_SIZE": "the batch size only", "NONE": "nothing (a plain sum)"}
"""What Caffe divides the summed pixel losses by, per normalization."""


@dataclass(frozen=True)
class TunedLoss:
    """The loss a solver was tuned for: its network's normalization and where the file says it."""

    normalization: str
    where: str


@dataclass(frozen=True)
class LossContext:
    """What `rescale` needs from the caller: the solver's network loss, the job's pixels, how to name the net."""

    tuned: object = None        # TunedLoss, or None when the solver's network is not known
    pixels: object = None       # Pixels, or None (then `why` says why)
    why: str = "the dataset is not known yet"
    hint: str = ""              # e.g. "give the network with --custom"


@dataclass(frozen=True)
class Pixels:
    """Mean pixels per training image the loss sees (after the crop): labelled, all, and how they were got."""

    labelled: float
    total: float
    how: str


def network_loss(text, source="network"):
    """Return the `TunedLoss` of a network's first SoftmaxWithLoss, or None when it has none (or is unreadable)."""
    from ..networks.compiler import _as_message, find_loss_layer
    from ..networks.layers import LayerSpec
    from ..networks.layers.loss import loss_settings

    try:
        msg = _as_message(text, source)
        layer = find_loss_layer(msg)
        if layer is None:
            return None
        _, norm = loss_settings(LayerSpec(layer, [], "train", 1, source))
    except DigitsSegError:
        return None
    p = layer.get("loss_param")
    stated = next((f for f in ("normalization", "normalize") if hasattr(p, "has") and p.has(f)), None)
    if stated is None:
        words = "no normalization given, Caffe's default VALID"
        line = getattr(layer, "line", None)
    else:
        value = p.get(stated)
        words = "%s: %s" % (stated, ("true" if value else "false") if isinstance(value, bool) else value)
        line = p.line_of(stated)
    return TunedLoss(norm, "layer '%s' at %s line %s: %s" % (layer.get("name", "?"), source, line, words))


def training_pixels(labelled_sum, ignored_sum, images, size=None, crop=None):
    """Return `Pixels` per image from a split's pixel counts, or None when there are none.

    Args:
        labelled_sum, ignored_sum: the split's labelled and ignore (255) pixels in all its images.
        size: [w, h] when every image has it, else None (a mean area is used).
        crop: the training crop (square; smaller images are padded with ignore), or None.
    """
    if not images or labelled_sum <= 0:
        return None
    total_sum = labelled_sum + ignored_sum
    share = labelled_sum / float(total_sum)
    area = total_sum / float(images)
    if not crop:
        return Pixels(labelled_sum / float(images), area,
                      "%s labelled of %s pixels per image on average over the %s training images"
                      % ("{:,.0f}".format(labelled_sum / float(images)), "{:,.0f}".format(area),
                         "{:,}".format(images)))
    if size:
        seen = min(crop, size[0]) * min(crop, size[1])
        what = "the %dx%d crop of %dx%d images" % (crop, crop, size[0], size[1])
    else:
        seen = min(crop * crop, area)
        what = "the %dx%d crop (images of %s pixels on average)" % (crop, crop, "{:,.0f}".format(area))
    return Pixels(seen * share, crop * crop, "%s x %.1f%% labelled = %s labelled pixels per image"
                  % (what, 100 * share, "{:,.0f}".format(seen * share)))


def dataset_pixels(info, crop=None):
    """`training_pixels` of a `DatasetInfo`'s train split; (None, why) when its statistics do not tell."""
    if info is None:
        return None, "the dataset is not known yet"
    split = info.splits.get("train") or {}
    pixels = training_pixels(int(info.class_pixel_counts("train").sum()), int(info.ignore_row("train")["pixels"]),
                             split.get("count"), split.get("size"), int(crop) if crop else None)
    return pixels, "" if pixels else "the dataset has no pixel statistics (stats.h5)"


def solver_network(msg, solver_dir):
    """Return (text, path) of the network a solver file trains (train_net, else net, relative to its
    folder), or None when it names none or the file is not there."""
    import os

    for name in ("train_net", "net"):
        if msg.has(name):
            path = os.path.join(solver_dir, str(msg.get(name)))
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as fh:
                    return fh.read(), path
    return None


def loss_context(msg, info, crop=None, network=None, solver_dir=None, hint=""):
    """Return the `LossContext` of a solver: the loss of the network it names (next to it in `solver_dir`),
    else of `network` ((text, source) the job trains, when it came with the solver), and the dataset's pixels."""
    tuned = None
    for candidate in (solver_network(msg, solver_dir) if solver_dir else None, network):
        if candidate and candidate[0]:
            tuned = network_loss(*candidate)
            if tuned is not None:
                break
    pixels, why = dataset_pixels(info, crop)
    return LossContext(tuned, pixels, why, hint)


def _say(said, prefix, line):
    """Replace the line starting with `prefix` (the plain mapping) by `line`, or append it."""
    for i, old in enumerate(said):
        if old.startswith(prefix):
            said[i] = line
            return
    said.append(line)


def factor(normalization, pixels, batch_size):
    """K: how many times Caffe's gradient is ours, for one batch of `batch_size` images."""
    if normalization == "VALID":
        return 1.0
    if normalization == "FULL":
        return pixels.labelled / pixels.total
    if normalization == "BATCH_SIZE":
        return pixels.labelled
    return pixels.labelled * batch_size


def _g(x):
    return float("%.6g" % x)


def _k(k):
    return "{:,.0f}".format(k) if k >= 100 else "%.4g" % k


def rescale(fields, said, msg, source, context, batch_size, keep=()):
    """Make `fields["base_lr"]` / `["weight_decay"]` right for our loss, or refuse; append what was done to `said`.

    Args:
        context: a `LossContext`: the `TunedLoss` of the network the solver was tuned with (None: unknown),
            `Pixels` of the job's dataset and crop for K (None, with `why`), `hint` naming how to give the net.
        keep: form fields the caller sets itself (a base_lr given there is neither rescaled nor refused).
    """
    from ..errors import ValidationError

    tuned, pixels, why, hint = context.tuned, context.pixels, context.why, context.hint

    lr = fields.get("base_lr")
    line = "%s line %s" % (source, msg.line_of("base_lr"))
    if tuned is None:
        if lr is not None and lr < TINY_LR and "base_lr" not in keep:
            raise ValidationError(
                "%s: base_lr %g is a rate for an unnormalised (summed) loss, as in FCN's solvers; digits-seg averages "
                "the loss over labelled pixels, so at this rate the network would barely change. The network the "
                "solver was tuned with is not known, so the rate cannot be rescaled: %sgive the base learning "
                "rate yourself (for a loss with normalize: false, base_lr x labelled pixels per image, e.g. "
                "1e-14 x 500 x 375 = 1.9e-9)" % (line, lr, hint + ", or " if hint else ""), field="solver")
        if lr is not None:
            _say(said, "base_lr ", "base_lr %g -> base_lr %g (taken as a rate for a loss averaged over labelled "
                 "pixels, as digits-seg trains: the network it was tuned with is not known)" % (lr, lr))
        return
    if tuned.normalization == "VALID":
        said.append("the solver's network averages its loss over labelled pixels as digits-seg does (%s): rates "
                    "kept" % tuned.where)
        return
    if pixels is None:
        if lr is None or "base_lr" in keep:
            return
        raise ValidationError(
            "%s: base_lr %g was tuned for a loss divided by %s (%s); digits-seg divides by the labelled pixels, so "
            "the rate must be multiplied by the labelled pixels per image, and %s: choose the dataset first, or "
            "give the base learning rate yourself" % (line, lr, DIVISOR[tuned.normalization], tuned.where, why),
            field="solver")
    k = factor(tuned.normalization, pixels, batch_size)
    meaning = {"FULL": "the labelled share of the pixels", "BATCH_SIZE": "the labelled pixels per image",
               "NONE": "the labelled pixels per batch of %d" % batch_size}[tuned.normalization]
    where = next((i for i, old in enumerate(said) if old.startswith("base_lr ")), len(said))
    said.insert(where, "the solver's network divides its summed loss by %s (%s); digits-seg divides by the labelled "
                "pixels, so Caffe's gradient is K = %s times ours (K = %s; %s)"
                % (DIVISOR[tuned.normalization], tuned.where, _k(k), meaning, pixels.how))
    if lr is not None and "base_lr" not in keep:
        kind = fields.get("solver_type", "SGD")
        if kind in SCALE_FREE:
            _say(said, "base_lr ", "base_lr %g -> base_lr %g (kept: %s steps do not grow with the gradient's scale)"
                 % (lr, lr, kind))
        else:
            fields["base_lr"] = _g(lr * k)
            _say(said, "base_lr ", "base_lr %g x K %s -> base_lr %g (the same SGD steps on our loss)"
                 % (lr, _k(k), fields["base_lr"]))
    if fields.get("weight_decay") and "weight_decay" not in keep:
        wd = fields["weight_decay"]
        fields["weight_decay"] = _g(wd / k)
        _say(said, "weight_decay ", "weight_decay %g / K %s -> weight_decay %g (the decay per step, lr x "
             "weight_decay, stays Caffe's)" % (wd, _k(k), fields["weight_decay"]))
