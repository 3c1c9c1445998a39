"""Caffe's binary `.caffemodel` (a serialised NetParameter): read and write its weights.

Only what weight transfer needs is decoded: the net name and, per layer, its name, type
and parameter blobs. Everything else in the message (layer settings, phase, ...) is
skipped, because the network itself always comes from a prototxt.

Field numbers used (facts of the format):
  NetParameter      name=1, layers(V1)=2, layer(V2)=100
  LayerParameter    name=1, type=2 (string), blobs=7
  V1LayerParameter  layer(V0)=1, bottom=2, top=3, name=4, type=5 (enum), blobs=6
  V0LayerParameter  name=1, type=2 (string), blobs=50
  BlobProto         num=1, channels=2, height=3, width=4, data=5, diff=6, shape=7,
                    double_data=8
  BlobShape         dim=1 (int64, packed or not)
"""

import math
import os
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from ..errors import ValidationError
from ..fsutil import write_bytes_atomic
from .v1_layers import v1_type_name
from .wire import (FIXED32, FIXED64, LENGTH, VARINT, MessageWriter, WireError, as_signed, iter_fields,
                   read_varint)

__all__ = ["CaffeLayer", "CaffeModel", "read_caffemodel", "write_caffemodel", "encode_caffemodel"]

_WIRE_NAMES = {VARINT: "varint", FIXED64: "64-bit", LENGTH: "length-delimited", FIXED32: "32-bit"}


class CaffeLayer(NamedTuple):
    """One layer of a caffemodel: blobs are float32 arrays in Caffe's order (weights, bias)."""

    name: str
    type: str
    blobs: list


class CaffeModel(NamedTuple):
    """A decoded caffemodel: the net name, its layers in file order, and the format seen."""

    name: str
    layers: list
    format: str  # "V2", "V1" or "V1+V2" (legacy `layers` and new `layer` both present)

    def blobs(self):
        """Return `{layer_name: [arrays]}` for layers that have blobs, in file order."""
        return OrderedDict((l.name, l.blobs) for l in self.layers if l.blobs)


def _expect(wtype, want, what, where):
    if wtype != want:
        raise WireError("%s: %s has wire type %s, expected %s (the file is corrupt or not a "
                        "caffemodel)" % (where, what, _WIRE_NAMES.get(wtype, wtype),
                                         _WIRE_NAMES[want]))


def _text(value, what, where):
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("%s: %s is not UTF-8 text (the file is corrupt or not a caffemodel)"
                        % (where, what)) from None


def _shape_dims(buf, where):
    dims = []
    for field, wtype, value in iter_fields(buf):
        if field != 1:
            continue
        if wtype == VARINT:
            dims.append(as_signed(value))
        elif wtype == LENGTH:
            pos, raw = 0, bytes(value)
            while pos < len(raw):
                dim, pos = read_varint(raw, pos)
                dims.append(as_signed(dim))
        else:
            _expect(wtype, VARINT, "BlobShape.dim", where)
    if any(d < 0 for d in dims):
        raise WireError("%s: negative dimension in blob shape %s" % (where, dims))
    return tuple(dims)


