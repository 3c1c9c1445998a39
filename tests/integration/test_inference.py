"""Integration: a real compiled Caffe net + HDF5 snapshot in a model folder → predict, infer_many, CLI, export.

The model folder is made by the test the way the trainer makes one (network.prototxt,
best.h5 / snapshot_iter_<N>.h5 in Caffe's HDF5 layout, labels.txt, colormap.json,
preprocess.json), and every mask is checked against a direct forward pass of the net.
"""

import json
import os
import zipfile

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from digits_seg.cli import main as cli_main
from digits_seg.config import load_settings
from digits_seg.errors import JobAborted, ValidationError
from digits_seg.inference.batch import infer_many, validate_params
from digits_seg.inference.export import export_onnx
from digits_seg.inference.predictor import Predictor
from digits_seg.inference.sliding import sliding_logits
from digits_seg.networks.compiler import compile_net
from digits_seg.networks.weights import load_weights, save_h5

NET = """
name: "tiny-infer"
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "score_lr" type: "Convolution" bottom: "pool1" top: "score_lr"
  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "upscore" type: "Deconvolution" bottom: "score_lr" top: "upscore" param { lr_mult: 0 }
  convolution_param { num_output: 3 group: 3 kernel_size: 4 stride: 2 bias_term: false weight_filler { type: "bilinear" } } }
layer { name: "crop" type: "Crop" bottom: "upscore" bottom: "data" top: "score" crop_param { axis: 2 offset: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  include { phase: TRAIN } loss_param { ignore_label: 255 } }
"""
CLASSES = ["background", "person", "car"]
COLORS = [[0, 0, 0], [192, 128, 128], [0, 0, 255]]
MEAN = [110.0, 100.0, 90.0]


