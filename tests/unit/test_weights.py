"""Weights: HDF5 snapshot layout, sniffing, and loading with copy/reshape/missing reports."""

import os
from collections import OrderedDict

import h5py
import numpy as np
import pytest
import torch

from digits_seg.errors import ValidationError
from digits_seg.networks.caffemodel import read_caffemodel, write_caffemodel
from digits_seg.networks.weights import ALL_MISMATCHED, load_weights, read_blobs, save_h5


class TinyNet(torch.nn.Module):
    """A hand-written module with the CaffeNet weight interface (`layer_blobs`).

    fc6 is a 6x6 "convolution" over 4 channels, so a 16x144 InnerProduct fits by net surgery.
    """

    def __init__(self, classes=3):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3)
        self.fc6 = torch.nn.Conv2d(4, 16, 6)
        self.score = torch.nn.Conv2d(16, classes, 1)
        self.up = torch.nn.ConvTranspose2d(classes, classes, 4, bias=False)

    def layer_blobs(self):
        return OrderedDict([
            ("conv1", [self.conv1.weight, self.conv1.bias]),
            ("relu1", []),
            ("fc6", [self.fc6.weight, self.fc6.bias]),
            ("score", [self.score.weight, self.score.bias]),
            ("upscore/x2", [self.up.weight]),
        ])


def _blobs_of(net):
    return OrderedDict((k, [t.detach().numpy().copy() for t in v]) for k, v in net.layer_blobs().items() if v)


def test_save_h5_layout_and_read_back(tmp_path):
    torch.manual_seed(0)
    net = TinyNet()
    path = tmp_path / "snapshot_iter_1.h5"

    def extra(h5):
        h5.create_dataset("solver/iter", data=np.array(1))

    save_h5(net, str(path), extra=extra)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot_iter_1.h5"]
    with h5py.File(path, "r") as h5:
        assert h5["data/conv1/0"].shape == (4, 3, 3, 3) and h5["data/conv1/0"].dtype == np.float32
        assert h5["data/conv1/1"].shape == (4,)
        assert "relu1" not in h5["data"]
        assert int(h5["solver/iter"][()]) == 1
    blobs = read_blobs(path)
    assert list(blobs) == ["conv1", "fc6", "score", "upscore/x2"]
    for name, arrays in _blobs_of(net).items():
        for a, b in zip(arrays, blobs[name]):
            np.testing.assert_array_equal(a, b)


def test_save_h5_failure_leaves_no_file(tmp_path):
    def extra(h5):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_h5(TinyNet(), str(tmp_path / "best.h5"), extra=extra)
    assert list(tmp_path.iterdir()) == []


def test_read_blobs_sniffs_caffemodel_regardless_of_extension(tmp_path):
    src = {"conv1": [np.ones((2, 1, 3, 3), np.float32), np.zeros(2, np.float32)]}
    write_caffemodel(src, str(tmp_path / "weights.h5"))  # misleading name on purpose
    blobs = read_blobs(tmp_path / "weights.h5")
    assert [b.shape for b in blobs["conv1"]] == [(2, 1, 3, 3), (2,)]


def test_read_blobs_errors(tmp_path):
    with pytest.raises(ValidationError, match="not found"):
        read_blobs(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "keras.h5", "w") as h5:
        h5.create_dataset("model_weights/dense", data=np.zeros(3))
    with pytest.raises(ValidationError, match="no 'data' group"):
        read_blobs(tmp_path / "keras.h5")
    with h5py.File(tmp_path / "gap.h5", "w") as h5:
        h5.create_dataset("data/conv/0", data=np.zeros(3))
        h5.create_dataset("data/conv/2", data=np.zeros(3))
    with pytest.raises(ValidationError, match="expected 0..1 without gaps"):
        read_blobs(tmp_path / "gap.h5")
    good = tmp_path / "good.h5"
    save_h5(TinyNet(), str(good))
    data = good.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValidationError):
        read_blobs(tmp_path / "cut.h5")
    (tmp_path / "noise.bin").write_bytes(os.urandom(3000))
    with pytest.raises(ValidationError):
        read_blobs(tmp_path / "noise.bin")


