"""The shipped standard networks: prototxt files plus a description and solver advice each.

Every network takes raw 0-255 pixels (its first layer scales them), except the `-torchvision`
ones, whose pretrained weights expect ImageNet-normalised RGB (recorded in preprocess.json);
each outputs the blob `score` with exactly the input's height and width for any input size,
and marks its class-count lines with `#@num_classes` so `standard_prototxt` can fill in the dataset's.
"""

import os
import re
from dataclasses import dataclass, field

from ...errors import ValidationError
from .writer import NUM_CLASSES_MARK

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class NetworkInfo:
    """What the UI shows next to a standard network and how to train it by default."""

    name: str
    title: str
    filename: str
    description: str
    params_21: int
    """Parameter count with 21 classes (PASCAL VOC), checked by the tests."""
    solver: dict = field(default_factory=dict)
    input_multiple: int = None
    """Input sizes should be a multiple of this (None: any size works)."""


def _solver(solver_type, base_lr, lr_policy, batch_size, epochs, crop_size=None, **extra):
    out = {"solver_type": solver_type, "base_lr": base_lr, "lr_policy": lr_policy,
           "batch_size": batch_size, "crop_size": crop_size, "epochs": epochs}
    out.update(extra)
    return out


STANDARD_NETWORKS = {
    "fcn-alexnet": NetworkInfo(
        "fcn-alexnet", "FCN-AlexNet", "fcn_alexnet.prototxt",
        "AlexNet made fully convolutional, as in the DIGITS segmentation example. Fast and "
        "coarse (32x upsampling); best started from ImageNet AlexNet weights (fc6/fc7 are "
        "reshaped automatically).",
        57037610,
        _solver("SGD", 1e-4, "fixed", 1, 30, momentum=0.9, weight_decay=5e-4)),
    "fcn-8s": NetworkInfo(
        "fcn-8s", "FCN-8s", "fcn8s.prototxt",
        "VGG-16 FCN with pool3/pool4 skip connections: sharper boundaries than FCN-AlexNet, "
        "about 4x slower. Start from VGG-16 or FCN weights; train with batch size 1.",
        134368799,
        _solver("SGD", 1e-4, "fixed", 1, 30, momentum=0.99, weight_decay=5e-4)),
    "unet": NetworkInfo(
        "unet", "U-Net (compact)", "unet.prototxt",
        "Encoder-decoder with skip connections and BatchNorm (4 levels, 32-256 channels). "
        "Trains well from scratch on small datasets (medical, industrial).",
        1927669,
        _solver("Adam", 1e-3, "poly", 4, 60, crop_size=256, power=0.9, weight_decay=1e-4)),
    "deeplab-v3": NetworkInfo(
        "deeplab-v3", "DeepLab-v3 (ResNet-50)", "deeplab_v3.prototxt",
        "ResNet-50 with atrous convolution (output stride 16) and ASPP (rates 6/12/18 plus "
        "image pooling). Strong accuracy; needs batches of 8+ for BatchNorm and a GPU.",
        39048277,
        _solver("SGD", 1e-2, "poly", 8, 50, crop_size=321, power=0.9, momentum=0.9,
                weight_decay=1e-4)),
    "fc-densenet": NetworkInfo(
        "fc-densenet", "FC-DenseNet (compact Tiramisu)", "fc_densenet.prototxt",
        "Densely connected encoder-decoder with very few parameters (about 0.7 M); "
        "memory-hungry for its size. Trains from scratch.",
        704661,
        _solver("Adam", 1e-3, "exp", 4, 100, crop_size=224, gamma=0.995, weight_decay=1e-4)),
    "fcn-8s-torchvision": NetworkInfo(
        "fcn-8s-torchvision", "FCN-8s (VGG-16, torchvision ImageNet weights)", "fcn8s_torchvision.prototxt",
        "FCN-8s whose VGG-16 layers take torchvision's ImageNet weights (vgg16-397923af.pth; fc6/fc7 "
        "reshaped to convolutions). Expects ImageNet-normalised RGB: start it from the store entry or an "
        "uploaded .pth, which record that input in preprocess.json.",
        134368799,
        _solver("SGD", 1e-4, "fixed", 1, 30, momentum=0.99, weight_decay=5e-4)),
    "deeplab-v3-torchvision": NetworkInfo(
        "deeplab-v3-torchvision", "DeepLab-v3 (ResNet-50, torchvision weights)", "deeplab_v3_torchvision.prototxt",
        "torchvision's deeplabv3_resnet50: output stride 8, ASPP 12/24/36 with image pooling. Takes its "
        "ImageNet backbone (resnet50-0676ba61.pth) or its COCO/VOC weights; expects ImageNet-normalised "
        "RGB (recorded in the pretrained model's preprocess.json). Needs a GPU and batches of 8+.",
        39638869,  # torchvision's 42,004,074 without the auxiliary FCN head (2,365,205)
        _solver("SGD", 1e-2, "poly", 8, 50, crop_size=321, power=0.9, momentum=0.9,
                weight_decay=1e-4)),
    "tiny-fcn": NetworkInfo(
        "tiny-fcn", "tiny FCN (tests and demos)", "tiny_fcn.prototxt",
        "A 4-thousand-parameter FCN that trains in seconds on a CPU; for smoke tests and "
        "demos, not for accuracy.",
        4405,
        _solver("Adam", 1e-2, "fixed", 4, 5, weight_decay=0.0)),
}
"""Network key -> NetworkInfo; the key is what forms and the CLI accept."""

_MARKED = re.compile(r"^(\s*\w+:\s*)-?\d+(\s*" + re.escape(NUM_CLASSES_MARK) + r")\s*$", re.M)


def get_info(name):
    """Return the NetworkInfo for `name` or raise a ValidationError listing the choices."""
    info = STANDARD_NETWORKS.get(name)
    if info is None:
        raise ValidationError("unknown standard network '%s'; available: %s"
                              % (name, ", ".join(STANDARD_NETWORKS)), field="standard_network")
    return info


def standard_prototxt(name, num_classes):
    """Return the prototxt text of standard network `name` for `num_classes` classes."""
    info = get_info(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValidationError("num_classes must be an integer >= 2, got %r" % (num_classes,),
                              field="num_classes")
    with open(os.path.join(HERE, info.filename), encoding="utf-8") as fh:
        text = fh.read()
    return fill_num_classes(text, num_classes)


def fill_num_classes(text, num_classes):
    """Put `num_classes` on every line of a standard prototxt text marked `#@num_classes`."""
    return _MARKED.sub(lambda m: "%s%d%s" % (m.group(1), num_classes, m.group(2)), text)
