"""Caffe layer implementations as torch modules, looked up by Caffe type name.

`LAYERS` maps a type name (``"Convolution"``) to a builder taking a `LayerSpec`; each
family lives in its own module and registers itself on import.
"""

from . import activations, conv, loss, normalization, pooling, resize, structure  # noqa: F401
from . import segnet  # noqa: F401  (after pooling: it extends the Pooling builder)
from .base import LAYERS, CaffeLayer, LayerSpec, register

DATA_LAYER_TYPES = ("Data", "Python", "ImageData", "HDF5Data", "DummyData", "MemoryData",
                    "Input", "WindowData", "DenseImageData")
"""Input layers that the compiler replaces by the `data`/`label` blobs it is given."""


def supported_types():
    """Return every layer type the compiler accepts, sorted."""
    return sorted(set(LAYERS) | set(DATA_LAYER_TYPES))


__all__ = ["LAYERS", "CaffeLayer", "LayerSpec", "register", "DATA_LAYER_TYPES", "supported_types"]