def test_load_weights_copies_reshapes_and_reports(tmp_path):
    torch.manual_seed(1)
    donor = TinyNet()
    blobs = _blobs_of(donor)
    blobs["fc6"][0] = blobs["fc6"][0].reshape(16, 144)  # InnerProduct-style, as AlexNet's fc6
    blobs["conv1"][1] = blobs["conv1"][1].reshape(1, 1, 1, 4)  # legacy 4-D bias
    del blobs["upscore/x2"]
    blobs["fc8"] = [np.zeros((10, 16), np.float32)]
    path = tmp_path / "donor.caffemodel"
    write_caffemodel(blobs, str(path), name="donor")

    torch.manual_seed(2)
    net = TinyNet().double()
    before_up = net.up.weight.detach().clone()
    report = load_weights(net, str(path))
    status = {l.layer: l.status for l in report.layers}
    assert status == {"conv1": "copied", "fc6": "reshaped", "score": "copied",
                      "upscore/x2": "missing", "fc8": "unexpected"}
    assert net.fc6.weight.dtype == torch.float64
    np.testing.assert_allclose(net.fc6.weight.detach().numpy(), donor.fc6.weight.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(net.conv1.bias.detach().numpy(), donor.conv1.bias.detach().numpy(), rtol=1e-6)
    assert torch.equal(net.up.weight, before_up)
    assert net.conv1.weight.requires_grad
    lines = report.lines()
    assert lines[0].startswith("weights from %s: 2 copied, 1 reshaped, 1 missing, 1 unexpected" % path)
    assert any("fc6: reshaped (net surgery: blob 0 16x144 -> 16x4x6x6)" in l for l in lines)
    d = report.to_dict()
    assert d["counts"]["reshaped"] == 1
    fc6 = next(l for l in d["layers"] if l["layer"] == "fc6")
    assert fc6["blobs"][0] == {"index": 0, "file_shape": [16, 144], "net_shape": [16, 4, 6, 6]}


def test_mismatch_raises_before_copying_and_names_the_fix():
    torch.manual_seed(3)
    src = _blobs_of(TinyNet(classes=21))
    net = TinyNet(classes=2)
    before = net.conv1.weight.detach().clone()
    with pytest.raises(ValidationError) as info:
        load_weights(net, src)
    msg = str(info.value)
    assert "layer 'score' blob 0 has shape 21x16x1x1 in the file but 2x16x1x1 in the network" in msg
    assert "allow re-initialising layers score, upscore/x2" in msg
    assert torch.equal(net.conv1.weight, before)  # nothing half-loaded

    report = load_weights(net, src, reinit=["score", "upscore/x2"])
    assert report.by_status("reinitialised") == ["score", "upscore/x2"]
    assert torch.allclose(net.conv1.weight, torch.from_numpy(src["conv1"][0]))
    assert load_weights(TinyNet(classes=2), src, reinit=ALL_MISMATCHED).counts()["reinitialised"] == 2


def test_blob_count_mismatch_and_unknown_reinit_layer():
    src = _blobs_of(TinyNet())
    src["conv1"] = src["conv1"][:1]
    with pytest.raises(ValidationError, match="'conv1' has 1 blobs in the file but 2 in the network"):
        load_weights(TinyNet(), src)
    with pytest.raises(ValidationError, match="cannot re-initialise 'scroe'"):
        load_weights(TinyNet(), src, reinit=["scroe"])


def test_load_from_caffemodel_object(shared_data):
    model = read_caffemodel(os.path.join(shared_data, "caffe", "lenet", "lenet_iter_10000.caffemodel"))

    class LeNetBlobs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ip2 = torch.nn.Linear(500, 10)

        def layer_blobs(self):
            return OrderedDict(ip2=[self.ip2.weight, self.ip2.bias])

    net = LeNetBlobs()
    report = load_weights(net, model)
    assert report.by_status("copied") == ["ip2"]
    assert report.by_status("unexpected") == ["conv1", "conv2", "ip1"]
    np.testing.assert_array_equal(net.ip2.weight.detach().numpy(), model.blobs()["ip2"][0])


def _render_digit(digit, height):
    """Draw `digit` white on black with PIL's default font, centred in 28x28, MNIST-like."""
    from PIL import Image, ImageDraw, ImageFont

    probe = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(probe).text((8, 8), str(digit), fill=255, font=ImageFont.load_default())
    glyph = probe.crop(probe.getbbox())
    scale = height / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))),
                         Image.BILINEAR)
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(glyph, ((28 - glyph.width) // 2, (28 - glyph.height) // 2))
    return np.asarray(canvas, np.float32) / 256.0  # the 1/256 scale LeNet was trained with


def _lenet(shared_data):
    from digits_seg.networks.compiler import compile_net

    with open(os.path.join(shared_data, "caffe", "lenet", "lenet.prototxt")) as fh:
        return compile_net(fh.read(), phase="deploy")


def test_real_lenet_weights_classify_rendered_digits(shared_data):
    net = _lenet(shared_data)
    report = load_weights(net, os.path.join(shared_data, "caffe", "lenet", "lenet_iter_10000.caffemodel"))
    assert report.by_status("copied") == ["conv1", "conv2", "ip1", "ip2"]
    assert report.counts()["missing"] == 0
    digits = [d for _ in (16, 18, 20) for d in range(10)]
    images = np.stack([_render_digit(d, h) for h in (16, 18, 20) for d in range(10)])[:, None]
    net.eval()
    with torch.no_grad():
        scores = net(torch.from_numpy(images))["prob"]
    predicted = scores.argmax(1).tolist()
    correct = sum(p == d for p, d in zip(predicted, digits))
    assert correct >= 0.7 * len(digits), predicted  # ~26/30 measured; an untrained net gets ~3


def test_compiled_net_round_trips_through_caffemodel_and_h5(shared_data, tmp_path):
    torch.manual_seed(5)
    net = _lenet(shared_data)
    write_caffemodel(net, str(tmp_path / "lenet.caffemodel"), name="LeNet")
    model = read_caffemodel(str(tmp_path / "lenet.caffemodel"))
    assert [(l.name, l.type) for l in model.layers] == [
        ("conv1", "Convolution"), ("conv2", "Convolution"), ("ip1", "InnerProduct"), ("ip2", "InnerProduct")]
    save_h5(net, str(tmp_path / "lenet.h5"))
    x = torch.rand(2, 1, 28, 28)
    net.eval()
    with torch.no_grad():
        expected = net(x)["prob"]
    for weights in ("lenet.caffemodel", "lenet.h5"):
        fresh = _lenet(shared_data)
        fresh.eval()
        assert load_weights(fresh, str(tmp_path / weights)).counts()["copied"] == 4
        with torch.no_grad():
            assert torch.equal(fresh(x)["prob"], expected), weights


def _encode_v1_legacy(model):
    """Re-encode a CaffeModel as an old V1 file: `layers` (2), enum types, 4-D legacy blobs."""
    from digits_seg.networks.prototxt import V1_LAYER_TYPES
    from digits_seg.networks.wire import MessageWriter

    numbers = {v2: num for num, v2 in V1_LAYER_TYPES.values()}
    net = MessageWriter().string(1, model.name)
    for layer in model.layers:
        w = MessageWriter().string(4, layer.name).varint(5, numbers[layer.type])
        for blob in layer.blobs:
            dims = (1,) * (4 - blob.ndim) + blob.shape  # InnerProduct weights become 1x1xOxI
            b = MessageWriter()
            for field, dim in zip((1, 2, 3, 4), dims):
                b.varint(field, dim)
            w.message(6, b.packed_float32(5, blob.ravel()))
        net.message(2, w)
    return net.to_bytes()


def test_legacy_v1_caffemodel_loads_into_compiled_lenet(shared_data):
    path = os.path.join(shared_data, "caffe", "lenet", "lenet_iter_10000.caffemodel")
    model = read_caffemodel(path)
    legacy = read_caffemodel(_encode_v1_legacy(model))
    assert legacy.format == "V1"
    assert legacy.blobs()["ip1"][0].shape == (1, 1, 500, 800)
    assert legacy.blobs()["conv1"][1].shape == (1, 1, 1, 20)
    net, reference = _lenet(shared_data), _lenet(shared_data)
    report = load_weights(net, legacy)
    assert report.by_status("copied") == ["conv1", "conv2", "ip1", "ip2"]  # Caffe's legacy rule
    load_weights(reference, path)
    x = torch.rand(3, 1, 28, 28)
    net.eval()
    reference.eval()
    with torch.no_grad():
        assert torch.equal(net(x)["prob"], reference(x)["prob"])
