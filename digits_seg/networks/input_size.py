"""Which input size a network's shapes and parameter counts are worked out at, and what depends on it.

A file with an Input layer (or `input_shape`) states its size; a train/val file with Data or
Python layers does not (the size lives in the LMDB or in the layer's code). Its shapes are then
worked out at an assumed 3×224×224, and an InnerProduct after spatial layers gets a parameter
count that belongs to the assumption, not to the network (Caffe's LeNet: 70,257,080 at 3×224×224,
431,080 at its real 1×28×28). `InputSize` says where the size came from; `input_dependence`
finds the layers whose parameter counts change with it, by building the net at other sizes.
"""

from dataclasses import dataclass

from ..errors import DigitsSegError
from .compiler import DEFAULT_INPUT_SHAPE, compile_net, declared_input_shape, describe_data_layer
from .layers import DATA_LAYER_TYPES

ORIGINS = ("given", "dataset", "declared", "assumed")
"""given: by the caller (--input); dataset: the model's dataset; declared: the file; assumed: the default."""
SIZE, CHANNELS = "height and width", "channels"
MARKS = {SIZE: "*", CHANNELS: "^"}
"""Table marks for counts that depend on the input's height and width, or on its channels."""


def shape_text(shape):
    """'3×224×224' for (3, 224, 224)."""
    return "×".join(str(int(d)) for d in shape)


@dataclass(frozen=True)
class InputSize:
    """The (C, H, W) a network was built at, where it came from (`ORIGINS`) and why, in words."""

    shape: tuple
    origin: str
    reason: str

    @property
    def assumed(self):
        return self.origin == "assumed"

    def text(self):
        """One line for `network show`: the size, and whether it was stated or assumed."""
        if self.assumed:
            return "input %s ASSUMED: %s" % (shape_text(self.shape), self.reason)
        return "input %s, %s" % (shape_text(self.shape), self.reason)

    def to_dict(self):
        return {"shape": [int(d) for d in self.shape], "origin": self.origin, "assumed": self.assumed,
                "reason": self.reason}


def _declaration(msg):
    """Where the file states its input: "Input layer 'data' (line 2)", "input_shape (line 1)", or ""."""
    for name in ("input_shape", "input_dim"):
        if msg.has(name):
            return "%s (line %s)" % (name, msg.line_of(name))
    for layer in msg.get_all("layer"):
        if str(layer.get("type")) == "Input":
            return "Input layer '%s' (line %s)" % (layer.get("name", "?"), getattr(layer, "line", "?"))
    return ""


def resolve_input(msg, input_shape=None, origin="given", reason="", source="<string>"):
    """Return the `InputSize` to build `msg` at: the caller's, else the file's declaration, else assumed.

    Args:
        input_shape: (C, H, W) from the caller (`origin` says whose: given or dataset), or None.
        reason: words for the caller's size; with no size, why none was known (replaces the default words).
    """
    if input_shape is not None:
        words = reason or {"given": "given with --input", "dataset": "the dataset's"}.get(origin, origin)
        return InputSize(tuple(int(d) for d in input_shape), origin, words)
    try:
        declared = declared_input_shape(msg)
    except DigitsSegError:
        declared = None
    if declared is not None:
        return InputSize(declared, "declared", "stated in the file: %s" % _declaration(msg))
    data = [describe_data_layer(l, source) for l in msg.get_all("layer")
            if str(l.get("type", "")) in DATA_LAYER_TYPES and str(l.get("type")) != "Input"]
    if reason:
        why = reason
    elif data:
        why = ("the file does not state its input size (data layer%s %s read%s images of a size the file "
               "does not give)" % ("s" if len(data) > 1 else "", ", ".join(data), "" if len(data) > 1 else "s"))
    else:
        why = "the file names no input layer or input size"
    return InputSize(tuple(DEFAULT_INPUT_SHAPE), "assumed", why)


def _counts(msg, phase, include_loss, shape, source):
    try:
        net = compile_net(msg, phase, include_loss=include_loss, input_shape=shape, device="meta", source=source)
    except DigitsSegError:
        return None
    return {i["name"]: i["params"] for i in net.layer_info}


def _fully_connected_on_maps(net):
    """InnerProduct layers whose bottom still has a spatial extent (the fallback when a rebuild fails)."""
    shapes = {"data": net.input_shapes["data"]}
    out = []
    for info in net.layer_info:
        if info["type"] == "InnerProduct" and info["bottoms"]:
            shape = shapes.get(info["bottoms"][0])
            if shape is not None and len(shape) > 2 and any(d > 1 for d in shape[2:]):
                out.append(info["name"])
        for top, shape in zip(info["tops"], info["shapes"]):
            shapes[top] = shape
    return out


def input_dependence(msg, phase, include_loss, net, shape, source="<string>"):
    """Return {layer: what its parameter count depends on (SIZE, CHANNELS or both)} for a net built at `shape`.

    The net is rebuilt (on the meta device) with one more channel and with a larger height and
    width; a layer whose count changes depends on that. When the larger size does not build (a
    net that only fits certain sizes), InnerProduct layers over spatial maps are reported instead.
    """
    base = {i["name"]: i["params"] for i in net.layer_info}
    c, h, w = shape
    out = {}
    for what, alt in ((CHANNELS, [(c + 1, h, w)]), (SIZE, [(c, h + 32, w + 32), (c, h + 8, w + 8), (c, 2 * h, 2 * w)])):
        other = next((n for n in (_counts(msg, phase, include_loss, s, source) for s in alt) if n is not None), None)
        if other is None:
            changed = _fully_connected_on_maps(net) if what == SIZE else []
        else:
            changed = [name for name, n in base.items() if name in other and other[name] != n]
        for name in changed:
            out[name] = what if name not in out else "%s, %s" % (out[name], what)
    return {name: out[name] for name in base if name in out}


def marks(dependence):
    """Return the table mark of one layer's dependence ('*', '^', '*^' or '')."""
    return "".join(MARKS[k] for k in (SIZE, CHANNELS) if k in (dependence or ""))
