"""Convert torchvision `state_dict`s (PyTorch model hub `.pth` files) into our layer blobs.

The Caffe-era ImageNet weights are hard to find now; PyTorch's model hub publishes VGG-16,
ResNet-50 and DeepLab-v3 at stable URLs. Their files are `state_dict`s: tensors under
torchvision's module paths (`features.0.weight`, `layer1.0.bn1.running_var`, ...). We read
them with `torch.load(weights_only=True)`, which only rebuilds tensors and plain containers
(never arbitrary Python objects), and rename every tensor to a layer of the
torchvision-layout standard networks (`fcn-8s-torchvision`, `deeplab-v3-torchvision`) in
Caffe's blob order: Convolution [weight, bias]; BatchNorm [mean, variance, 1] followed by
Scale [gamma, beta]; VGG's fc6/fc7 matrices become 7×7 / 1×1 convolution kernels.

The weights expect torchvision's input: RGB scaled to 0..1, minus the ImageNet mean,
divided by its std. `IMAGENET_PREPROCESS` states that in the `preprocess.json` format
(`(pixel - mean_pixel) * scale` on 0..255 values, per channel).
"""

import dataclasses
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np

from ..errors import ValidationError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_PREPROCESS = {
    "channels": 3, "channel_order": "RGB", "mean_subtraction": "pixel",
    "mean_pixel": [round(255 * m, 6) for m in IMAGENET_MEAN],
    "scale": [1.0 / (255 * s) for s in IMAGENET_STD],
    "input_size": None,
}
"""preprocess.json of every torchvision model here: (x/255 - mean) / std == (x - 255 mean) / (255 std)."""

