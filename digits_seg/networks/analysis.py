"""Which phases a Caffe file supports, and every problem in it at once, each with its fix.

Files people have come in three shapes: train/val (a data layer or Input, and a loss),
deploy (no label), or DIGITS' all-in-one with include/exclude rules; and sometimes a
solver file where a network was expected. `analyse` works out which of our phases each
file gives:

    analyse(text)
      -> parse; a solver file is reported as such (settings, the nets it names)
      -> scan every layer: unknown types (with what to do), Python layers that are not
         data layers, data-layer tops we cannot bind (SIFT Flow's `geo`)
      -> compile train, val and deploy on the meta device; deploy falls back to a
         *derived* deploy (loss and accuracy layers dropped, data layers -> `data` input)
      -> Analysis: phases {name: PhaseView}, problems [Problem], ok = any phase builds
"""

from dataclasses import dataclass, field

from ..errors import DigitsSegError
from . import prototxt
from .compiler import (LOSS_FREE_DROP, _as_message, compile_net, describe_data_layer, find_loss_layer,
                       layer_included, resolve_phase)
from .input_size import MARKS, SIZE, input_dependence, resolve_input, shape_text
from .layer_fixes import fix_for
from .layers import DATA_LAYER_TYPES, LAYERS, supported_types

PHASE_NAMES = ("train", "val", "deploy")
SOLVER_FIELDS = ("net", "train_net", "test_net", "net_param", "base_lr", "lr_policy", "max_iter",
                 "solver_mode", "test_iter", "snapshot_prefix", "solver_type", "type")
"""Top-level fields of a SolverParameter; a file with some of them and no layers is a solver."""
NET_FIELDS = ("net", "train_net", "test_net")



@dataclass
class Problem:
    """One finding: `severity` error|warning, the layer and line when known, and the fix."""

    severity: str
    message: str
    fix: str = ""
    layer: str = ""
    type: str = ""
    line: int = None

    def text(self):
        prefix = "warning: " if self.severity == "warning" else ""
        return prefix + self.message + (" — fix: " + self.fix if self.fix else "")

    def to_dict(self):
        return {"severity": self.severity, "message": self.message, "fix": self.fix,
                "layer": self.layer, "type": self.type, "line": self.line, "text": self.text()}


@dataclass
class PhaseView:
    """One phase: built or not, how (as written / derived), and the compiled meta net."""

    phase: str
    ok: bool
    how: str = ""
    error: str = ""
    net: object = None
    include_loss: bool = True                      # False for a derived deploy (loss layers dropped)

    def to_dict(self):
        return {"phase": self.phase, "ok": self.ok, "how": self.how, "error": self.error}


@dataclass
class Analysis:
    source: str
    kind: str = "network"                           # network | solver | unreadable
    name: str = ""
    phases: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    solver: object = None                          # prototxt.Message of a solver file
    message: object = None                         # the parsed network
    input: object = None                           # input_size.InputSize the phases were built at
    dependent: dict = field(default_factory=dict)  # layer -> what its parameter count depends on

    @property
    def ok(self):
        """True when at least one phase builds."""
        return any(v.ok for v in self.phases.values())

    def errors(self):
        return [p for p in self.problems if p.severity == "error"]

    def table(self, phase):
        """The layer table of a built phase; each row says what its parameter count depends on."""
        from .shapes import rows_from_net
        view = self.phases.get(phase)
        if view is None or not view.ok:
            return []
        rows = rows_from_net(view.net)
        for r in rows:
            r["input_dependent"] = self.dependent.get(r["name"])
        return rows

    def params_note(self, fix="--input CxHxW"):
        """Words to put after the total parameter count, or "" when it is the network's own."""
        if self.input is None or not self.input.assumed or not self.dependent:
            return ""
        kinds = set(", ".join(self.dependent.values()).split(", "))
        legend = "; ".join("%s depends on the input %s" % (MARKS[k], k) for k in MARKS if k in kinds)
        if SIZE in kinds:
            return ("at the ASSUMED input %s, not this network's own count (%s); give the real size: %s"
                    % (shape_text(self.input.shape), legend, fix))
        return "at the assumed %d input channels (%s)" % (self.input.shape[0], legend)

    def to_dict(self):
        return {"source": self.source, "kind": self.kind, "name": self.name, "ok": self.ok,
                "phases": {k: v.to_dict() for k, v in self.phases.items()},
                "problems": [p.to_dict() for p in self.problems],
                "input": self.input.to_dict() if self.input is not None else None,
                "input_dependent": dict(self.dependent)}


def is_solver(msg):
    """True for a SolverParameter text: solver fields and no layers."""
    return not (msg.has("layer") or msg.has("layers")) and any(msg.has(f) for f in SOLVER_FIELDS)


