"""Cheap checks of uploaded model files, run in the request before a job is queued.

A wrong file (a text file named .caffemodel, a non-HDF5 `.h5`, a prototxt with a typo,
an empty file) used to become a queued job that failed later with a parser message
("unsupported wire type 6"). These checks read only headers or the top level of the
file (a `.caffemodel` is walked through mmap without loading its blobs), and say which
file is wrong and why.
"""

import mmap
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
    from ..networks.wire import WireError, iter_fields

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        view = memoryview(data)
        try:
            fields = {field for field, _wtype, _value in iter_fields(view)}
        except (WireError, IndexError, ValueError) as e:
            raise ValidationError("%s is not a binary Caffe model (NetParameter): %s. Is it a prototxt, an HDF5 file "
                                  "or truncated?" % (name, e), field="weights")
        finally:
            view.release()
    if not fields & {2, 100}:  # NetParameter.layers (V1) or .layer
        raise ValidationError("%s holds no layers: it is not a Caffe model (.caffemodel)" % name, field="weights")


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
