"""Compile a Caffe network description into a `torch.nn.Module` that runs its layer DAG.

Call flow::

    compile_net(text | Message, phase, stages)
      -> _select_layers      include/exclude rules (phase TRAIN/TEST, stages)
      -> _Builder.build      walk layers in file order, resolve blobs by name (a top that
                             re-uses a name makes a new version: in-place ReLU etc.),
                             build each layer from LAYERS with the bottoms' shapes
      -> CaffeNet            a flat execution plan: (module, bottom slots, top slots)

Data layers are not executed: their tops become aliases of our inputs `data`/`label`.
"""

from collections import OrderedDict

import torch

from ..errors import ValidationError
from . import prototxt
from .v1_layers import upgrade_v1
from .layers import DATA_LAYER_TYPES, LAYERS, LayerSpec, supported_types
from .layers.base import param_mults
from .layers.loss import loss_class_weights, loss_settings

PHASES = {"train": ("TRAIN", "train"), "val": ("TEST", "val"), "deploy": ("TEST", "deploy")}
"""Our phase names -> (Caffe phase, implied stage), as DIGITS used them."""

LOSS_FREE_DROP = ("Accuracy",)
INPLACE_SAFE_PRODUCERS = ("Convolution", "Deconvolution", "InnerProduct", "BatchNorm",
                          "Scale", "Bias", "Eltwise", "Concat")
"""An in-place ReLU may overwrite these layers' outputs: their backward never reads them
(views such as Crop/Slice/Reshape, or ReLU/Sigmoid/TanH outputs, must stay intact)."""
DEFAULT_INPUT_SHAPE = (3, 224, 224)
"""C, H, W assumed for shape inference when neither the caller nor the prototxt says."""


def _rule_matches(rule, phase, stages):
    if rule.has("phase") and str(rule.get("phase")).upper() != phase:
        return False
    if any(str(s) not in stages for s in rule.get_all("stage")):
        return False
    if any(str(s) in stages for s in rule.get_all("not_stage")):
        return False
    level = 0    # the net's level (NetState.level) is always 0 here
    low, high = rule.get("min_level", level), rule.get("max_level", level)
    return _is_number(low) and _is_number(high) and low <= level <= high


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def layer_included(layer, phase, stages):
    """Apply Caffe's NetStateRule logic: any include matches, or no exclude matches."""
    includes, excludes = layer.get_all("include"), layer.get_all("exclude")
    for rule in includes + excludes:
        if not isinstance(rule, prototxt.Message):
            raise ValidationError("layer '%s' (line %s): include/exclude must be a block like "
                                  "include { phase: TRAIN }, got %r"
                                  % (layer.get("name", "?"), layer.line, rule), field="network")
    if includes:
        return any(_rule_matches(r, phase, stages) for r in includes)
    return not any(_rule_matches(r, phase, stages) for r in excludes)


def _as_message(net, source):
    if isinstance(net, (str, bytes)):
        net = prototxt.parse(net, source)
    if not isinstance(net, prototxt.Message):
        raise TypeError("compile_net needs prototxt text or a Message, got %r" % type(net))
    if net.has("layers"):
        net = upgrade_v1(net)
    for name in ("layer", "input_shape"):
        for value in net.get_all(name):
            if not isinstance(value, prototxt.Message):
                raise ValidationError("%s line %s: '%s' must be a block %s { ... }, got %r"
                                      % (source, net.line_of(name), name, name, value),
                                      field="network")
    return net


def resolve_phase(phase, stages=()):
    """Return (Caffe phase, set of stages) for our phase name."""
    if phase not in PHASES:
        raise ValidationError("unknown phase '%s'; use one of %s" % (phase, ", ".join(PHASES)),
                              field="phase")
    caffe_phase, stage = PHASES[phase]
    return caffe_phase, {stage} | {str(s) for s in stages}


def declared_input_shape(net):
    """Return (C, H, W) from `input_shape`/`input_dim`/an Input layer, or None."""
    dims = []
    shape = net.get("input_shape")
    if shape is not None:
        dims = shape.get_all("dim")
    elif net.has("input_dim"):
        dims = net.get_all("input_dim")[:4]
    else:
        for layer in net.get_all("layer"):
            if str(layer.get("type")) == "Input":
                p = layer.get("input_param")
                shp = p.get("shape") if isinstance(p, prototxt.Message) else None
                if isinstance(shp, prototxt.Message):
                    dims = shp.get_all("dim")
                break
    if len(dims) == 4:
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
            raise ValidationError("input dims must be positive integers, got %s" % (dims,),
                                  field="network")
        return tuple(int(d) for d in dims[1:])
    return None


