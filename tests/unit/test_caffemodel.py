"""`.caffemodel` reading/writing: the real LeNet file, legacy encodings, corrupt input."""

import os
import struct

import numpy as np
import pytest

from digits_seg.errors import ValidationError
from digits_seg.networks.caffemodel import (CaffeModel, encode_caffemodel, read_caffemodel,
                                            write_caffemodel)
from digits_seg.networks.wire import MessageWriter, WireError


def _lenet_path(shared_data):
    return os.path.join(shared_data, "caffe", "lenet", "lenet_iter_10000.caffemodel")


def test_real_lenet_caffemodel(shared_data):
    model = read_caffemodel(_lenet_path(shared_data))
    assert model.name == "LeNet" and model.format == "V2"
    blobs = model.blobs()
    assert list(blobs) == ["conv1", "conv2", "ip1", "ip2"]
    shapes = {k: [b.shape for b in v] for k, v in blobs.items()}
    assert shapes == {"conv1": [(20, 1, 5, 5), (20,)], "conv2": [(50, 20, 5, 5), (50,)],
                      "ip1": [(500, 800), (500,)], "ip2": [(10, 500), (10,)]}
    np.testing.assert_allclose(blobs["conv1"][0].ravel()[:3], [0.048347, 0.182091, 0.02909], atol=1e-6)
    assert all(b.dtype == np.float32 for v in blobs.values() for b in v)
    types = {l.name: l.type for l in model.layers}
    assert types["conv1"] == "Convolution" and types["ip1"] == "InnerProduct"
    assert types["pool1"] == "Pooling" and model.layers[0].blobs == []


def test_real_lenet_round_trip(shared_data, tmp_path):
    model = read_caffemodel(_lenet_path(shared_data))
    out = tmp_path / "copy.caffemodel"
    write_caffemodel(model, str(out), name=model.name)
    again = read_caffemodel(str(out))
    assert again.name == "LeNet"
    assert [(l.name, l.type) for l in again.layers] == [(l.name, l.type) for l in model.layers]
    for a, b in zip(model.layers, again.layers):
        assert len(a.blobs) == len(b.blobs)
        for x, y in zip(a.blobs, b.blobs):
            assert x.shape == y.shape and np.array_equal(x, y)
    assert [p.name for p in tmp_path.iterdir()] == ["copy.caffemodel"]  # no temp left behind