def _image(seed, h=40, w=48):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs")
    d = root / "20260101-000000-m0de"
    d.mkdir()
    (d / "network.prototxt").write_text(NET)
    torch.manual_seed(6)  # seeds picked so random weights give several classes on noise images
    save_h5(compile_net(NET, phase="train"), str(d / "snapshot_iter_5.h5"))
    torch.manual_seed(5)
    save_h5(compile_net(NET, phase="train"), str(d / "best.h5"))
    (d / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    (d / "colormap.json").write_text(json.dumps(COLORS))
    (d / "preprocess.json").write_text(json.dumps({"channels": 3, "channel_order": "RGB", "mean_subtraction": "pixel",
                                                   "mean_pixel": MEAN, "scale": 1.0, "input_size": [32, 32]}))
    return str(d)


def direct(model_dir, image, snapshot="best.h5", tile=None):
    """Independent forward pass: compile, load weights, subtract the mean (tiles of `tile` if given)."""
    net = compile_net(NET, phase="deploy", include_loss=False).eval()
    load_weights(net, os.path.join(model_dir, snapshot))
    x = torch.from_numpy((image.astype(np.float32) - np.array(MEAN, np.float32)).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        if tile:
            return sliding_logits(lambda t: net(t)[net.score_blob], x, tile), net
        return net(x)[net.score_blob], net


def test_predict_matches_direct_forward(model_dir):
    p = Predictor.from_model_dir(model_dir)
    assert p.classes == CLASSES and p.colormap == COLORS
    img = _image(0, 32, 32)
    scores, _ = direct(model_dir, img)
    mask = p.predict(img)
    assert mask.shape == (32, 32) and mask.dtype == np.uint8
    assert (mask == scores.argmax(1)[0].numpy()).all()
    assert len(np.unique(mask)) > 1, "weights should give a non-constant prediction (else the test proves little)"
    other = Predictor.from_model_dir(model_dir, snapshot="5")
    scores5, _ = direct(model_dir, img, "snapshot_iter_5.h5")
    assert (other.predict(img) == scores5.argmax(1)[0].numpy()).all()
    assert not (other.predict(img) == mask).all()


def test_large_image_uses_sliding_windows(model_dir):
    p = Predictor.from_model_dir(model_dir)
    img = _image(3, 70, 90)
    assert p.auto_tile(70, 90) == (32, 32)
    mask = p.predict(img)
    assert mask.shape == (70, 90)
    # the stitched prediction is close to (not identical with) the whole-image one: a 3×3 conv sees tile borders
    agree = (mask == p.predict(img, tile=0)).mean()
    assert agree > 0.8


def _write_folder(tmp_path, model_dir):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    p = Predictor.from_model_dir(model_dir)
    truths = {}
    for i in range(3):
        img = _image(10 + i)
        Image.fromarray(img).save(images / ("img%d.png" % i))
        gt = p.predict(img)
        if i == 1:
            gt = np.where(gt == 0, 1, gt).astype(np.uint8)  # a wrong ground truth: this image must score worst
        gt[:2] = 255
        lab = Image.fromarray(gt, mode="P")
        lab.putpalette(sum(COLORS, []) + [255, 255, 255] * 253)
        lab.save(labels / ("img%d.png" % i))
        truths["img%d" % i] = gt
    Image.fromarray(_image(99, 20, 20)).save(images / "nolabel.jpg")
    return images, labels, truths


def test_infer_many_folder_with_ground_truth(tmp_path, model_dir):
    images, labels, truths = _write_folder(tmp_path, model_dir)
    settings = load_settings({"data_roots": str(tmp_path)}, environ={})
    params = validate_params({"source": "folder", "folder": str(images), "label_folder": str(labels)}, settings)
    job = tmp_path / "job"
    job.mkdir()
    progress, lines = [], []
    summary = infer_many(str(job), params, on_progress=lambda f, m: progress.append(f), should_stop=lambda: False,
                         log=lines.append, model_dir=model_dir, settings=settings)
    assert summary["count"] == 4 and summary["with_gt"] == 3 and summary["errors"] == 0
    assert progress[-1] == 1.0
    res = json.load(open(job / "results.json"))
    assert res["complete"] and res["classes"] == CLASSES
    by_name = {e["name"]: e for e in res["images"]}  # the inputs' own names, not numbered copies
    assert {e["mask"] for e in res["images"]} == {"masks/%s.png" % n for n in ("img0", "img1", "img2", "nolabel")}
    for name, gt in truths.items():
        e = by_name[name]
        mask = np.asarray(Image.open(job / e["mask"]))
        # 48×40 images exceed the 32×32 training size: the job tiles them, so does the reference
        scores, _ = direct(model_dir, np.asarray(Image.open(images / (name + ".png"))), tile=32)
        assert (mask == scores.argmax(1)[0].numpy()).all()
        assert (np.asarray(Image.open(job / e["gt"])) == gt).all()
        assert Image.open(job / e["overlay"]).size == (48, 40)
    assert by_name["img0"]["scores"]["pixel_acc"] == 1.0
    assert by_name["img1"]["scores"]["pixel_acc"] < 1.0
    assert "scores" not in by_name["nolabel"]
    agg = res["aggregate"]
    assert 0 < agg["pixel_acc"] < 1 and agg["per_class"][0]["name"] == "background"
    with zipfile.ZipFile(job / "results.zip") as zf:
        names = set(zf.namelist())
    assert "results.json" in names and by_name["img2"]["mask"] in names and by_name["img2"]["overlay"] in names


def test_infer_many_reaches_the_end_when_the_last_image_is_skipped(tmp_path, model_dir):
    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(_image(0, 20, 20)).save(images / "a.png")
    Image.fromarray(np.full((20, 20), 0.5, np.float32), mode="F").save(images / "z.tif")  # refused, and last
    settings = load_settings({"data_roots": str(tmp_path)}, environ={})
    job = tmp_path / "job"
    job.mkdir()
    progress = []
    summary = infer_many(str(job), validate_params({"source": "folder", "folder": str(images)}, settings),
                         on_progress=lambda f, m: progress.append((f, m)), should_stop=lambda: False,
                         log=lambda t: None, model_dir=model_dir, settings=settings)
    assert summary["errors"] == 1 and summary["predicted"] == 1
    assert progress[-1] == (1.0, "2 of 2 images (1 skipped)")  # the page said "DONE · 0 of 2 images"


def test_infer_many_upload_zip_and_abort(tmp_path, model_dir):
    images, labels, _ = _write_folder(tmp_path, model_dir)
    job = tmp_path / "job"
    job.mkdir()
    with zipfile.ZipFile(job / "inputs.zip", "w") as zf:
        for f in sorted(images.iterdir()):
            zf.write(f, "images/" + f.name)
        for f in sorted(labels.iterdir()):
            zf.write(f, "labels/" + f.name)
    params = validate_params({"source": "upload", "limit": "2"})
    calls = []
    with pytest.raises(JobAborted):
        infer_many(str(job), params, on_progress=lambda f, m: None, should_stop=lambda: len(calls) > 0,
                   log=calls.append, model_dir=model_dir, settings=None)
    partial = json.load(open(job / "results.json"))
    assert partial["complete"] is False
    summary = infer_many(str(job), params, on_progress=lambda f, m: None, should_stop=lambda: False,
                         log=lambda s: None, model_dir=model_dir, settings=None)
    assert summary["count"] == 2 and summary["with_gt"] == 2


def test_validate_params_refuses_paths_outside_roots(tmp_path):
    settings = load_settings({"data_roots": str(tmp_path / "allowed")}, environ={})
    with pytest.raises(ValidationError, match="outside the data roots") as e:
        validate_params({"source": "folder", "folder": "/etc"}, settings)
    assert e.value.field == "folder"
    with pytest.raises(ValidationError):
        validate_params({"source": "nope"}, settings)


def test_cli_infer_and_export(tmp_path, model_dir, capsys):
    img = _image(5, 36, 44)
    Image.fromarray(img).save(tmp_path / "street.png")
    out = tmp_path / "out"
    rc = cli_main(["infer", "--model", model_dir, str(tmp_path / "street.png"), "--out", str(out), "--keep", "person",
                   "--tile", "0"])
    assert rc == 0
    mask = np.asarray(Image.open(out / "street_mask.png"))
    scores, _ = direct(model_dir, img)
    assert (mask == scores.argmax(1)[0].numpy()).all()
    cut = np.asarray(Image.open(out / "street_cutout.png"))
    assert cut.shape == (36, 44, 4) and ((cut[..., 3] == 255) == (mask == 1)).all()
    summary = json.load(open(out / "summary.json"))
    assert sum(c["pixels"] for c in summary["images"][0]["classes"]) == 36 * 44
    # --out in a folder that does not exist yet: created, as for `infer --out` (was a traceback).
    onnx_path = tmp_path / "exports" / "new" / "m.onnx"
    assert cli_main(["export", "--model", model_dir, "--format", "onnx", "--out", str(onnx_path)]) == 0
    report = json.loads(capsys.readouterr().out.split("mask(s) written to %s" % out)[-1])
    assert report["exporter"] == "dynamo", report["exporter_notes"]  # PyTorch's recommended exporter
    sess = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for h, w in ((36, 44), (57, 31), (80, 96)):  # three sizes, odd ones included, none of them the traced one
        x = _image(h + w, h, w)
        want, _ = direct(model_dir, x)
        got = sess.run(None, {"image": x.transpose(2, 0, 1)[None].astype(np.float32)})[0]
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-3)
    assert cli_main(["export", "--model", model_dir, "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    assert cli_main(["export", "--model", model_dir, "--out", str(blocked / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err


def test_onnxruntime_backend_matches_pytorch_and_is_cached(model_dir):
    """The CPU predictor runs the snapshot's verified ONNX graph: same masks, cached per snapshot file."""
    torch_p = Predictor.from_model_dir(model_dir, backend="torch")
    ort_p = Predictor.from_model_dir(model_dir, backend="onnxruntime")
    assert torch_p.engine == "pytorch" and ort_p.engine == "onnxruntime"
    cached = [n for n in os.listdir(os.path.join(model_dir, "exports")) if n.endswith(".net.onnx")]
    assert cached == ["best-%d.net.onnx" % int(os.stat(os.path.join(model_dir, "best.h5")).st_mtime)]
    for seed, (h, w) in enumerate(((32, 32), (37, 53), (70, 90))):  # the last one in sliding tiles
        img = _image(40 + seed, h, w)
        np.testing.assert_allclose(ort_p.scores(img).numpy(), torch_p.scores(img).numpy(), rtol=1e-4, atol=1e-4)
        assert (ort_p.predict(img) == torch_p.predict(img)).all()
    assert Predictor.from_model_dir(model_dir).engine == "onnxruntime"  # auto picks the cache up
    assert Predictor.from_model_dir(model_dir, snapshot="5").engine == "pytorch"  # other weights: no cache yet
    assert Predictor.from_model_dir(model_dir, backend="torch").engine == "pytorch"
    os.unlink(os.path.join(model_dir, "exports", cached[0]))  # the module's other tests compare PyTorch masks


def test_export_report_verifies_odd_size(model_dir, tmp_path):
    report = export_onnx(model_dir, str(tmp_path / "x.onnx"))
    assert "45x37" in report["max_abs_error"] and report["opset"] >= 17
