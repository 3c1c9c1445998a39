"""Legacy V1 networks (`layers { type: CONVOLUTION blobs_lr: 1 }`) upgraded to V2 `layer` messages.

Many published Caffe models (CaffeNet, the original FCNs) still use V1; the compiler
upgrades them on the fly, and `.caffemodel` files name V1 layer types by wire number.
"""

from .message import Enum, Message, PrototxtError

# V1LayerParameter.LayerType: enum name -> (wire number, V2 type string).
V1_LAYER_TYPES = {
    "NONE": (0, ""), "ACCURACY": (1, "Accuracy"), "BNLL": (2, "BNLL"), "CONCAT": (3, "Concat"),
    "CONVOLUTION": (4, "Convolution"), "DATA": (5, "Data"), "DROPOUT": (6, "Dropout"),
    "EUCLIDEAN_LOSS": (7, "EuclideanLoss"), "FLATTEN": (8, "Flatten"),
    "HDF5_DATA": (9, "HDF5Data"), "HDF5_OUTPUT": (10, "HDF5Output"), "IM2COL": (11, "Im2col"),
    "IMAGE_DATA": (12, "ImageData"), "INFOGAIN_LOSS": (13, "InfogainLoss"),
    "INNER_PRODUCT": (14, "InnerProduct"), "LRN": (15, "LRN"),
    "MULTINOMIAL_LOGISTIC_LOSS": (16, "MultinomialLogisticLoss"), "POOLING": (17, "Pooling"),
    "RELU": (18, "ReLU"), "SIGMOID": (19, "Sigmoid"), "SOFTMAX": (20, "Softmax"),
    "SOFTMAX_LOSS": (21, "SoftmaxWithLoss"), "SPLIT": (22, "Split"), "TANH": (23, "TanH"),
    "WINDOW_DATA": (24, "WindowData"), "ELTWISE": (25, "Eltwise"), "POWER": (26, "Power"),
    "SIGMOID_CROSS_ENTROPY_LOSS": (27, "SigmoidCrossEntropyLoss"),
    "HINGE_LOSS": (28, "HingeLoss"), "MEMORY_DATA": (29, "MemoryData"),
    "ARGMAX": (30, "ArgMax"), "THRESHOLD": (31, "Threshold"), "DUMMY_DATA": (32, "DummyData"),
    "SLICE": (33, "Slice"), "MVN": (34, "MVN"), "ABSVAL": (35, "AbsVal"),
    "SILENCE": (36, "Silence"), "CONTRASTIVE_LOSS": (37, "ContrastiveLoss"),
    "EXP": (38, "Exp"), "DECONVOLUTION": (39, "Deconvolution"),
}
_V1_BY_NUMBER = {num: v2 for num, v2 in V1_LAYER_TYPES.values()}


def v1_type_name(value):
    """Map a V1 layer type (enum name, or its wire number) to the V2 type string.

    Unknown numbers become "V1_<n>" so the compiler can name them in its error.
    """
    if isinstance(value, bool):
        raise ValueError("a V1 layer type cannot be a boolean")
    if isinstance(value, int):
        return _V1_BY_NUMBER.get(value, "V1_%d" % value)
    if isinstance(value, Enum) or value.isupper():
        entry = V1_LAYER_TYPES.get(str(value))
        return entry[1] if entry else str(value)
    return str(value)  # already a V2-style name such as "Convolution"


# V1 fields whose meaning moved into V2 `param { ... }` messages, by position.
_V1_PARAM_FIELDS = {"param": "name", "blob_share_mode": "share_mode",
                    "blobs_lr": "lr_mult", "weight_decay": "decay_mult"}


def _upgrade_layer(old):
    new = Message(line=old.line, column=old.column)
    params = {}
    for f in old.fields:
        if f.name == "type":
            if isinstance(f.value, (bool, float, Message)):
                raise PrototxtError("layer type must be an identifier such as CONVOLUTION",
                                    f.line or 0, f.column or 0)
            new.add("type", v1_type_name(f.value), f.line, f.column)
        elif f.name in _V1_PARAM_FIELDS:
            params.setdefault(f.name, []).append(f)
        elif f.name == "layer":
            raise PrototxtError("V0 network format (a 'layer' inside 'layers') is not supported; "
                                "upgrade it with Caffe's upgrade_net_proto_text tool",
                                f.line or 0, f.column or 0)
        else:
            new.add(f.name, f.value, f.line, f.column)
    count = max((len(v) for v in params.values()), default=0)
    for i in range(count):
        p = Message(line=old.line)
        for old_name, new_name in _V1_PARAM_FIELDS.items():
            items = params.get(old_name, [])
            if i < len(items):
                p.add(new_name, items[i].value, items[i].line, items[i].column)
        new.add("param", p, p.line)
    return new


def upgrade_v1(net):
    """Return a copy of `net` whose V1 `layers` are V2 `layer` messages (types renamed,
    `blobs_lr`/`weight_decay`/`param` turned into `param { lr_mult decay_mult name }`).

    A net without `layers` is returned as an unchanged copy. Mixing both is an error, as
    in Caffe, because the layer order between the two lists would be ambiguous.
    """
    if not net.has("layers"):
        return net.copy()
    if net.has("layer"):
        line = net.line_of("layers", 0) or 1
        raise PrototxtError("network mixes 'layer' and legacy 'layers' entries; use only 'layer'",
                            line, 1)
    out = Message(line=net.line, column=net.column)
    for f in net.fields:
        if f.name == "layers":
            if not isinstance(f.value, Message):
                raise PrototxtError("'layers' must be a message { ... }", f.line or 0, f.column or 0)
            out.add("layer", _upgrade_layer(f.value), f.line, f.column)
        else:
            out.add(f.name, f.value.copy() if isinstance(f.value, Message) else f.value,
                    f.line, f.column)
    return out