def _where(layer, source):
    line = getattr(layer, "line", None)
    return "layer '%s' (%s%s)" % (layer.get("name", "?"), layer.get("type", "?"),
                                  " at %s line %s" % (source, line) if line else "")


def describe_data_layer(layer, source="<string>"):
    """Name a data layer for messages: 'data' (Python VOCSegDataLayer at FILE line 1)."""
    kind = str(layer.get("type", "?"))
    p = layer.get("python_param")
    if kind == "Python" and isinstance(p, prototxt.Message) and p.has("layer"):
        kind += " " + str(p.get("layer"))
    line = getattr(layer, "line", None)
    return "'%s' (%s%s)" % (layer.get("name", "?"), kind, " at %s line %s" % (source, line) if line else "")


def _is_loss(type_name):
    return type_name.endswith("Loss")


def find_loss_layer(net):
    """Return the first SoftmaxWithLoss layer in any phase (for score blob / loss spec)."""
    for layer in net.get_all("layer"):
        if str(layer.get("type")) == "SoftmaxWithLoss":
            return layer
    return None


class _Builder:
    """Walks the selected layers once, producing the execution plan and per-layer info."""

    def __init__(self, net, phase, stages, include_loss, input_shape, source):
        self.net, self.source = net, source
        self.phase_name = phase
        self.caffe_phase, self.stages = resolve_phase(phase, stages)
        self.include_loss = include_loss
        c, h, w = input_shape or declared_input_shape(net) or DEFAULT_INPUT_SHAPE
        self.input_shapes = {"data": (1, c, h, w), "label": (1, 1, h, w)}
        self.slot_shapes = [self.input_shapes["data"], self.input_shapes["label"]]
        self.current = {"data": 0, "label": 1}     # blob name -> latest slot
        self.producer = {0: None, 1: None}
        self.used = set()                          # slots read by a later layer
        self.modules = OrderedDict()
        self.steps = []                            # (name, bottom slots, top slots)
        self.info = []
        self.loss_weights = {}
        self.notes = []
        self.unbound = {}                          # extra data-layer tops -> their layer

    def _data_layer(self, layer):
        """Bind the first top to `data`, the second (or `label`) to `label`; others stay unbound."""
        tops = [str(t) for t in layer.get_all("top")]
        for i, top in enumerate(tops):
            if top == "label" or (i == 1 and top != "data"):
                self.current[top] = 1
            elif i == 0:
                self.current[top] = 0
            else:
                self.unbound[top] = layer

    def build(self):
        later_tops = {}
        layers = [l for l in self.net.get_all("layer")
                  if layer_included(l, self.caffe_phase, self.stages)]
        for i, layer in enumerate(layers):
            for t in layer.get_all("top"):
                later_tops.setdefault(str(t), i)
        for j, inp in enumerate(self.net.get_all("input")[:2]):
            self.current[str(inp)] = j
        seen_names = set()
        for i, layer in enumerate(layers):
            type_name = str(layer.get("type", ""))
            name = str(layer.get("name", "layer%d" % i))
            if type_name in DATA_LAYER_TYPES:
                self._data_layer(layer)
                continue
            if not self.include_loss and (_is_loss(type_name) or type_name in LOSS_FREE_DROP):
                continue
            if name in seen_names:
                raise ValidationError("%s: a layer named '%s' already exists in phase %s; "
                                      "layer names must be unique" % (_where(layer, self.source),
                                                                      name, self.phase_name),
                                      field="network")
            seen_names.add(name)
            self._add_layer(i, layer, name, type_name, later_tops)
        return self

    def _bottom_slot(self, i, layer, bottom, later_tops):
        if bottom in self.current:
            if bottom == "label" and self.current[bottom] == 1 and self.phase_name == "deploy":
                raise ValidationError("%s uses the label in the deploy phase; add "
                                      "exclude { stage: \"deploy\" } to it"
                                      % _where(layer, self.source), field="network")
            return self.current[bottom]
        if bottom in self.unbound:
            raise ValidationError("%s: bottom '%s' is the extra top of data layer %s; only the first two "
                                  "tops are bound to our dataset's data and label (one label per image), "
                                  "so this top is not supported: remove the layers that use it"
                                  % (_where(layer, self.source), bottom,
                                     describe_data_layer(self.unbound[bottom], self.source)),
                                  field="network")
        if bottom in later_tops and later_tops[bottom] >= i:
            why = ("it is produced by a later layer (a cycle, or layers out of order; "
                   "Caffe runs layers in file order)")
        else:
            why = "no layer produces it in phase '%s'" % self.phase_name
        raise ValidationError("%s: bottom '%s' does not exist: %s. Available blobs: %s"
                              % (_where(layer, self.source), bottom, why,
                                 ", ".join(sorted(self.current))), field="network")

    def _add_layer(self, i, layer, name, type_name, later_tops):
        builder = LAYERS.get(type_name)
        if builder is None:
            raise ValidationError("%s: unknown layer type '%s'. Supported types: %s"
                                  % (_where(layer, self.source), type_name,
                                     ", ".join(supported_types())), field="network")
        bottoms = [str(b) for b in layer.get_all("bottom")]
        tops = [str(t) for t in layer.get_all("top")]
        bslots = [self._bottom_slot(i, layer, b, later_tops) for b in bottoms]
        spec = LayerSpec(layer, [self.slot_shapes[s] for s in bslots], self.phase_name,
                         len(tops), self.source)
        module = builder(spec)
        if len(module.out_shapes) != len(tops):
            raise spec.error("produces %d blob(s) but names %d top(s)"
                             % (len(module.out_shapes), len(tops)))
        self.notes.extend(getattr(module, "notes", []))
        if (type_name == "ReLU" and tops == bottoms and bslots[0] not in self.used
                and self.producer.get(bslots[0]) in INPLACE_SAFE_PRODUCERS):
            module.inplace = True
        self.used.update(bslots)
        tslots = []
        for top, shape in zip(tops, module.out_shapes):
            slot = len(self.slot_shapes)
            self.slot_shapes.append(shape)
            self.producer[slot] = type_name
            self.current[top] = slot
            tslots.append(slot)
        weights = spec.numbers(layer, "loss_weight", float)
        for j, top in enumerate(tops):
            w = weights[j] if j < len(weights) else (1.0 if _is_loss(type_name) and j == 0 else 0.0)
            if w:
                self.loss_weights[top] = w
        blobs = module.caffe_blobs()
        mults = param_mults(spec, len(blobs))
        self.modules[name] = module
        self.steps.append((name, bslots, tslots))
        self.info.append({"name": name, "type": type_name, "bottoms": bottoms, "tops": tops,
                          "shapes": [list(s) for s in module.out_shapes],
                          "params": sum(int(b.numel()) for b in blobs
                                        if isinstance(b, torch.nn.Parameter)),
                          "lr_mult": [m[0] for m in mults], "decay_mult": [m[1] for m in mults],
                          "shared": [str(p.get("name", "")) for p in layer.get_all("param")],
                          "line": getattr(layer, "line", None)})