def solver_problem(msg, source):
    """The problem to report when a solver file is given where a network is expected."""
    nets = [(f, msg.get(f), msg.line_of(f)) for f in NET_FIELDS if msg.has(f)]
    if nets:
        f, value, line = nets[0]
        where = "its net is at line %s: `%s: \"%s\"`" % (line, f, value)
        fix = "give the network file (%s) instead, or pass this file as a solver" % value
    else:
        where = "it names no net file"
        fix = "give the network prototxt instead"
    return Problem("error", "%s is a solver file, not a network; %s" % (source, where), fix)


def _where(layer, source):
    line = getattr(layer, "line", None)
    return "layer '%s' (%s%s)" % (layer.get("name", "?"), layer.get("type", "?"),
                                  " at %s line %s" % (source, line) if line else "")


def scan_layers(msg, source):
    """Return problems visible without compiling: every unknown type, unsupported data tops."""
    problems = []
    layers = msg.get_all("layer")
    users = {}
    for layer in layers:
        for b in layer.get_all("bottom"):
            users.setdefault(str(b), []).append(str(layer.get("name", "?")))
    unknown = 0
    for layer in layers:
        type_name = str(layer.get("type", ""))
        base = dict(layer=str(layer.get("name", "?")), type=type_name, line=getattr(layer, "line", None))
        if type_name not in LAYERS and type_name not in DATA_LAYER_TYPES:
            unknown += 1
            problems.append(Problem("error", "%s: unknown layer type '%s'" % (_where(layer, source), type_name),
                                    fix_for(type_name), **base))
            continue
        if type_name == "Python" and layer.get_all("bottom"):
            problems.append(Problem("error", "%s: a Python layer with bottoms runs code from its own "
                                    "repository; only Python data layers are supported (replaced by our "
                                    "dataset)" % _where(layer, source),
                                    "replace it with built-in layers, or remove it", **base))
            continue
        if type_name in DATA_LAYER_TYPES:
            for top in [str(t) for t in layer.get_all("top")][2:]:
                if top == "label":
                    continue
                used = users.get(top, [])
                problems.append(Problem(
                    "error", "data layer %s: top '%s' is not supported: our datasets give one image (data) "
                    "and one label per sample%s" % (describe_data_layer(layer, source), top,
                                                     "; used by %s" % ", ".join(used) if used else ""),
                    "remove the top and the layers that use it" if used else "remove the top", **base))
    configured = [describe_data_layer(l, source) for l in layers
                  if str(l.get("type", "")) in DATA_LAYER_TYPES and str(l.get("type")) != "Input"
                  and not l.get_all("bottom")
                  and any(l.has(k) for k in ("transform_param", "python_param", "data_param", "image_data_param",
                                             "dense_image_data_param", "hdf5_data_param"))]
    if configured:
        problems.append(Problem("warning", "data layer%s %s replaced by the dataset's images and labels: %s "
                                "settings (source, param_str, transform_param: mean, crop, mirror) are not used"
                                % ("s" if len(configured) > 1 else "", ", ".join(configured),
                                   "their" if len(configured) > 1 else "its"),
                                "set mean subtraction, crop and flips in the model form"))
    mc = [str(l.get("name", "?")) for l in layers if str(l.get("type", "")) == "Dropout"
          and isinstance(l.get("dropout_param"), prototxt.Message)
          and bool(l.get("dropout_param").get("sample_weights_test", False))]
    if mc:
        problems.append(Problem("warning", "sample_weights_test (Bayesian SegNet's Monte-Carlo dropout at test "
                                "time) is not implemented: %s drop nothing at test time, so inference is one "
                                "deterministic pass without an uncertainty estimate" % ", ".join(mc)))
    if unknown:
        problems.append(Problem("warning", "supported layer types: %s" % ", ".join(supported_types())))
    return problems


def _unfilled(msg):
    out = []
    for layer in msg.get_all("layer"):
        if str(layer.get("type")) not in ("Convolution", "Deconvolution", "InnerProduct"):
            continue
        p = layer.get("convolution_param") or layer.get("inner_product_param")
        params = layer.get_all("param")
        frozen = bool(params) and all(isinstance(x, prototxt.Message) and x.get("lr_mult", 1) == 0
                                      for x in params)
        if p is not None and p.get("weight_filler") is None and not frozen:
            out.append("%s (line %s)" % (layer.get("name"), layer.line))
    return out


def _dropped(msg, phase):
    caffe_phase, stages = resolve_phase(phase)
    return ["%s (%s)" % (l.get("name", "?"), l.get("type")) for l in msg.get_all("layer")
            if layer_included(l, caffe_phase, stages)
            and (str(l.get("type", "")).endswith("Loss") or str(l.get("type")) in LOSS_FREE_DROP)]


