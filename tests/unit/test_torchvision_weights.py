"""torchvision state_dicts (PyTorch model hub .pth) → our networks, compared with torchvision's forward.

torchvision builds the reference models with random weights (nothing is downloaded; see
tests/torchvision_models.py for how it imports beside the CPU torch). BatchNorm statistics
and affine parameters are randomised too, so a mixed-up mean/variance/gamma/beta shows.
"""

import io
import json
import os
import shutil

import numpy as np
import pytest
import torch

from digits_seg.config import load_settings
from digits_seg.errors import ValidationError
from digits_seg.inference.predictor import Predictor
from digits_seg.inference.preprocess import load_preprocess
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.standard import standard_prototxt
from digits_seg.networks.torchvision_weights import convert_state_dict, read_state_dict
from digits_seg.networks.weights import load_weights
from digits_seg.store import importer
from digits_seg.store.download import DownloadError
from digits_seg.store.publish import add_entry
from tests.torchvision_models import import_torchvision

TOL = 1e-4
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _randomised(model, gen):
    """Random BatchNorm statistics and affine parameters, distinct per channel, so a mix-up shows."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)
    return model.eval()


def _assert_close(ours, ref):
    """Within 1e-4 of torchvision, relative to the blob's largest value when that exceeds 1: random
    weights without trained BatchNorm let ResNet activations grow into the hundreds, where float32
    summation order alone differs by more than 1e-4 absolute."""
    assert ours.shape == ref.shape
    scale = max(1.0, ref.abs().max().item())
    assert (ours - ref).abs().max().item() <= TOL * scale


def _capture(net, layers):
    """Forward hooks keeping a copy of each named layer's output (in-place ReLUs overwrite them later)."""
    seen = {}
    for name in layers:
        module = net.layers[net.layer_names.index(name)]
        module.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out.detach().clone()))
    return seen


def _settings(tmp_path):
    return load_settings({"jobs_dir": str(tmp_path / "jobs")}, environ={})


def _run(task, job, params, settings):
    lines = []
    result = task(str(job), params, on_progress=lambda f, m: None, should_stop=lambda: False,
                  log=lines.append, settings=settings)
    return result, lines


def _normalised(image_uint8):
    return ((image_uint8.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None]


@pytest.fixture(scope="module")
def tv():
    return import_torchvision()


@pytest.fixture(scope="module")
def deeplab(tv, tmp_path_factory):
    """A torchvision DeepLab-v3 ResNet-50 (21 classes, aux head) saved as .pth, and its forward on an image."""
    from torchvision.models.segmentation import deeplabv3_resnet50

    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = _randomised(deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True), gen)
    image = np.random.default_rng(1).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = model(torch.from_numpy(_normalised(image)))["out"]
    folder = tmp_path_factory.mktemp("pth")
    path = folder / "deeplabv3_resnet50_coco.pth"
    torch.save(model.state_dict(), path)
    yield {"path": str(path), "image": image, "ref": ref}
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def resnet(tv, tmp_path_factory):
    """A torchvision ResNet-50 with DeepLab's dilation (same keys as the ImageNet file) and its res5 output."""
    from torchvision.models import resnet50

    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    model = _randomised(resnet50(weights=None, replace_stride_with_dilation=[False, True, True]), gen)
    x = torch.randn(1, 3, 40, 40, generator=gen)
    with torch.no_grad():
        ref = torch.nn.Sequential(*list(model.children())[:-2])(x)
    folder = tmp_path_factory.mktemp("pth")
    path = folder / "resnet50.pth"
    torch.save(model.state_dict(), path)
    yield {"path": str(path), "x": x, "ref": ref, "state_dict": model.state_dict()}
    shutil.rmtree(folder)


