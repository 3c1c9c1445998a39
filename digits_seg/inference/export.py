"""Export a model snapshot to ONNX (opset >= 17, dynamic N×H×W) and TorchScript.

The exported graph takes what any caller has at hand: float32 N×C×H×W pixels in RGB
order, 0..255, and returns N×K×H×W class scores. The model's input recipe (channel order,
mean subtraction, scale; see `preprocess.py`) is baked into the graph so a user does not
have to repeat it (argmax over axis 1 gives the class ids).

ONNX files come from the exporter PyTorch recommends (`torch.onnx.export(..., dynamo=True)`,
built on `torch.export`, with symbolic batch/height/width). Its symbolic shapes can still
go wrong where a layer's size arithmetic is not expressible (we saw a graph traced at 64×64
crop odd sizes one pixel too large before the pooling and crop layers were made
export-friendly), so every file is run with onnxruntime at three sizes, one odd, and
compared with PyTorch before it is published. When the recommended exporter fails or its
graph disagrees, the TorchScript-based exporter (deprecated by PyTorch, still shipped) is
tried and verified the same way; the report says which exporter wrote the file and why.
A graph neither exporter gets right is refused with the reason, never published.
"""

import contextlib
import io

import os
import warnings

import numpy as np

from ..errors import ValidationError
from ..fsutil import temp_path_for

DEFAULT_OPSET = 18
"""ONNX opset written: the dynamo exporter's native opset (17 is the lowest accepted)."""

EXPORTERS = ("auto", "dynamo", "torchscript")
"""`auto`: the recommended (dynamo) exporter, falling back to the TorchScript one when its graph fails."""

EXPORT_SIZES = ((64, 80), (96, 72), (37, 45))
"""(H, W) in pixels: the first traces the graph, all verify it (an odd size catches frozen rounding)."""


def _wrapped(predictor):
    import torch

    pre = predictor.preprocess
    mean = torch.tensor(pre.mean_pixel if pre.mean_pixel is not None else [0.0] * pre.channels,
                        dtype=torch.float32).reshape(1, -1, 1, 1)
    flip = pre.channels == 3 and pre.channel_order.upper() == "BGR"
    mean_image = None
    if pre.mean_image is not None:
        m = np.asarray(pre.mean_image, np.float32)
        m = m[:, :, None] if m.ndim == 2 else m
        mean_image = torch.from_numpy(np.ascontiguousarray(m.transpose(2, 0, 1)))[None]

    class Exported(torch.nn.Module):
        """RGB 0..255 N×C×H×W → N×K×H×W class scores, with the model's preprocessing inside."""

        def __init__(self):
            super().__init__()
            self.net = predictor.net
            self.score_blob = predictor.score_blob
            self.register_buffer("mean", mean)
            self.register_buffer("mean_image", mean_image if mean_image is not None else torch.zeros(0))
            self.register_buffer("scale", torch.tensor(pre.scale, dtype=torch.float32).reshape(1, -1, 1, 1))

        def forward(self, image):
            x = image.flip(1) if flip else image
            if mean_image is not None:  # resized to the input inside the graph, as in training
                x = x - torch.nn.functional.interpolate(self.mean_image, size=x.shape[-2:], mode="bilinear",
                                                        align_corners=False)
            else:
                x = x - self.mean
            x = x * self.scale
            out = self.net(x)
            return out[self.score_blob] if isinstance(out, dict) else out

    return Exported().eval()


EXPORTS_DIR = "exports"
"""Sub-folder of a model job holding built exports (the export button's files, the ONNX Runtime cache)."""

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "net-onnx": ".net.onnx"}
"""File suffix per export kind; `net-onnx` is the network-only graph CPU inference runs (onnx_backend)."""


def exported_path(model_dir, weights_path, kind):
    """Where a model's export of one snapshot file is kept: a rewritten snapshot gets a new name."""
    stem = "%s-%d" % (os.path.basename(weights_path)[:-3], int(os.stat(weights_path).st_mtime))
    return os.path.join(model_dir, EXPORTS_DIR, stem + SUFFIXES[kind])


def _sample(channels, size, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, channels) + tuple(size), generator=g) * 255.0


def _reference(module, x):
    import torch

    with torch.inference_mode():
        return module(x).float().numpy()


def _check_close(name, got, want, size):
    if got.shape != want.shape:
        raise ValidationError("%s export gives scores of shape %s for a %dx%d input where PyTorch gives %s: the network "
                              "uses sizes that tracing froze, so it cannot be exported with a dynamic size"
                              % (name, got.shape, size[1], size[0], want.shape), field="format")
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    tol = 1e-3 * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    if err > tol:
        raise ValidationError("%s export differs from PyTorch by %.3g (tolerance %.3g) at %dx%d"
                              % (name, err, tol, size[1], size[0]), field="format")
    return err


