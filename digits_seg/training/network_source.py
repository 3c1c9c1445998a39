"""Resolve the network a model job trains: prototxt text plus the weights to start from.

Standard networks are generated for the dataset's class count. A previous or pretrained
model trained for a different number of classes is adapted by net surgery: every layer
whose `num_output` (and, for the bilinear Deconvolution upsampler, `group`) equals the old
class count is set to the new one, and `load_weights(reinit="all-mismatched")` re-initialises
exactly those layers; the log names them.
"""

import os

from ..errors import NotFoundError, ValidationError


def read_labels(folder):
    """Class names from `<folder>/labels.txt` (one per line), or None when absent."""
    path = os.path.join(folder, "labels.txt")
    if not os.path.exists(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def score_channels(text):
    """Return the channel count of a network's score blob (its classes), or None when it cannot be told."""
    from ..errors import DigitsSegError
    from ..networks.compiler import compile_net

    try:
        net = compile_net(text, "train", include_loss=False, device="meta", source="custom network")
    except DigitsSegError:
        return None
    shape = None
    for info in net.layer_info:
        if net.score_blob in info["tops"]:
            shape = info["shapes"][info["tops"].index(net.score_blob)]
    return shape[1] if shape is not None and len(shape) == 4 else None


def adapt_class_count(text, old, new, log):
    """Return `text` with class-dependent layers changed from `old` to `new` outputs (and their names)."""
    from ..networks.prototxt import format_message, parse

    if old is None or old == new:
        return text, []
    msg = parse(text, source="network.prototxt")
    changed = []
    for layer in msg.get_all("layer") + msg.get_all("layers"):
        for pname in ("convolution_param", "inner_product_param"):
            p = layer.get(pname)
            if p is not None and p.get("num_output") == old:
                p.set("num_output", new)
                if p.get("group") == old:
                    p.set("group", new)
                changed.append(str(layer.get("name")))
    if not changed:
        raise ValidationError(
            "The network was trained for %d classes but the dataset has %d, and no layer with num_output %d "
            "was found to adapt; edit the network description so its last layers output %d classes"
            % (old, new, old, new),
            field="network",
        )
    log("Class count %d -> %d: changed num_output of %s (these layers are re-initialised)" % (old, new, ", ".join(changed)))
    return format_message(msg), changed


def resolve_network(params, num_classes, log, pretrained_dir=None, previous_dir=None):
    """Return (prototxt_text, weights_path or None) for the job's network choice."""
    net = params["network"]
    kind = net["kind"]
    if kind == "standard":
        from ..networks.standard import standard_prototxt

        return standard_prototxt(net["name"], num_classes), None
    if kind == "custom":
        # A file written for another dataset (FCN's for VOC's 21 classes) trains unmodified otherwise:
        # its class-count layers follow the dataset, as for a pretrained model.
        text = net["prototxt"]
        text, _ = adapt_class_count(text, score_channels(text), num_classes, log)
        return text, None
    if kind == "previous":
        folder, label = previous_dir, "previous model"
    else:
        folder, label = pretrained_dir, "pretrained model"
    if not folder or not os.path.isdir(folder):
        raise NotFoundError("The %s %s no longer exists; choose another network" % (label, net.get("job_id")))
    proto = os.path.join(folder, "network.prototxt")
    if not os.path.exists(proto):
        raise NotFoundError("The %s has no network.prototxt (%s)" % (label, proto))
    with open(proto, "r", encoding="utf-8") as f:
        text = f.read()
    if kind == "previous":
        from .snapshots import resolve_snapshot

        weights = resolve_snapshot(folder, net.get("snapshot") or "best")
    else:
        weights = None
        for name in ("weights.h5", "weights.caffemodel"):
            if os.path.exists(os.path.join(folder, name)):
                weights = os.path.join(folder, name)
                break
        if weights is None:
            # A network-only store entry (e.g. U-Net): its description is the useful part.
            log("The pretrained model has no weights: every layer starts from its filler.")
    old_labels = read_labels(folder)
    text, _ = adapt_class_count(text, len(old_labels) if old_labels else None, num_classes, log)
    if weights:
        log("Starting from the weights of the %s: %s" % (label, weights))
    return text, weights