@pytest.fixture(autouse=True)
def _drop_job_folders(tmp_path):
    """Imported folders hold 100-500 MB of weights: do not leave them to pytest's tmp retention."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_deeplab_v3_upload_matches_torchvision(deeplab, tmp_path):
    """A .pth uploaded alone becomes DeepLab-v3 (network, weights.h5, preprocess.json) and computes torchvision's scores."""
    settings = _settings(tmp_path)
    job = tmp_path / "job"
    job.mkdir()
    os.link(deeplab["path"], importer.upload_path(str(job), "weights", "deeplabv3.pth"))
    params = importer.validate_params({"source": "upload", "files": {"weights": "upload/weights-deeplabv3.pth"}},
                                      settings)
    result, lines = _run(importer.import_model, job, params, settings)
    assert result["num_classes"] == 21 and result["has_weights"]
    assert not (job / "upload").exists()
    log = "\n".join(lines)
    assert "torchvision DeepLab-v3 ResNet-50: 181 layers converted" in log
    assert "dropped 8 tensors: torchvision's auxiliary FCN head" in log
    manifest = json.loads((job / "manifest.json").read_text())
    pre = json.loads((job / "preprocess.json").read_text())
    assert manifest["preprocess"] == pre and pre["channel_order"] == "RGB"
    assert np.allclose(pre["mean_pixel"], 255 * MEAN) and np.allclose(pre["scale"], 1 / (255 * STD))

    # Our preprocessing of a uint8 image is torchvision's normalisation.
    recipe = load_preprocess(str(job))
    x = recipe.apply(deeplab["image"])[None]
    assert np.abs(x - _normalised(deeplab["image"])).max() < 1e-5

    # The imported folder as inference loads it: torchvision's scores, and its argmax as the prediction.
    predictor = Predictor.from_model_dir(str(job))
    with torch.no_grad():
        ours = predictor.net(torch.from_numpy(x))["score"]
    _assert_close(ours, deeplab["ref"])
    pred = predictor.predict(deeplab["image"], tile=0)
    assert (pred == deeplab["ref"][0].argmax(0).numpy()).mean() > 0.999


def _store_with(tmp_path, weights_path, prefix, entry_id):
    store = tmp_path / "store"
    text = standard_prototxt("deeplab-v3-torchvision", 3)
    add_entry(str(store), entry_id, {"name": entry_id, "architecture": "deeplab-v3-torchvision",
                                     "classes": ["sky", "road", "car"], "license": "BSD-3-Clause"},
              {"network.prototxt": ("network", text.encode()), "resnet50-%s.pth" % prefix: ("weights", weights_path)})
    path = store / entry_id / "manifest.json"
    manifest = json.loads(path.read_text())
    for f in manifest["files"]:
        if f["role"] == "weights":
            f["sha256_prefix"] = prefix
    path.write_text(json.dumps(manifest))
    return str(store)


def test_resnet50_store_entry_matches_torchvision_res5(resnet, tmp_path):
    """An ImageNet ResNet-50 store entry (sha256 prefix checked) loads into DeepLab-v3's backbone: res5c matches."""
    from digits_seg.store.assemble import sha256_of

    prefix = sha256_of(resnet["path"])[:8]
    store = _store_with(tmp_path, resnet["path"], prefix, "r50")
    settings = _settings(tmp_path)
    job = tmp_path / "job"
    job.mkdir()
    result, lines = _run(importer.import_model, job, {"source": "store", "store": store, "model": "r50"}, settings)
    assert result["num_classes"] == 3
    log = "\n".join(lines)
    assert "verified by sha256+sha256_prefix" in log
    assert "dropped 2 tensors: the 1000-class ImageNet classifier" in log
    net = compile_net((job / "network.prototxt").read_text(), "deploy", input_shape=(3, 40, 40))
    report = load_weights(net, str(job / "weights.h5"))
    # The ASPP head and the score layer are not in an ImageNet file: they keep their fillers.
    assert set(report.by_status("missing")) >= {"aspp_1x1", "head", "score_os8"}
    seen = _capture(net, ["res5c_relu"])
    with torch.no_grad():
        net(resnet["x"])
    assert resnet["ref"].shape == (1, 2048, 5, 5)
    _assert_close(seen["res5c_relu"], resnet["ref"])


def test_wrong_hash_prefix_is_refused_and_nothing_is_kept(tmp_path):
    weights = tmp_path / "small.pth"
    torch.save({"conv1.weight": torch.zeros(2)}, weights)
    store = _store_with(tmp_path, str(weights), "00000000", "bad")
    settings = _settings(tmp_path)
    job = tmp_path / "job"
    job.mkdir()
    with pytest.raises(DownloadError, match="does not start with 00000000"):
        _run(importer.import_model, job, {"source": "store", "store": store, "model": "bad"}, settings)
    assert sorted(os.listdir(job)) == []