def _read_blob(buf, where):
    """Decode a BlobProto into a float32 array with its shape."""
    legacy = {}
    shape = None
    chunks, doubles = [], []
    for field, wtype, value in iter_fields(buf):
        if field in (1, 2, 3, 4):
            _expect(wtype, VARINT, "legacy blob dimension %d" % field, where)
            legacy[field] = as_signed(value)
        elif field == 5:
            if wtype == LENGTH:
                if len(value) % 4:
                    raise WireError("%s: packed float data of %d bytes is not a multiple of 4"
                                    % (where, len(value)))
                chunks.append(bytes(value))
            else:
                _expect(wtype, FIXED32, "blob data", where)
                chunks.append(bytes(value))
        elif field == 7:
            _expect(wtype, LENGTH, "blob shape", where)
            shape = _shape_dims(value, where)
        elif field == 8:
            if wtype == LENGTH:
                if len(value) % 8:
                    raise WireError("%s: packed double data of %d bytes is not a multiple of 8"
                                    % (where, len(value)))
                doubles.append(bytes(value))
            else:
                _expect(wtype, FIXED64, "blob double_data", where)
                doubles.append(bytes(value))
    if chunks:
        data = np.frombuffer(b"".join(chunks), dtype="<f4").astype(np.float32)
    elif doubles:
        data = np.frombuffer(b"".join(doubles), dtype="<f8").astype(np.float32)
    else:
        data = np.zeros(0, dtype=np.float32)
    if shape is None and legacy:
        # Legacy 4-D blobs (num, channels, height, width); an absent one counts as 1.
        shape = tuple(legacy.get(i, 1) for i in (1, 2, 3, 4))
        if any(d < 0 for d in shape):
            raise WireError("%s: negative dimension in legacy blob shape %s" % (where, shape))
    if shape is None:
        shape = (data.size,)
    count = math.prod(shape)  # Python ints: a corrupt huge dim must not overflow
    if count != data.size:
        raise WireError("%s: shape %s needs %d values but the blob holds %d (truncated or corrupt "
                        "file)" % (where, "x".join(map(str, shape)), count, data.size))
    return data.reshape(shape)


def _read_layer(buf, version, index):
    """Decode a V2 LayerParameter or a V1LayerParameter (optionally wrapping a V0 layer)."""
    name_f, type_f, blobs_f = (1, 2, 7) if version == "V2" else (4, 5, 6)
    name, ltype, blobs = "", "", []
    where = "layer #%d" % index
    for field, wtype, value in iter_fields(buf):
        if field == name_f:
            _expect(wtype, LENGTH, "layer name", where)
            name = _text(value, "layer name", where)
            where = "layer #%d '%s'" % (index, name)
        elif field == type_f:
            if version == "V2":
                _expect(wtype, LENGTH, "layer type", where)
                ltype = _text(value, "layer type", where)
            else:
                _expect(wtype, VARINT, "V1 layer type", where)
                ltype = v1_type_name(as_signed(value))
        elif field == blobs_f:
            _expect(wtype, LENGTH, "blob", where)
            blobs.append(_read_blob(value, "%s blob %d" % (where, len(blobs))))
        elif field == 1 and version == "V1":
            _expect(wtype, LENGTH, "V0 layer", where)
            v0 = _read_v0_layer(value, where)
            name = name or v0.name
            ltype = ltype or v0.type
            blobs = blobs or v0.blobs
    return CaffeLayer(name, ltype, blobs)


def _read_v0_layer(buf, where):
    name, ltype, blobs = "", "", []
    for field, wtype, value in iter_fields(buf):
        if field == 1 and wtype == LENGTH:
            name = _text(value, "V0 layer name", where)
        elif field == 2 and wtype == LENGTH:
            ltype = _text(value, "V0 layer type", where)
        elif field == 50:
            _expect(wtype, LENGTH, "V0 blob", where)
            blobs.append(_read_blob(value, "%s blob %d" % (where, len(blobs))))
    return CaffeLayer(name, ltype, blobs)


def _load_bytes(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), "<bytes>"
    path = os.fspath(path_or_bytes)
    try:
        with open(path, "rb") as fh:
            return fh.read(), path
    except FileNotFoundError:
        raise ValidationError("caffemodel not found: %s" % path) from None
    except IsADirectoryError:
        raise ValidationError("%s is a folder, not a .caffemodel file" % path) from None


