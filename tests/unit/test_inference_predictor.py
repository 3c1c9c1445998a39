"""Unit tests of the Predictor (on a plain torch net), its input recipe, snapshot resolution and the LRU cache."""

import json
import os
import threading

import numpy as np
import pytest
import torch

from digits_seg.errors import ConflictError, NotFoundError, ValidationError
from digits_seg.inference.cache import PredictorCache
from digits_seg.inference.predictor import Predictor, read_classes, resolve_snapshot
from digits_seg.inference.preprocess import Preprocess, load_preprocess


class DictNet(torch.nn.Module):
    """A pointwise net returning a blob dict like a compiled CaffeNet (translation invariant)."""

    score_blob = "score"

    def __init__(self, classes=3, channels=3):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(channels, classes, 1)

    def forward(self, data, label=None):
        return {"score": self.conv(data)}


def _predictor(**pre):
    return Predictor(DictNet(), classes=["a", "b", "c"], colormap=[[0, 0, 0], [1, 1, 1], [2, 2, 2]],
                     preprocess=Preprocess(**pre))


def test_predict_matches_direct_forward():
    p = _predictor(mean_pixel=(10.0, 20.0, 30.0), mean_subtraction="pixel")
    img = np.random.RandomState(0).randint(0, 256, (20, 28, 3)).astype(np.uint8)
    mask = p.predict(img)
    assert mask.shape == (20, 28) and mask.dtype == np.uint8
    x = torch.from_numpy(img.astype(np.float32) - np.array([10, 20, 30], np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        want = p.net(x)["score"].argmax(1)[0].numpy()
    assert (mask == want).all()
    assert set(np.unique(mask)) <= {0, 1, 2}


def test_auto_tiling_beyond_training_size_gives_same_result_for_pointwise_net():
    p = _predictor(input_size=(16, 12))
    img = np.random.RandomState(1).randint(0, 256, (30, 41, 3)).astype(np.uint8)
    assert p.auto_tile(30, 41) == (12, 16)
    assert p.auto_tile(10, 10) is None
    tiled = p.scores(img)
    whole = p.scores(img, tile=0)
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-4)
    assert (p.predict(img, tile=8, stride=5) == p.predict(img, tile=0)).all()


def test_preprocess_channels_order_and_scale():
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = 200
    x = Preprocess(channel_order="BGR", mean_pixel=(1.0, 2.0, 3.0), scale=0.5).apply(img)
    assert x.shape == (3, 2, 2)
    assert x[0, 0, 0] == pytest.approx((0 - 1) * 0.5) and x[2, 0, 0] == pytest.approx((200 - 3) * 0.5)
    grey = Preprocess(channels=1).apply(img)
    assert grey.shape == (1, 2, 2) and grey[0, 0, 0] == pytest.approx(200 * 0.299, rel=1e-4)
    assert Preprocess().apply(np.full((3, 3), 7, np.uint8)).shape == (3, 3, 3)
    with pytest.raises(ValidationError):
        Preprocess().apply(np.zeros((2, 2, 3), np.float32))


def test_load_preprocess_from_file_and_job_params(tmp_path):
    model = tmp_path / "m1"
    model.mkdir()
    assert load_preprocess(str(model)).source == "default"
    (model / "preprocess.json").write_text(json.dumps({"channels": 3, "mean_pixel": [1, 2, 3], "input_size": [32, 24]}))
    pre = load_preprocess(str(model))
    assert pre.mean_subtraction == "pixel" and pre.mean_pixel == (1.0, 2.0, 3.0) and pre.input_size == (32, 24)
    other = tmp_path / "m2"
    other.mkdir()
    (other / "job.json").write_text(json.dumps({"kind": "model", "params": {"mean_subtraction": "none", "crop_size": 48}}))
    pre = load_preprocess(str(other))
    assert pre.mean_pixel is None and pre.input_size == (48, 48)
    (other / "job.json").write_text(json.dumps({"kind": "model", "params": {"mean_subtraction": "pixel", "dataset": "gone"}}))
    with pytest.raises(ValidationError, match="mean subtraction"):
        load_preprocess(str(other))


def test_resolve_snapshot_choices(tmp_path):
    d = str(tmp_path)
    with pytest.raises(NotFoundError, match="none yet"):
        resolve_snapshot(d, "best")
    for name in ("snapshot_iter_10.h5", "snapshot_iter_200.h5", "best.h5"):
        (tmp_path / name).write_bytes(b"x")
    assert resolve_snapshot(d).endswith("best.h5")
    assert resolve_snapshot(d, "latest").endswith("snapshot_iter_200.h5")
    assert resolve_snapshot(d, "10").endswith("snapshot_iter_10.h5")
    assert resolve_snapshot(d, "snapshot_iter_10.h5").endswith("snapshot_iter_10.h5")
    with pytest.raises(NotFoundError, match="10, 200"):
        resolve_snapshot(d, "11")
    with pytest.raises(NotFoundError):
        resolve_snapshot(d, "../etc/passwd")


def test_read_classes_defaults_and_files(tmp_path):
    names, colors = read_classes(str(tmp_path), num_classes=3)
    assert names == ["class 0", "class 1", "class 2"] and colors[1] == [128, 0, 0]
    (tmp_path / "labels.txt").write_text("sky\nroad\n")
    (tmp_path / "colormap.json").write_text(json.dumps([[1, 2, 3], [4, 5, 6]]))
    assert read_classes(str(tmp_path)) == (["sky", "road"], [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "colormap.json").write_text(json.dumps({"x": 1}))
    with pytest.raises(ValidationError):
        read_classes(str(tmp_path))


def test_cache_loads_once_and_evicts_lru(tmp_path):
    dirs = []
    for i in range(3):
        d = tmp_path / ("m%d" % i)
        d.mkdir()
        (d / "best.h5").write_bytes(b"x")
        dirs.append(str(d))
    loaded = []

    def loader(model_dir, snapshot, device):
        loaded.append(model_dir)
        return _predictor()

    cache = PredictorCache(capacity=2, loader=loader)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(dirs[0]))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loaded) == 1 and all(r is results[0] for r in results)
    cache.get(dirs[1])
    cache.get(dirs[0])  # refresh: m1 is now least recently used
    cache.get(dirs[2])
    assert len(cache) == 2 and cache.loads == 3
    cache.get(dirs[0])
    assert cache.loads == 3
    cache.get(dirs[1])
    assert cache.loads == 4
    # rewriting the weights (training wrote a new best.h5) invalidates the entry
    st = os.stat(os.path.join(dirs[1], "best.h5"))
    os.utime(os.path.join(dirs[1], "best.h5"), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    cache.get(dirs[1])
    assert cache.loads == 5
    _, mask = cache.predict(dirs[1], np.zeros((4, 4, 3), np.uint8))
    assert mask.shape == (4, 4)


def test_cache_busy_slot_raises_conflict(tmp_path):
    cache = PredictorCache(loader=lambda *a, **k: _predictor(), max_concurrent=1, wait_s=0.01)
    with cache.slot():
        with pytest.raises(ConflictError, match="busy"):
            with cache.slot():
                pass


def test_mean_image_is_resized_bilinearly_like_training():
    mean = np.arange(4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
    pre = Preprocess(mean_subtraction="image", mean_image=mean)
    img = np.full((8, 12, 3), 100, np.uint8)
    x = pre.apply(img)
    want = torch.nn.functional.interpolate(torch.from_numpy(mean.transpose(2, 0, 1).copy())[None], size=(8, 12),
                                           mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(x, 100 - want, rtol=1e-6)
    same = pre.apply(np.full((4, 6, 3), 100, np.uint8))
    np.testing.assert_allclose(same, 100 - mean.transpose(2, 0, 1))
    assert pre.to_dict()["mean_image"] == [4, 6, 3]


def test_export_bakes_mean_image_in(tmp_path):
    from digits_seg.inference.export import export_onnx
    import onnxruntime

    mean = np.random.RandomState(0).uniform(0, 255, (5, 7, 3)).astype(np.float32)
    p = Predictor(DictNet(), classes=["a", "b", "c"], colormap=[[0, 0, 0]] * 3,
                  preprocess=Preprocess(mean_subtraction="image", mean_image=mean))
    export_onnx(None, str(tmp_path / "m.onnx"), predictor=p)
    img = np.random.RandomState(1).randint(0, 256, (19, 23, 3)).astype(np.uint8)
    sess = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"image": img.transpose(2, 0, 1)[None].astype(np.float32)})[0]
    np.testing.assert_allclose(got, p.scores(img, tile=0).numpy(), rtol=1e-4, atol=1e-3)