def test_wrong_architecture_names_missing_unexpected_and_shapes(resnet):
    sd = dict(resnet["state_dict"])
    del sd["layer1.0.conv1.weight"]
    sd["layer4.2.conv3.weight"] = torch.zeros(2048, 512, 3, 3)
    sd["layer5.0.conv1.weight"] = torch.zeros(8, 8, 1, 1)
    with pytest.raises(ValidationError) as err:
        convert_state_dict(sd, name="r50.pth")
    msg = err.value.message
    assert "r50.pth does not match torchvision ResNet-50 (ImageNet) (resnet50)" in msg
    assert "1 missing keys: layer1.0.conv1.weight" in msg
    assert "1 unexpected keys: layer5.0.conv1.weight [8, 8, 1, 1]" in msg
    assert "layer4.2.conv3.weight is [2048, 512, 3, 3], expected [2048, 512, 1, 1]" in msg
    with pytest.raises(ValidationError, match="not a state_dict of a supported torchvision model .*resnet50"):
        convert_state_dict({"encoder.w": torch.zeros(3)}, name="x.pth")


def test_pth_that_does_not_fit_the_given_network_is_refused(resnet, tmp_path):
    settings = _settings(tmp_path)
    job = tmp_path / "job"
    job.mkdir()
    os.link(resnet["path"], importer.upload_path(str(job), "weights", "resnet50.pth"))
    (job / "upload" / "network-net.prototxt").write_text(standard_prototxt("fcn-8s-torchvision", 3))
    params = importer.validate_params({"source": "upload", "files": {"weights": "upload/weights-resnet50.pth",
                                                                     "network": "upload/network-net.prototxt"}},
                                      settings)
    with pytest.raises(ValidationError, match="ResNet-50 .* do not fit the network network-net.prototxt: no layers "
                                              "conv1, conv1_bn.*Use the standard network deeplab-v3-torchvision"):
        _run(importer.import_model, job, params, settings)
    assert sorted(os.listdir(job)) == []