class CaffeNet(torch.nn.Module):
    """A compiled network: `forward(data, label=None)` returns a dict of output blobs.

    Outputs are the blobs no later layer reads (loss blobs included) plus `score_blob`.
    """

    def __init__(self, builder, score_blob, loss_spec, name=""):
        super().__init__()
        self.net_name = name
        self.phase = builder.phase_name
        self.layers = torch.nn.ModuleList(builder.modules.values())
        self.layer_names = list(builder.modules)
        self.layer_info = builder.info
        self.input_shapes = builder.input_shapes
        self.loss_weights = dict(builder.loss_weights)
        self.score_blob = score_blob
        self.loss_spec = loss_spec
        self.notes = builder.notes
        mods = builder.modules
        self._uses_label = 1 in builder.used
        outputs = []
        for blob, slot in builder.current.items():
            if slot > 1 and (slot not in builder.used or blob == score_blob):
                outputs.append((blob, slot))
        self._outputs = outputs
        keep = {slot for _, slot in outputs}
        last_use = {}
        for k, (_, bslots, _) in enumerate(builder.steps):
            for s in bslots:
                last_use[s] = k
        frees = [[] for _ in builder.steps]
        for s, k in last_use.items():
            if s not in keep:
                frees[k].append(s)
        self._plan = [(mods[n], tuple(b), tuple(t), len(t) == 1, tuple(frees[k]))
                      for k, (n, b, t) in enumerate(builder.steps)]
        self._nslots = len(builder.slot_shapes)
        self._mults = []
        shared = {}
        for info, module in zip(self.layer_info, self.layers):
            for j, blob in enumerate(module.caffe_blobs()):
                if not isinstance(blob, torch.nn.Parameter):
                    continue
                key = info["shared"][j] if j < len(info["shared"]) else ""
                if key and key in shared:
                    _share(module, blob, shared[key], info["name"])
                    continue
                if key:
                    shared[key] = blob
                lr, dm = info["lr_mult"][j], info["decay_mult"][j]
                blob.requires_grad_(lr != 0)
                self._mults.append((blob, lr, dm))
        self.train(self.phase == "train")

    def forward(self, data, label=None):
        if label is None and self._uses_label:
            raise ValidationError("this network (phase %s) needs a label blob" % self.phase)
        slots = [None] * self._nslots
        slots[0] = data
        slots[1] = label
        for module, bins, touts, single, frees in self._plan:
            out = module(*[slots[i] for i in bins])
            if single:
                slots[touts[0]] = out
            else:
                for i, t in zip(touts, out):
                    slots[i] = t
            for i in frees:
                slots[i] = None
        return {name: slots[i] for name, i in self._outputs}

    def total_loss(self, outputs):
        """Sum the loss blobs weighted by their `loss_weight` (Caffe's objective)."""
        total = None
        for blob, w in self.loss_weights.items():
            if blob in outputs:
                term = outputs[blob] * w
                total = term if total is None else total + term
        return total

    def param_groups(self, base_lr, weight_decay):
        """Return torch.optim groups with lr = base_lr*lr_mult, wd = weight_decay*decay_mult."""
        groups = OrderedDict()
        for blob, lr, dm in self._mults:
            if lr == 0:
                continue
            groups.setdefault((lr, dm), []).append(blob)
        return [{"params": ps, "lr": base_lr * lr, "weight_decay": weight_decay * dm,
                 "lr_mult": lr, "decay_mult": dm} for (lr, dm), ps in groups.items()]

    def layer_blobs(self):
        """Return layer name -> its tensors in Caffe blob order (layers with blobs only)."""
        out = OrderedDict()
        for name, module in zip(self.layer_names, self.layers):
            blobs = module.caffe_blobs()
            if blobs:
                out[name] = blobs
        return out


