"""Unit tests of ONNX / TorchScript export on a small conv net (preprocessing baked into the graph)."""

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from digits_seg.inference.export import export_onnx, export_torchscript
from digits_seg.inference.predictor import Predictor
from digits_seg.inference.preprocess import Preprocess


class SmallFCN(torch.nn.Module):
    """Conv → pool → conv → upsample back to the input size, returning a blob dict like CaffeNet."""

    score_blob = "score"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = torch.nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, data, label=None):
        x = torch.relu(self.c1(data))
        x = torch.nn.functional.max_pool2d(x, 2, ceil_mode=True)
        x = self.c2(x)
        x = torch.nn.functional.interpolate(x, size=data.shape[-2:], mode="bilinear", align_corners=False)
        return {"score": x}


def _predictor(scale=0.02):
    pre = Preprocess(channel_order="BGR", mean_pixel=(100.0, 110.0, 120.0), mean_subtraction="pixel", scale=scale)
    return Predictor(SmallFCN(), classes=list("abcd"), colormap=[[0, 0, 0]] * 4, preprocess=pre)


# A scalar scale (Caffe's `scale`) and one per channel (torchvision's ImageNet 1 / (255 * std)).
@pytest.mark.parametrize("scale", [0.02, (1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225))])
def test_onnx_export_dynamic_size_matches_torch(tmp_path, scale):
    p = _predictor(scale)
    out = tmp_path / "model.onnx"
    report = export_onnx(None, str(out), predictor=p)
    model = onnx.load(str(out))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert set(report["max_abs_error"]) == {"80x64", "72x96", "45x37"}
    sess = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    img = np.random.RandomState(0).randint(0, 256, (37, 53, 3)).astype(np.uint8)
    got = sess.run(None, {"image": img.transpose(2, 0, 1)[None].astype(np.float32)})[0]
    want = p.scores(img, tile=0).numpy()
    assert got.shape == (1, 4, 37, 53)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert (got.argmax(1)[0] == p.predict(img, tile=0)).all()


def test_onnx_opset_below_17_refused(tmp_path):
    from digits_seg.errors import ValidationError

    with pytest.raises(ValidationError, match="17"):
        export_onnx(None, str(tmp_path / "x.onnx"), predictor=_predictor(), opset=13)
    assert not (tmp_path / "x.onnx").exists()


def test_torchscript_export_round_trip(tmp_path):
    p = _predictor()
    out = tmp_path / "model.pt"
    export_torchscript(None, str(out), predictor=p)
    loaded = torch.jit.load(str(out))
    img = np.random.RandomState(1).randint(0, 256, (29, 45, 3)).astype(np.uint8)
    with torch.no_grad():
        got = loaded(torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32)))
    torch.testing.assert_close(got, p.scores(img, tile=0), rtol=1e-4, atol=1e-4)
