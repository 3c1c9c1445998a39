"""Import torchvision's pure-Python model builders beside our CPU-only torch (tests only).

PyPI's torchvision wheel ships compiled ops (`_C.so`) linked against CUDA libraries that the
CPU torch build lacks, so loading them fails; torchvision then skips its op registrations
(`extension._has_ops()` is False) except two fake-tensor kernels it registers
unconditionally, for `torchvision::nms` and `torchvision::qnms`, which fail with "operator
torchvision::nms does not exist". Defining those two schemas first (the same signatures
torchvision's C++ code declares, `(Tensor dets, Tensor scores, float iou_threshold) -> Tensor`)
lets `import torchvision` finish. The models used here (VGG, ResNet, DeepLab-v3) are plain
torch.nn code and never call these ops; calling torchvision.ops.nms would still raise
torchvision's own "Couldn't load custom C++ ops" error. Nothing is downloaded: builders are
called with `weights=None, weights_backbone=None`.

scripts/test (which .ci/run calls) installs the wheel with `pip install --no-deps torchvision==0.28.0`: without
--no-deps pip would replace our pinned CPU torch with the CUDA build.
"""

import importlib.util
import os

import pytest

TORCHVISION_OPS_WITH_FAKE_KERNELS = ("nms", "qnms")
_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"


def _op_exists(name):
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw("torchvision::" + name, "")
        return True
    except RuntimeError:
        return False


def import_torchvision():
    """Return the torchvision module (skipping the test when it is not installed)."""
    if importlib.util.find_spec("torchvision") is None:
        why = "torchvision is not installed (pip install --no-deps torchvision==0.28.0)"
        if os.environ.get("CI"):
            pytest.fail(why + "; scripts/test installs it")  # CI must not skip these comparisons silently
        pytest.skip(why)
    import torch

    missing = [n for n in TORCHVISION_OPS_WITH_FAKE_KERNELS if not _op_exists(n)]
    if missing:
        # The Library must outlive the import: schemas are dropped when it is garbage-collected.
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for name in missing:
            lib.define(name + _SCHEMA)
        _KEEP.append(lib)
    import torchvision

    return torchvision


_KEEP = []
"""Libraries that hold the defined schemas (module lifetime = the test process)."""