def _share(module, blob, target, layer_name):
    if blob.shape != target.shape:
        raise ValidationError("layer '%s': shared parameter has shape %s but the first owner's "
                              "is %s" % (layer_name, list(blob.shape), list(target.shape)),
                              field="network")
    for attr, value in list(module.named_parameters(recurse=False)):
        if value is blob:
            setattr(module, attr, target)


def compile_net(net, phase="train", stages=(), include_loss=True, input_shape=None,
                device=None, source="<string>"):
    """Compile prototxt text or a Message into a `CaffeNet` for `phase` (train/val/deploy).

    Args:
        input_shape: (C, H, W) used for shape inference and InnerProduct sizes; default
            from the prototxt's input declaration, else 3×224×224. Fully convolutional
            networks run at any size regardless.
        device: build parameters there (``"meta"`` for shape inference without memory).
    """
    msg = _as_message(net, source)
    builder = _Builder(msg, phase, stages, include_loss, input_shape, source)
    if device is not None:
        with torch.device(device):
            builder.build()
    else:
        builder.build()
    loss_layer = find_loss_layer(msg)
    loss_spec = {"ignore_label": None, "normalization": "VALID", "class_weights": None}
    score = None
    if loss_layer is not None:
        spec = LayerSpec(loss_layer, [], phase, 1, source)
        ignore, norm = loss_settings(spec)
        loss_spec = {"ignore_label": ignore, "normalization": norm,
                     "class_weights": loss_class_weights(spec)}
        bottoms = [str(b) for b in loss_layer.get_all("bottom")]
        if bottoms and bottoms[0] in builder.current:
            score = bottoms[0]
    if score is None:
        produced = [b for b, s in builder.current.items() if s > 1 and s not in builder.used]
        four_d = [b for b in produced if len(builder.slot_shapes[builder.current[b]]) == 4]
        if len(four_d) == 1:
            score = four_d[0]
    if not builder.steps:
        raise ValidationError("%s has no computing layers in phase '%s'" % (source, phase),
                              field="network")
    return CaffeNet(builder, score, loss_spec, str(msg.get("name", "")))