_LEGACY_MAGIC = b"\x80\x02\x8a\x0a"  # pickle protocol 2 + the long that torch.save's old format starts with
_MAX_LISTED = 8


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A torchvision model whose state_dict we convert, and the standard network it becomes."""

    key: str
    title: str
    network: str
    targets: object
    """targets(state_dict) -> OrderedDict {torch key: (layer, blob index, expected torch shape)}."""
    ignored: tuple
    """((key prefix or suffix, why it is dropped), ...): tensors that have no place in our network."""


def _conv(t, key, layer, cout, cin, k, bias=False):
    t[key + ".weight"] = (layer, 0, (cout, cin, k, k))
    if bias:
        t[key + ".bias"] = (layer, 1, (cout,))


def _bn(t, key, layer, c):
    t[key + ".running_mean"] = (layer, 0, (c,))
    t[key + ".running_var"] = (layer, 1, (c,))
    t[key + ".weight"] = (layer + "_scale", 0, (c,))
    t[key + ".bias"] = (layer + "_scale", 1, (c,))


def _conv_bn(t, conv_key, bn_key, layer, cout, cin, k):
    _conv(t, conv_key, layer, cout, cin, k)
    _bn(t, bn_key, layer + "_bn", cout)


def _resnet50(t, prefix=""):
    _conv_bn(t, prefix + "conv1", prefix + "bn1", "conv1", 64, 3, 7)
    cin = 64
    for li, (mid, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            key, name = "%slayer%d.%d." % (prefix, li, b), "res%d%s" % (li + 1, chr(ord("a") + b))
            _conv_bn(t, key + "conv1", key + "bn1", name + "_a", mid, cin, 1)
            _conv_bn(t, key + "conv2", key + "bn2", name + "_b", mid, mid, 3)
            _conv_bn(t, key + "conv3", key + "bn3", name + "_c", 4 * mid, mid, 1)
            if b == 0:
                _conv_bn(t, key + "downsample.0", key + "downsample.1", name + "_proj", 4 * mid, cin, 1)
            cin = 4 * mid
    return t


def _resnet50_targets(_sd):
    return _resnet50(OrderedDict())


def _deeplab_targets(sd):
    t = _resnet50(OrderedDict(), "backbone.")
    head = "classifier.0."
    _conv_bn(t, head + "convs.0.0", head + "convs.0.1", "aspp_1x1", 256, 2048, 1)
    for i, rate in enumerate((12, 24, 36), start=1):
        _conv_bn(t, head + "convs.%d.0" % i, head + "convs.%d.1" % i, "aspp_r%d" % rate, 256, 2048, 3)
    _conv_bn(t, head + "convs.4.1", head + "convs.4.2", "aspp_pool_conv", 256, 2048, 1)
    _conv_bn(t, head + "project.0", head + "project.1", "aspp_proj", 256, 5 * 256, 1)
    _conv_bn(t, "classifier.1", "classifier.2", "head", 256, 256, 3)
    score = sd.get("classifier.4.weight")
    classes = int(score.shape[0]) if score is not None and score.dim() == 4 else 21
    _conv(t, "classifier.4", "score_os8", classes, 256, 1, bias=True)
    return t


VGG16_CONVS = ((0, "conv1_1", 64, 3), (2, "conv1_2", 64, 64), (5, "conv2_1", 128, 64), (7, "conv2_2", 128, 128),
               (10, "conv3_1", 256, 128), (12, "conv3_2", 256, 256), (14, "conv3_3", 256, 256),
               (17, "conv4_1", 512, 256), (19, "conv4_2", 512, 512), (21, "conv4_3", 512, 512),
               (24, "conv5_1", 512, 512), (26, "conv5_2", 512, 512), (28, "conv5_3", 512, 512))
"""(index in torchvision's `features`, our layer, out channels, in channels)."""

FC_AS_CONV = {"fc6": (4096, 512, 7, 7), "fc7": (4096, 4096, 1, 1)}
"""Convolution kernel shapes that VGG's fully connected fc6/fc7 matrices are reshaped to."""


def _vgg16_targets(_sd):
    t = OrderedDict()
    for index, layer, cout, cin in VGG16_CONVS:
        _conv(t, "features.%d" % index, layer, cout, cin, 3, bias=True)
    for index, layer in ((0, "fc6"), (3, "fc7")):
        cout, cin, kh, kw = FC_AS_CONV[layer]
        t["classifier.%d.weight" % index] = (layer, 0, (cout, cin * kh * kw))
        t["classifier.%d.bias" % index] = (layer, 1, (cout,))
    return t


_BN_COUNTER = ("num_batches_tracked", "BatchNorm's update counter (Caffe keeps no such blob)")

ARCHITECTURES = OrderedDict((a.key, a) for a in (
    Architecture("vgg16", "torchvision VGG-16 (ImageNet)", "fcn-8s-torchvision", _vgg16_targets,
                 (("classifier.6.", "the 1000-class ImageNet classifier (fc8); FCN-8s scores with score_fr"),)),
    Architecture("resnet50", "torchvision ResNet-50 (ImageNet)", "deeplab-v3-torchvision", _resnet50_targets,
                 (("fc.", "the 1000-class ImageNet classifier; DeepLab-v3 scores with its ASPP head"), _BN_COUNTER)),
    Architecture("deeplabv3_resnet50", "torchvision DeepLab-v3 ResNet-50", "deeplab-v3-torchvision",
                 _deeplab_targets,
                 (("aux_classifier.", "torchvision's auxiliary FCN head (a training-only loss on res4)"),
                  _BN_COUNTER)),
))
"""torchvision model name -> Architecture."""


def is_pytorch_file(path):
    """True when `path` looks like a file written by `torch.save` (zip with data.pkl, or the legacy format)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == _LEGACY_MAGIC:
        return True
    if head != b"PK\x03\x04":
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("data.pkl") for n in z.namelist()[:64])
    except (zipfile.BadZipFile, OSError):
        return False


def read_state_dict(source, name=None):
    """Load a `.pth` (path or binary file object) as {key: tensor}, refusing anything but tensors.

    Checkpoints that wrap the state_dict (`{"state_dict": ...}` or `{"model": ...}`) are unwrapped.
    """
    import torch

    name = name or (os.path.basename(source) if isinstance(source, str) else "the .pth file")
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[-1][:300] if str(e).strip() else ""
        raise ValidationError("%s was refused: torch.load(weights_only=True) found more than tensors in it (%s). "
                              "Python objects are never unpickled here; save only the weights: "
                              "torch.save(model.state_dict(), %r)" % (name, first, name), field="weights")
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValidationError("%s is not a readable PyTorch .pth file (%s)" % (name, str(e).splitlines()[0][:200]),
                              field="weights")
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValidationError("%s holds a %s, not a state_dict (a dict of tensors); save it with "
                              "torch.save(model.state_dict(), path)" % (name, type(obj).__name__), field="weights")
    tensors = OrderedDict((str(k), v) for k, v in obj.items() if isinstance(v, torch.Tensor))
    if not tensors:
        raise ValidationError("%s holds no tensors; save it with torch.save(model.state_dict(), path)" % name,
                              field="weights")
    # DataParallel checkpoints prefix every key with "module."
    if all(k.startswith("module.") for k in tensors):
        tensors = OrderedDict((k[len("module."):], v) for k, v in tensors.items())
    return tensors


def _ignored(arch, key):
    for prefix, why in arch.ignored:
        if key.startswith(prefix) or key.endswith(prefix):
            return prefix, why
    return None


def detect_architecture(state_dict, name="the state_dict"):
    """Return the Architecture whose keys the state_dict shares most, or raise naming the choices."""
    keys = set(state_dict)
    best, best_score = None, 0.0
    for arch in ARCHITECTURES.values():
        wanted = arch.targets(state_dict)
        score = len(keys & set(wanted)) / len(wanted)
        if score > best_score:
            best, best_score = arch, score
    if best is None or best_score < 0.5:
        sample = ", ".join(sorted(keys)[:_MAX_LISTED])
        raise ValidationError("%s is not a state_dict of a supported torchvision model (its keys start with: %s); "
                              "supported: %s" % (name, sample, "; ".join("%s (%s)" % (a.key, a.title)
                                                                         for a in ARCHITECTURES.values())),
                              field="weights")
    return best


def _listing(items):
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (" and %d more" % (len(items) - _MAX_LISTED) if len(items) > _MAX_LISTED else "")


@dataclasses.dataclass
class Converted:
    """Blobs by our layer names, and what the conversion did (for the import log)."""

    architecture: Architecture
    blobs: OrderedDict
    num_classes: int = None
    dropped: dict = dataclasses.field(default_factory=dict)
    """{reason: number of tensors} for tensors that are not part of our network."""

    @property
    def preprocess(self):
        return dict(IMAGENET_PREPROCESS)

    def lines(self):
        out = ["%s: %d layers converted for the standard network %s (fc6/fc7 reshaped to convolutions)"
               % (self.architecture.title, len(self.blobs), self.architecture.network)
               if self.architecture.key == "vgg16" else
               "%s: %d layers converted for the standard network %s"
               % (self.architecture.title, len(self.blobs), self.architecture.network)]
        out += ["dropped %d tensors: %s" % (n, why) for why, n in self.dropped.items()]
        return out


def convert_state_dict(state_dict, architecture=None, name="the state_dict"):
    """Return `Converted` blobs for a torchvision state_dict; `architecture` (a key) skips detection.

    Raises ValidationError listing every missing key, unexpected key and shape mismatch.
    """
    if architecture is None:
        arch = detect_architecture(state_dict, name)
    elif architecture in ARCHITECTURES:
        arch = ARCHITECTURES[architecture]
    else:
        raise ValidationError("unknown torchvision architecture %r; supported: %s"
                              % (architecture, ", ".join(ARCHITECTURES)), field="architecture")
    targets = arch.targets(state_dict)
    missing = [k for k in targets if k not in state_dict]
    wrong = ["%s is %s, expected %s" % (k, list(state_dict[k].shape), list(shape))
             for k, (_layer, _i, shape) in targets.items()
             if k in state_dict and tuple(state_dict[k].shape) != tuple(shape)]
    dropped, unexpected = {}, []
    for k in state_dict:
        if k in targets:
            continue
        hit = _ignored(arch, k)
        if hit:
            dropped[hit[1]] = dropped.get(hit[1], 0) + 1
        else:
            unexpected.append("%s %s" % (k, list(state_dict[k].shape)))
    if missing or wrong or unexpected:
        problems = []
        if missing:
            problems.append("%d missing keys: %s" % (len(missing), _listing(missing)))
        if unexpected:
            problems.append("%d unexpected keys: %s" % (len(unexpected), _listing(unexpected)))
        if wrong:
            problems.append("%d shape mismatches: %s" % (len(wrong), _listing(wrong)))
        raise ValidationError("%s does not match %s (%s): %s. Only these torchvision architectures convert: %s"
                              % (name, arch.title, arch.key, "; ".join(problems), ", ".join(ARCHITECTURES)),
                              field="weights")
    blobs = OrderedDict()
    for key, (layer, index, _shape) in targets.items():
        value = state_dict[key].detach().to("cpu").float().numpy()
        if layer in FC_AS_CONV and index == 0:
            value = value.reshape(FC_AS_CONV[layer])
        slots = blobs.setdefault(layer, [])
        slots.extend([None] * (index + 1 - len(slots)))
        slots[index] = value
    for layer, slots in blobs.items():
        if layer.endswith("_bn"):  # Caffe's BatchNorm stores sums and their weight: 1 = the plain statistics
            slots.append(np.ones(1, np.float32))
    classes = int(state_dict["classifier.4.weight"].shape[0]) if arch.key == "deeplabv3_resnet50" else None
    return Converted(arch, blobs, classes, dropped)


def convert_file(path, architecture=None):
    """Read a `.pth` with `read_state_dict` and convert it (see `convert_state_dict`)."""
    name = os.path.basename(path)
    return convert_state_dict(read_state_dict(path, name), architecture, name)