def _compile(msg, phase, input_shape, source, include_loss=True):
    try:
        return compile_net(msg, phase, include_loss=include_loss, input_shape=input_shape, device="meta",
                           source=source), ""
    except DigitsSegError as exc:
        return None, exc.message


def _phases(msg, input_shape, source):
    views = {}
    for phase in ("train", "val"):
        net, err = _compile(msg, phase, input_shape, source)
        if net is None:
            views[phase] = PhaseView(phase, False, error=err)
        elif phase == "train" and not net.loss_weights:
            views[phase] = PhaseView(phase, False, error="no loss layer (a deploy file?); to train it, add a "
                                     "SoftmaxWithLoss with bottoms <scores> and label")
        elif not net._uses_label:
            train = views.get("train")
            views[phase] = PhaseView(phase, False, error=train.error if train is not None and not train.ok
                                     else "no layer reads the label, so there is nothing to validate against")
        else:
            views[phase] = PhaseView(phase, True, "as written", net=net)
    net, err = _compile(msg, "deploy", input_shape, source)
    if net is not None and not net._uses_label:
        views["deploy"] = PhaseView("deploy", True, "as written", net=net)
    else:
        derived, err2 = _compile(msg, "deploy", input_shape, source, include_loss=False)
        if derived is not None and not derived._uses_label:
            how = "derived: dropped %s" % (", ".join(_dropped(msg, "deploy")) or "nothing")
            views["deploy"] = PhaseView("deploy", True, how, net=derived, include_loss=False)
        else:
            views["deploy"] = PhaseView("deploy", False, error=err2 or err or "a layer reads the label")
    return views


def _blob_shape(net, blob):
    shape = None
    for info in net.layer_info:
        if blob in info["tops"]:
            shape = info["shapes"][info["tops"].index(blob)]
    return shape


def analyse(net, input_shape=None, source="<string>", input_origin="given", input_reason=""):
    """Return an `Analysis` of prototxt text or a Message: phases, then every problem found.

    Args:
        input_shape: (C, H, W) to build at; None: the file's declaration, else an assumed 3×224×224,
            which the analysis then says (`.input`) with the layers whose counts depend on it.
        input_origin: whose `input_shape` it is: "given" (the user) or "dataset" (the model's dataset).
        input_reason: words saying where the size came from (or, without one, why none is known).
    """
    result = Analysis(source)
    try:
        msg = net if isinstance(net, prototxt.Message) else prototxt.parse(net, source)
        if is_solver(msg):
            result.kind, result.solver = "solver", msg
            result.problems.append(solver_problem(msg, source))
            return result
        msg = _as_message(msg, source)
    except DigitsSegError as exc:
        result.kind = "unreadable"
        result.problems.append(Problem("error", exc.message, line=getattr(exc, "line", None)))
        return result
    result.message, result.name = msg, str(msg.get("name", ""))
    scanned = scan_layers(msg, source)
    result.problems.extend(scanned)
    result.input = resolve_input(msg, input_shape, input_origin, input_reason, source)
    result.phases = _phases(msg, result.input.shape, source)
    reported = {p.message for p in scanned}
    by_error = {}
    for view in result.phases.values():
        # The compiler's message appends every supported type; the scan lists them once, below.
        same = next((m for m in reported if not view.ok and m in view.error), None)
        if same is not None:
            view.error = same
        if not view.ok and not any(m in view.error or view.error in m for m in reported):
            by_error.setdefault(view.error, []).append(view.phase)
    for err, phases in by_error.items():
        severity = "warning" if phases == ["val"] and result.phases["train"].ok else "error"
        result.problems.append(Problem(severity, "phase %s: %s" % (", ".join(phases), err)))
    built = next((v.net for v in result.phases.values() if v.ok), None)
    _note_dependence(result, msg, source)
    score_shape = _blob_shape(built, built.score_blob) if built is not None and built.score_blob else None
    if score_shape is not None and len(score_shape) != 4:
        result.problems.append(Problem(
            "warning", "the score blob '%s' is %s per image, not a class map: a classification network"
            % (built.score_blob, "×".join(str(d) for d in score_shape[1:]) or "one value"),
            "digits-seg trains per-pixel segmentation: turn its InnerProduct layers into convolutions and "
            "upsample back to the input (as FCN-AlexNet does with AlexNet)"))
    deploy = result.phases.get("deploy")
    if deploy is not None and deploy.ok and deploy.net.score_blob is None:
        result.problems.append(Problem("warning", "phase deploy: cannot tell which blob holds the class "
                                       "scores (several outputs); the SoftmaxWithLoss bottom names it"))
    unfilled = _unfilled(msg)
    if unfilled:
        result.problems.append(Problem(
            "warning", "%d layer(s) have no weight_filler, so Caffe starts them at 0: %s"
            % (len(unfilled), ", ".join(unfilled)),
            "train from pretrained weights or add e.g. weight_filler { type: \"msra\" }"))
    notes = []
    for view in result.phases.values():
        for n in getattr(view.net, "notes", []) if view.net is not None else []:
            if n not in notes:
                notes.append(n)
    result.problems.extend(Problem("warning", n) for n in notes)
    unnormalised = _loss_normalisation(msg, source)
    if unnormalised:
        result.problems.append(unnormalised)
    result.problems.sort(key=lambda p: p.severity != "error")
    return result