def test_write_from_dict_and_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    blobs = {"conv": [torch.from_numpy(rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
                      np.arange(4, dtype=np.float64)],
             "bn": [np.ones(4), np.zeros(4), np.array([7.0])],
             "empty": []}
    path = tmp_path / "w.caffemodel"
    write_caffemodel(blobs, path, name="net", types={"conv": "Convolution"})
    model = read_caffemodel(path)
    assert model.name == "net"
    assert [(l.name, l.type, len(l.blobs)) for l in model.layers] == [
        ("conv", "Convolution", 2), ("bn", "", 3), ("empty", "", 0)]
    np.testing.assert_array_equal(model.layers[0].blobs[0], blobs["conv"][0].numpy())
    np.testing.assert_array_equal(model.layers[0].blobs[1], np.arange(4, dtype=np.float32))
    assert model.layers[1].blobs[2].shape == (1,)


class _NetWithBlobs:
    """Stands in for any object offering the CaffeNet weight interface (layer_blobs + types)."""

    def layer_blobs(self):
        return {"fc": [np.full((2, 3), 0.5, np.float32), np.zeros(2, np.float32)]}

    layer_types = {"fc": "InnerProduct"}


def test_write_from_object_with_layer_blobs():
    model = read_caffemodel(encode_caffemodel(_NetWithBlobs()))
    assert model.layers[0].type == "InnerProduct" and model.layers[0].blobs[0].shape == (2, 3)


def _blob_legacy(num, channels, height, width, values, packed=True):
    blob = MessageWriter().varint(1, num).varint(2, channels).varint(3, height).varint(4, width)
    if packed:
        blob.packed_float32(5, values)
    else:
        for v in values:
            blob.float32(5, v)
    return blob


def test_v1_layers_with_legacy_4d_blobs_and_unpacked_data():
    weights = np.arange(6, dtype=np.float32)
    layer = (MessageWriter().string(2, "data").string(3, "ip").string(4, "ip")
             .varint(5, 14)  # INNER_PRODUCT
             .message(6, _blob_legacy(1, 1, 2, 3, weights, packed=False))
             .message(6, _blob_legacy(1, 1, 1, 2, [0.5, -1.0])))
    odd = MessageWriter().string(4, "mystery").varint(5, 77)
    net = MessageWriter().string(1, "old").message(2, layer).message(2, odd).to_bytes()
    model = read_caffemodel(net)
    assert model.format == "V1"
    ip = model.layers[0]
    assert (ip.name, ip.type) == ("ip", "InnerProduct")
    # Legacy InnerProduct weights keep Caffe's 1x1xOxI shape here; weights.py squeezes them.
    assert ip.blobs[0].shape == (1, 1, 2, 3) and np.array_equal(ip.blobs[0].ravel(), weights)
    assert ip.blobs[1].shape == (1, 1, 1, 2)
    assert model.layers[1].type == "V1_77"


def test_shape_dims_unpacked_and_double_data():
    shape = MessageWriter().varint(1, 2).varint(1, 2)
    blob = MessageWriter().message(7, shape)
    for v in (1.0, 2.0, 3.0, 4.5):
        blob.bytes_field(8, struct.pack("<d", v))  # packed double_data, in 4 chunks
    layer = MessageWriter().string(1, "s").string(2, "Scale").message(7, blob)
    model = read_caffemodel(MessageWriter().message(100, layer).to_bytes())
    np.testing.assert_array_equal(model.layers[0].blobs[0], [[1, 2], [3, 4.5]])


def test_shape_and_data_disagree_is_named():
    shape = MessageWriter().packed_varints(1, [2, 3])
    blob = MessageWriter().message(7, shape).packed_float32(5, np.zeros(5, np.float32))
    layer = MessageWriter().string(1, "conv9").message(7, blob)
    with pytest.raises(WireError, match=r"layer #0 'conv9' blob 0: shape 2x3 needs 6 values but the blob holds 5"):
        read_caffemodel(MessageWriter().message(100, layer).to_bytes())


def test_truncated_real_file_is_a_clear_error(shared_data):
    with open(_lenet_path(shared_data), "rb") as fh:
        data = fh.read()
    for cut in (1, 10, 100, 5000, len(data) // 2, len(data) - 3):
        with pytest.raises(WireError) as info:
            read_caffemodel(data[:cut])
        assert "<bytes>" in str(info.value)


def test_random_bytes_never_hang_and_raise_validation_errors():
    rng = np.random.default_rng(1234)
    for size in (0, 1, 7, 64, 1000, 20000):
        for _ in range(20):
            data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
            with pytest.raises(ValidationError):
                read_caffemodel(data)


def test_wrong_wire_type_is_named():
    bad = MessageWriter().varint(1, 5).to_bytes()  # net name as a number
    with pytest.raises(WireError, match="net name has wire type varint, expected length-delimited"):
        read_caffemodel(bad)


def test_other_files_are_recognised(tmp_path):
    with pytest.raises(ValidationError, match="HDF5 file"):
        read_caffemodel(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ValidationError, match="prototxt text"):
        read_caffemodel(b'name: "LeNet"\nlayer { }')
    with pytest.raises(ValidationError, match="not found"):
        read_caffemodel(str(tmp_path / "nope.caffemodel"))
    with pytest.raises(ValidationError, match="is a folder"):
        read_caffemodel(str(tmp_path))


def test_write_rejects_unknown_input(tmp_path):
    with pytest.raises(ValidationError, match="needs a CaffeNet"):
        write_caffemodel([1, 2, 3], str(tmp_path / "x.caffemodel"))
    assert not list(tmp_path.iterdir())


def test_caffemodel_blobs_skips_layers_without_weights():
    model = CaffeModel("n", [], "V2")
    assert model.blobs() == {}