def _prepare(path):
    """Create the output's folder (as `infer --out` does) so the temp file can sit beside it."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isfile(folder):
        raise ValidationError("cannot write %s: %s is a file, not a folder" % (path, folder), field="out")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ValidationError("cannot create the folder %s for %s: %s" % (folder, os.path.basename(path),
                                                                          exc.strerror or exc), field="out")


def _publish(tmp, path):
    os.replace(tmp, path)


def _export_dynamo(module, x0, tmp, opset):
    import torch

    dyn = torch.export.Dim.DYNAMIC
    # The exporter narrates its steps on stdout; a CLI printing JSON must not mix them in.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (x0,), None, dynamo=True, opset_version=opset,
                                    input_names=["image"], output_names=["scores"],
                                    dynamic_shapes={"image": {0: dyn, 2: dyn, 3: dyn}}, verbose=False)
        program.save(tmp)


def _export_torchscript(module, x0, tmp, opset):
    import torch

    with warnings.catch_warnings():
        # Tracer warnings about frozen Python sizes are what the verification checks;
        # the deprecation warning is why this is only the fallback.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (x0,), tmp, dynamo=False, opset_version=opset,
            input_names=["image"], output_names=["scores"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                          "scores": {0: "batch", 2: "height", 3: "width"}},
        )


def _reason(exc):
    """First line of the innermost cause (the exporter wraps the real error in its own)."""
    if isinstance(exc, ValidationError):
        return exc.message
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return ("%s: %s" % (type(exc).__name__, lines[0]) if lines else type(exc).__name__)[:300]


def export_module(module, channels, path, opset=DEFAULT_OPSET, exporter="auto"):
    """Export a module taking 1×C×H×W, verify it with onnxruntime, publish it at `path`; return a report."""
    if opset < 17:
        raise ValidationError("opset must be at least 17, got %d" % opset, field="opset")
    if exporter not in EXPORTERS:
        raise ValidationError("unknown exporter %r. Available: %s" % (exporter, ", ".join(EXPORTERS)),
                              field="exporter")
    x0 = _sample(channels, EXPORT_SIZES[0], 0)
    _prepare(path)
    tmp = temp_path_for(path) + ".onnx"
    tried = []
    try:
        for name in ("dynamo", "torchscript") if exporter == "auto" else (exporter,):
            try:
                (_export_dynamo if name == "dynamo" else _export_torchscript)(module, x0, tmp, opset)
                report = verify_onnx(tmp, module, channels)
            except Exception as exc:  # noqa: BLE001 - any exporter failure is reported, then the next is tried
                tried.append("%s exporter: %s" % (name, _reason(exc)))
                continue
            _publish(tmp, path)
            break
        else:
            raise ValidationError("this network cannot be exported to ONNX: %s" % "; ".join(tried), field="format")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    report.update({"path": path, "opset": opset, "exporter": name, "exporter_notes": tried})
    return report


def export_onnx(model_dir, path, snapshot="best", opset=DEFAULT_OPSET, predictor=None, exporter="auto"):
    """Write an ONNX file (preprocessing inside) for a model snapshot, verified with onnxruntime; return a report."""
    from .predictor import Predictor

    predictor = predictor or Predictor.from_model_dir(model_dir, snapshot=snapshot, device="cpu", backend="torch")
    report = export_module(_wrapped(predictor), predictor.preprocess.channels, path, opset, exporter)
    report.update({"classes": predictor.classes, "weights": os.path.basename(predictor.weights_path or ""),
                   "sixteen_bit_input": sixteen_bit_input(predictor.preprocess)})
    return report


def sixteen_bit_input(pre):
    """How a caller turns 16-bit greyscale images into the graph's 0..255 input (outside the graph, as in training)."""
    bits = pre.significant_bits
    return ("16-bit greyscale images: feed value // %d (the model's training images held %d significant bits; "
            "larger values are out of its range)" % (2 ** (bits - 8), bits))


def verify_onnx(onnx_path, module, channels):
    """Run the ONNX file with onnxruntime at three sizes (one odd) and compare with PyTorch; return max errors."""
    import onnx
    import onnxruntime

    onnx.checker.check_model(onnx_path)
    sess = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    errors = {}
    for i, size in enumerate(EXPORT_SIZES):
        x = _sample(channels, size, i + 1)
        got = sess.run(["scores"], {"image": x.numpy()})[0]
        errors["%dx%d" % (size[1], size[0])] = _check_close("ONNX", got, _reference(module, x), size)
    return {"max_abs_error": errors}


def export_torchscript(model_dir, path, snapshot="best", predictor=None):
    """Write a TorchScript file (traced) for a model snapshot, verified at a second size; return a report."""
    import torch

    from .predictor import Predictor

    predictor = predictor or Predictor.from_model_dir(model_dir, snapshot=snapshot, device="cpu", backend="torch")
    module = _wrapped(predictor)
    channels = predictor.preprocess.channels
    _prepare(path)
    tmp = temp_path_for(path) + ".pt"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, (_sample(channels, EXPORT_SIZES[0], 0),), check_trace=False)
        traced.save(tmp)
        loaded = torch.jit.load(tmp)
        errors = {}
        for i, size in enumerate(EXPORT_SIZES):
            x = _sample(channels, size, i + 1)
            with torch.no_grad():
                got = loaded(x).float().numpy()
            errors["%dx%d" % (size[1], size[0])] = _check_close("TorchScript", got, _reference(module, x), size)
        _publish(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"path": path, "max_abs_error": errors, "classes": predictor.classes,
            "weights": os.path.basename(predictor.weights_path or ""),
            "sixteen_bit_input": sixteen_bit_input(predictor.preprocess)}
