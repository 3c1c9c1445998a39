"""Cheap checks of uploaded model files, run in the request before a job is queued.

A wrong file (a text file named .caffemodel, a non-HDF5 `.h5`, a prototxt with a typo,
an empty file) used to become a queued job that failed later with a parser message
("unsupported wire type 6"). These checks read only headers or the top level of the
file (a `.caffemodel`'s top level is walked by seeking over its blobs), and say which
file is wrong and why.
"""

import os

from ..errors import ValidationError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
"""First bytes of every HDF5 file (a user block may move it to 512, 1024, ... bytes)."""


def check_upload(role, path, shown_name):
    """Raise ValidationError (field `role`) when the uploaded file at `path` cannot be what `role` needs."""
    size = os.path.getsize(path)
    if size == 0:
        raise ValidationError("%s is empty (0 bytes); choose the file again" % shown_name, field=role)
    lower = shown_name.lower()
    if role == "weights" and lower.endswith((".h5", ".hdf5")):
        _check_hdf5(path, size, shown_name)
    elif role == "weights":
        _check_caffemodel(path, size, shown_name)
    elif role == "network":
        _check_prototxt(path, shown_name)


def _check_hdf5(path, size, name):
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            f.seek(offset)
            if f.read(8) == HDF5_SIGNATURE:
                return
            offset = 512 if offset == 0 else offset * 2
    raise ValidationError("%s is not an HDF5 file (no HDF5 signature); upload Caffe HDF5 snapshot weights (.h5) "
                          "or a binary .caffemodel" % name, field="weights")


def _check_caffemodel(path, size, name):
    try:
        with open(path, "rb") as f:
            fields = _top_level_fields(f, size)
    except ValueError as e:
        raise ValidationError("%s is not a binary Caffe model (NetParameter): %s. Is it a prototxt, an HDF5 file "
                              "or truncated?" % (name, e), field="weights")
    if not fields & {2, 100}:  # NetParameter.layers (V1) or .layer
        raise ValidationError("%s holds no layers: it is not a Caffe model (.caffemodel)" % name, field="weights")


def _varint(f):
    value = shift = 0
    while True:
        b = f.read(1)
        if not b:
            raise ValueError("truncated varint at byte %d" % f.tell())
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint at byte %d" % f.tell())


def _top_level_fields(f, size):
    """Field numbers of the top-level protobuf message in `f`, skipping (seeking over) every value."""
    fields = set()
    while f.tell() < size:
        key = _varint(f)
        field, wtype = key >> 3, key & 7
        if field == 0:
            raise ValueError("invalid field number 0 at byte %d" % f.tell())
        skip = {0: None, 1: 8, 2: -1, 5: 4}.get(wtype, "bad")
        if skip == "bad":
            raise ValueError("unsupported wire type %d at byte %d" % (wtype, f.tell()))
        if skip is None:
            _varint(f)
        else:
            n = _varint(f) if skip == -1 else skip
            if f.tell() + n > size:
                raise ValueError("field %d claims %d bytes but only %d remain" % (field, n, size - f.tell()))
            f.seek(n, 1)
        fields.add(field)
    return fields


def _check_prototxt(path, name):
    from ..networks.prototxt import parse

    with open(path, "rb") as f:
        raw = f.read(16 * 2 ** 20 + 1)
    if len(raw) > 16 * 2 ** 20:
        raise ValidationError("%s is larger than 16 MiB: not a network description" % name, field="network")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("%s is not text (UTF-8): upload the network's .prototxt" % name, field="network")
    parse(text, source=name)