def read_caffemodel(path_or_bytes):
    """Decode a `.caffemodel` (path or bytes) into a `CaffeModel`; corrupt input raises
    `WireError` naming the layer and blob."""
    data, source = _load_bytes(path_or_bytes)
    if data[:4] == b"\x89HDF":
        raise ValidationError("%s is an HDF5 file, not a .caffemodel; read it with "
                              "networks.weights.read_blobs" % source)
    head = data[:64].lstrip()
    if head[:5] in (b"name:", b"layer", b"input") or head[:1] == b"#":
        raise ValidationError("%s looks like prototxt text, not a binary .caffemodel "
                              "(give the weights file, not the network description)" % source)
    name, layers, seen = "", [], set()
    try:
        for field, wtype, value in iter_fields(data):
            if field == 1:
                _expect(wtype, LENGTH, "net name", "NetParameter")
                name = _text(value, "net name", "NetParameter")
            elif field in (2, 100):
                version = "V2" if field == 100 else "V1"
                _expect(wtype, LENGTH, "%s layer" % version, "NetParameter")
                seen.add(version)
                layers.append(_read_layer(value, version, len(layers)))
    except WireError as exc:
        raise WireError("%s: %s" % (source, exc.message)) from None
    if not layers:
        raise WireError("%s contains no layers: not a Caffe .caffemodel (or an empty net)" % source)
    fmt = "V1+V2" if len(seen) == 2 else seen.pop()
    return CaffeModel(name, layers, fmt)


def _as_array(blob):
    if hasattr(blob, "detach"):  # torch tensor; torch is not imported here on purpose
        blob = blob.detach().cpu().numpy()
    return np.ascontiguousarray(blob, dtype=np.float32)


def _collect(net_or_blobs, types):
    """Return [(name, type, [arrays])] from a CaffeNet, a CaffeModel or a dict of blobs."""
    types = dict(types or {})
    if isinstance(net_or_blobs, CaffeModel):
        return [(l.name, types.get(l.name, l.type), [_as_array(b) for b in l.blobs])
                for l in net_or_blobs.layers]
    if hasattr(net_or_blobs, "layer_blobs"):
        net_types = getattr(net_or_blobs, "layer_types", None)
        if callable(net_types):
            net_types = net_types()
        for key, value in (net_types or {}).items():
            types.setdefault(key, value)
        for info in getattr(net_or_blobs, "layer_info", None) or ():  # CaffeNet's layer table
            if isinstance(info, dict) and "name" in info:
                types.setdefault(info["name"], str(info.get("type", "")))
        blobs = net_or_blobs.layer_blobs()
    else:
        blobs = net_or_blobs
    if not hasattr(blobs, "items"):
        raise ValidationError("write_caffemodel needs a CaffeNet, a CaffeModel or a dict "
                              "{layer: [arrays]}, got %s" % type(net_or_blobs).__name__)
    return [(str(name), types.get(name, ""), [_as_array(b) for b in blob_list])
            for name, blob_list in blobs.items()]


def encode_caffemodel(net_or_blobs, name="", types=None):
    """Return the bytes of a V2 NetParameter holding the given blobs (shape + packed data)."""
    net = MessageWriter()
    if name:
        net.string(1, name)
    for lname, ltype, arrays in _collect(net_or_blobs, types):
        layer = MessageWriter().string(1, lname)
        if ltype:
            layer.string(2, ltype)
        for arr in arrays:
            blob = MessageWriter()
            blob.message(7, MessageWriter().packed_varints(1, arr.shape))
            blob.packed_float32(5, arr.ravel())
            layer.message(7, blob)
        net.message(100, layer)
    return net.to_bytes()


def write_caffemodel(net_or_blobs, path, name="", types=None):
    """Write a V2 `.caffemodel` atomically (temp name + rename).

    Args:
        net_or_blobs: a CaffeNet (its `layer_blobs()`), a CaffeModel, or `{layer: [arrays]}`.
        types: optional `{layer: type}`; otherwise taken from the net when it offers
            `layer_types`, else left empty (Caffe matches weights by layer name only).
    """
    write_bytes_atomic(path, encode_caffemodel(net_or_blobs, name=name, types=types))
    return path