def _loss_normalisation(msg, source):
    """A warning when the loss layer is not averaged over labelled pixels: the trainer averages it anyway."""
    layer = find_loss_layer(msg)
    p = layer.get("loss_param") if layer is not None else None
    if not isinstance(p, prototxt.Message):
        return None
    field = next((f for f in ("normalization", "normalize") if p.has(f)), None)
    value = p.get(field) if field else None
    if field is None or (field == "normalize" and bool(value)) or str(value).upper() in ("VALID", "FULL"):
        return None  # FULL divides by all pixels, ignored ones included: within the ignored share of ours
    said = ("false" if not value else "true") if isinstance(value, bool) else str(value)
    divisor = "nothing" if str(value).upper() == "NONE" else "the batch size only"
    return Problem("warning", "%s: loss_param %s: %s: the summed pixel losses are divided by %s; "
                   "digits-seg trains with the loss averaged over labelled pixels whatever the file says, so a "
                   "base_lr tuned for this file (FCN's 1e-10 to 1e-14) barely trains here"
                   % (_where(layer, source), field, said, divisor),
                   "give its solver file (train --solver FILE, or the model form's solver file) to have base_lr "
                   "rescaled by the labelled pixels per image, or set base_lr for a mean loss (e.g. 1e-4)",
                   layer=str(layer.get("name", "?")), type="SoftmaxWithLoss", line=p.line_of(field))


def _note_dependence(result, msg, source):
    """Find the layers whose parameter counts depend on the input; warn when their size is assumed."""
    view = next((result.phases[p] for p in ("deploy", "train", "val") if result.phases[p].ok), None)
    if view is None:
        return
    result.dependent = input_dependence(msg, view.phase, view.include_loss, view.net, result.input.shape, source)
    sized = [name for name, what in result.dependent.items() if SIZE in what]
    if result.input.assumed and sized:
        counts = {i["name"]: i["params"] for i in view.net.layer_info}
        result.problems.append(Problem(
            "warning", "the parameter counts of %s depend on the input height and width, which the file does not "
                       "state: %s are those at the assumed input %s, not the network's"
            % (", ".join(sized), ", ".join("{:,}".format(counts[n]) for n in sized), shape_text(result.input.shape)),
            "give the real input size: network show --input CxHxW (e.g. 3x375x500 for 500×375 RGB images); "
            "the model form uses its dataset's size"))


def deploy_prototxt(net, input_shape, source="<string>"):
    """Return a deploy prototxt derived from any file: an Input `data` of `input_shape` (C, H, W),
    then the deploy-phase layers without data, loss and accuracy layers or include/exclude rules."""
    msg = _as_message(net, source)
    caffe_phase, stages = resolve_phase("deploy")
    out = prototxt.Message()
    if msg.has("name"):
        out.add("name", str(msg.get("name")))
    shape = prototxt.Message()
    for d in (1,) + tuple(input_shape):
        shape.add("dim", int(d))
    param = prototxt.Message()
    param.add("shape", shape)
    first_tops = [str(l.get("top")) for l in msg.get_all("layer")
                  if str(l.get("type", "")) in DATA_LAYER_TYPES and l.has("top")]
    inp = prototxt.Message()
    for k, v in (("name", "data"), ("type", "Input"), ("top", first_tops[0] if first_tops else "data")):
        inp.add(k, v)
    inp.add("input_param", param)
    out.add("layer", inp)
    for layer in msg.get_all("layer"):
        t = str(layer.get("type", ""))
        if not layer_included(layer, caffe_phase, stages) or t in DATA_LAYER_TYPES or t.endswith("Loss") \
                or t in LOSS_FREE_DROP:
            continue
        copy = layer.copy()
        copy.remove("include")
        copy.remove("exclude")
        out.add("layer", copy)
    return prototxt.format_message(out)