class _Payload:
    """Unpickling this would create a file: weights_only must refuse before that."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_objects_are_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "x": _Payload(str(marker))}, path)
    with pytest.raises(ValidationError, match=r"evil.pth was refused: torch.load\(weights_only=True\) found more "
                                              r"than tensors"):
        read_state_dict(str(path))
    assert not marker.exists()
    (tmp_path / "not.pth").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValidationError, match="not.pth is not a readable PyTorch .pth file"):
        read_state_dict(str(tmp_path / "not.pth"))


def test_upload_without_network_needs_a_pth(tmp_path):
    settings = _settings(tmp_path)
    with pytest.raises(ValidationError, match="upload a network file") as err:
        importer.validate_params({"source": "upload", "files": {"weights": "upload/weights-x.caffemodel"}}, settings)
    assert err.value.field == "network"


@pytest.mark.slow
def test_vgg16_pool5_and_fc7_match_torchvision(tv, tmp_path):
    """VGG-16 in FCN-8s: conv1_1's pad 100 equals zero-padding torchvision's input by 99, so at 26x26 pool5 is
    torchvision's 7x7 features and fc6/fc7 (reshaped to convolutions) compute its classifier's first two layers."""
    from torchvision.models import vgg16

    torch.manual_seed(3)
    model = vgg16(weights=None).eval()
    x = torch.randn(1, 3, 26, 26)
    with torch.no_grad():
        pool5 = model.features(torch.nn.functional.pad(x, (99, 99, 99, 99)))
        fc7 = model.classifier[:4](torch.flatten(pool5, 1))
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    del model
    buf.seek(0)
    converted = convert_state_dict(read_state_dict(buf, "vgg16.pth"), name="vgg16.pth")
    del buf
    assert converted.architecture.network == "fcn-8s-torchvision"
    assert converted.blobs["fc6"][0].shape == (4096, 512, 7, 7)
    assert converted.dropped == {"the 1000-class ImageNet classifier (fc8); FCN-8s scores with score_fr": 2}
    net = compile_net(standard_prototxt("fcn-8s-torchvision", 21), "deploy", input_shape=(3, 26, 26))
    report = load_weights(net, converted.blobs)
    assert report.by_status("copied") == [f"conv{s}_{i}" for s, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
                                          for i in range(1, n + 1)] + ["fc6", "fc7"]
    seen = _capture(net, ["pool5", "fc7"])
    with torch.no_grad():
        net(x)
    assert pool5.shape == (1, 512, 7, 7)
    _assert_close(seen["pool5"], pool5)
    _assert_close(seen["fc7"].flatten(1), fc7)


HUB_ENTRIES = {
    "fcn-8s-vgg16-imagenet": ("fcn-8s-torchvision", "VGG16_Weights", "IMAGENET1K_V1"),
    "deeplab-v3-resnet50-imagenet": ("deeplab-v3-torchvision", "ResNet50_Weights", "IMAGENET1K_V1"),
    "deeplab-v3-resnet50-coco-voc": ("deeplab-v3-torchvision", "DeepLabV3_ResNet50_Weights", "COCO_WITH_VOC_LABELS_V1"),
}


def test_bundled_store_lists_the_pytorch_hub_weights(tv):
    """Each entry names the file torchvision's own weights enum downloads, with its size and hash prefix."""
    import torchvision.models as tvm
    import torchvision.models.segmentation as tvs

    from digits_seg.networks.torchvision_weights import IMAGENET_PREPROCESS
    from digits_seg.store import index

    listing = index.list_store(index.bundled_store())
    assert listing["warnings"] == []
    models = {m["id"]: m for m in listing["models"]}
    for entry_id, (network, enum, member) in HUB_ENTRIES.items():
        m = models[entry_id]
        assert m["architecture"] == network and m["needs_internet"] and m["has_weights"]
        (w,) = [f for f in m["files"] if f["role"] == "weights"]
        weights = getattr(getattr(tvm, enum, None) or getattr(tvs, enum), member)
        assert w["url"] == weights.url and w["name"] == weights.url.rsplit("/", 1)[1]
        # torchvision publishes the size in MiB to 3 decimals and the sha256's start in the file name.
        assert round(w["size"] / 2 ** 20, 3) == weights.meta["_file_size"]
        prefix = w["name"].rsplit("-", 1)[1].split(".")[0]
        assert w["other_hashes"]["sha256_prefix"] == prefix and w["sha256"].startswith(prefix)
        with open(os.path.join(index.bundled_store(), entry_id, "manifest.json"), encoding="utf-8") as fh:
            assert json.load(fh)["preprocess"] == IMAGENET_PREPROCESS


def test_fine_tuning_from_imagenet_weights_feeds_their_normalisation(tmp_path):
    """A job starting from an imported .pth inherits its per-channel scale: training input = torchvision's."""
    from types import SimpleNamespace

    from digits_seg.networks.torchvision_weights import IMAGENET_PREPROCESS
    from digits_seg.training.augment import to_input
    from digits_seg.training.input_recipe import input_tensors, resolve_recipe

    (tmp_path / "preprocess.json").write_text(json.dumps(IMAGENET_PREPROCESS))
    info = SimpleNamespace(channels=3, mean_pixel=[90.0, 100.0, 110.0])
    lines = []
    rec = resolve_recipe({"mean_subtraction": "model"}, info, [32, 24], str(tmp_path), lines.append)
    assert rec["scale"] == IMAGENET_PREPROCESS["scale"] and rec["mean_pixel"] == IMAGENET_PREPROCESS["mean_pixel"]
    assert "scale [0.01712, 0.01751, 0.01743]" in lines[0]
    mean, bgr, scale = input_tensors(rec, info, "cpu")
    images = np.random.default_rng(4).integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)
    x = to_input(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()), mean, bgr=bgr, scale=scale)
    expected = ((images.astype(np.float32) / 255.0 - MEAN) / STD).transpose(0, 3, 1, 2)
    assert np.abs(x.numpy() - expected).max() < 1e-5
