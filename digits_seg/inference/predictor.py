"""A loaded model ready to predict: network compiled in deploy phase + snapshot weights.

Call flow:
    Predictor.from_model_dir(dir, snapshot)
      ├─ resolve_snapshot  → best.h5 | snapshot_iter_<N>.h5 | weights.h5
      ├─ compile_net(network.prototxt, phase="deploy", include_loss=False)
      ├─ load_weights(net, file)          (every layer with parameters must be filled)
      └─ load_preprocess(dir), read_classes(dir)
    .run(image, fit) → geometry (the dataset's resize, sliding tiles or native size; see
                       geometry.py) → preprocess → forward → argmax → H×W uint8 class ids
                       at the input's size, and the Fit used
"""

import os
import re

import numpy as np

from ..errors import NotFoundError, ValidationError
from ..fsutil import read_json
from .geometry import Fit, check_fit, load_transform, restore_mask, scale_image
from .preprocess import load_preprocess
from .visualize import voc_colormap

SNAPSHOT_RE = re.compile(r"^snapshot_iter_(\d+)\.h5$")
WEIGHT_FILES = ("best.h5", "weights.h5")
"""Files `snapshot="best"` tries, in order: a trained model's best, then a pretrained model's weights."""


def list_snapshot_files(model_dir):
    """Return the weight files a model folder offers: [{"name", "iter", "path"}], best first then by iteration."""
    out = []
    for name in WEIGHT_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            out.append({"name": name[:-3], "iter": None, "path": path})
    iters = []
    for name in os.listdir(model_dir) if os.path.isdir(model_dir) else []:
        m = SNAPSHOT_RE.match(name)
        if m:
            iters.append((int(m.group(1)), name))
    for it, name in sorted(iters):
        out.append({"name": str(it), "iter": it, "path": os.path.join(model_dir, name)})
    return out


def resolve_snapshot(model_dir, snapshot="best"):
    """Return the weight file path for `snapshot`: "best", "latest", an iteration number or a file name."""
    available = list_snapshot_files(model_dir)
    names = ", ".join(s["name"] for s in available) or "none yet"
    key = "best" if snapshot in (None, "") else str(snapshot).strip()
    if key == "best":
        for s in available:
            if s["iter"] is None:
                return s["path"]
        raise NotFoundError("model %s has no best.h5 yet (it is written at the first validation). "
                            "Available snapshots: %s" % (model_dir, names), field="snapshot")
    if key in ("latest", "last"):
        iters = [s for s in available if s["iter"] is not None]
        if not iters:
            raise NotFoundError("model %s has no snapshot_iter_<N>.h5 yet. Available: %s" % (model_dir, names), field="snapshot")
        return iters[-1]["path"]
    m = SNAPSHOT_RE.match(key)
    if key.isdigit() or m:
        it = int(key if key.isdigit() else m.group(1))
        for s in available:
            if s["iter"] == it:
                return s["path"]
        raise NotFoundError("model %s has no snapshot at iteration %d. Available: %s" % (model_dir, it, names), field="snapshot")
    if key in ("weights", "weights.h5", "best.h5"):
        path = os.path.join(model_dir, key if key.endswith(".h5") else key + ".h5")
        if os.path.isfile(path):
            return path
    raise NotFoundError("unknown snapshot %r for model %s. Use best, latest or one of: %s" % (snapshot, model_dir, names),
                        field="snapshot")


def read_classes(model_dir, num_classes=None):
    """Return (class names, colour map) from the folder's labels.txt / colormap.json, with defaults."""
    names = []
    labels = os.path.join(model_dir, "labels.txt")
    if os.path.isfile(labels):
        with open(labels, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    colors = None
    cmap_path = os.path.join(model_dir, "colormap.json")
    if os.path.isfile(cmap_path):
        data = read_json(cmap_path)
        if isinstance(data, dict):
            data = data.get("colormap") or data.get("colors") or data.get("palette")
        if isinstance(data, list) and all(isinstance(c, (list, tuple)) and len(c) == 3 for c in data):
            colors = [[int(v) for v in c] for c in data]
        else:
            raise ValidationError("%s must be a list of [r, g, b] per class" % cmap_path, field="colormap")
    n = max(len(names), len(colors or []), int(num_classes or 0))
    names = names + ["class %d" % i for i in range(len(names), n)]
    if colors is None or len(colors) < n:
        default = voc_colormap(max(n, 1)).tolist()
        colors = (colors or []) + default[len(colors or []):n]
    return names, colors


def _check_device(device):
    import torch

    dev = str(device or "cpu")
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValidationError("device %r requested but CUDA is not available here; use cpu" % dev, field="device")
        index = int(dev.split(":", 1)[1]) if ":" in dev else 0
        if index >= torch.cuda.device_count():
            raise ValidationError("device %r does not exist: %d GPU(s) visible" % (dev, torch.cuda.device_count()),
                                  field="device")
    elif dev != "cpu":
        raise ValidationError("unknown device %r: use cpu, cuda or cuda:N" % dev, field="device")
    return torch.device(dev)


class Predictor:
    """A compiled network with weights, its classes, colours and input recipe; thread-safe to call."""

    def __init__(self, net, *, classes, colormap, preprocess, device="cpu", model_dir=None, weights_path=None,
                 transform=None):
        import torch

        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.classes = list(classes)
        self.colormap = [list(c) for c in colormap]
        self.preprocess = preprocess
        self.model_dir = model_dir
        self.weights_path = weights_path
        self.transform = transform  # the dataset's resize (geometry.DatasetTransform) or None
        self.load_report = None
        self._onnx = None  # onnx_backend.OnnxNet running the net on the CPU, when attached

    def attach_onnx(self, onnx_net):
        """Run the network in ONNX Runtime from now on (a verified graph of these very weights)."""
        self._onnx = onnx_net

    @property
    def engine(self):
        return "onnxruntime" if self._onnx is not None else "pytorch"

    @classmethod
    def from_model_dir(cls, model_dir, snapshot="best", device="cpu", backend="auto"):
        """Load `network.prototxt` + a snapshot of a model (or pretrained) job folder.

        Args:
            backend: "auto" (ONNX Runtime on the CPU when the snapshot's verified graph is
                cached, else PyTorch), "onnxruntime" (export the graph now if missing) or "torch".
        """
        from ..networks.compiler import compile_net
        from ..networks.weights import load_weights

        model_dir = os.path.abspath(model_dir)
        proto = os.path.join(model_dir, "network.prototxt")
        if not os.path.isfile(proto):
            raise NotFoundError("%s has no network.prototxt: is it a model job folder?" % model_dir, field="model")
        dev = _check_device(device)
        weights = resolve_snapshot(model_dir, snapshot)
        preprocess = load_preprocess(model_dir)
        # The compiler sizes layers from the input shape (a greyscale model has a 1-channel conv1).
        w, h = preprocess.input_size or (224, 224)
        with open(proto, encoding="utf-8") as f:
            net = compile_net(f.read(), phase="deploy", include_loss=False, source=proto,
                              input_shape=(preprocess.channels, h, w))
        if not getattr(net, "score_blob", None):
            raise ValidationError("%s: cannot tell which blob holds the class scores in the deploy phase (no "
                                  "SoftmaxWithLoss bottom and not exactly one 4-D output); end the net with one "
                                  "N×K×H×W output" % proto, field="network")
        report = load_weights(net, weights)
        missing = report.by_status("missing")
        if missing:
            raise ValidationError("snapshot %s lacks weights for layer(s) %s of %s: the snapshot does not belong to this "
                                  "network" % (weights, ", ".join(missing), proto), field="snapshot")
        num_classes = None
        if not os.path.isfile(os.path.join(model_dir, "labels.txt")):
            num_classes = _probe_num_classes(net, preprocess, dev)
        classes, colormap = read_classes(model_dir, num_classes)
        pred = cls(net, classes=classes, colormap=colormap, preprocess=preprocess, device=dev,
                   model_dir=model_dir, weights_path=weights, transform=load_transform(model_dir))
        pred.load_report = report
        _choose_backend(pred, backend)
        return pred

    @property
    def score_blob(self):
        return getattr(self.net, "score_blob", None)

    def to_tensor(self, image):
        """Return the 1×C×H×W float tensor (on the model's device) for a uint8 image."""
        import torch

        return torch.from_numpy(self.preprocess.apply(image)).unsqueeze(0).to(self.device)

    def forward(self, data):
        """Return N×K×H×W class scores for an N×C×H×W input tensor (resized to it if the net is coarser)."""
        import torch

        if self._onnx is not None:
            scores = torch.from_numpy(self._onnx(data.numpy()))
        else:
            out = self.net(data)
            scores = out[self.score_blob] if isinstance(out, dict) else out
        if scores.dim() != 4:
            raise ValidationError("blob %r has shape %s; inference needs N×K×H×W class scores"
                                  % (self.score_blob, tuple(scores.shape)), field="network")
        if scores.shape[-2:] != data.shape[-2:]:
            # A custom net without a final Crop/upsampling: bring scores to pixel resolution.
            scores = torch.nn.functional.interpolate(scores.float(), size=data.shape[-2:], mode="bilinear",
                                                     align_corners=False)
        return scores

    def auto_tile(self, height, width):
        """Return the tile (h, w) used for an image: the training size when the image is larger, else None."""
        size = self.preprocess.input_size
        if not size:
            return None
        tw, th = size
        if height > th or width > tw:
            return (min(th, height), min(tw, width))
        return None

    def scores(self, image, tile=None, stride=None, should_stop=None):
        """Return 1×K×H×W float scores; `tile` None = automatic, 0 = whole image, N or (h, w) = tiles."""
        import torch

        from .sliding import sliding_logits

        data = self.to_tensor(image)
        height, width = data.shape[-2:]
        if tile is None:
            tile = self.auto_tile(height, width)
        elif tile == 0:
            tile = None
        with torch.inference_mode():
            if tile is None:
                return self.forward(data).float()
            return sliding_logits(self.forward, data, tile, stride, should_stop=should_stop)

    def predict(self, image, tile=None, stride=None, fit="auto"):
        """Return the H×W uint8 class ids predicted for a uint8 H×W[×C] image."""
        return self.run(image, fit=fit, tile=tile, stride=stride)[0]

    def plan_fit(self, width, height, fit="auto", tile=None):
        """Return the Fit for an image: an explicit `tile` (N > 0: tiles, 0: whole) wins over `fit`."""
        fit = check_fit(fit)
        original = (int(width), int(height))
        if tile not in (None, ""):
            if not tile:
                return Fit("whole", original)
            t = (tile, tile) if isinstance(tile, int) else tuple(tile)
            return Fit("tiles", original, tile=(min(t[0], height), min(t[1], width)))
        if fit in ("auto", "dataset") and self.transform is not None:
            return Fit("dataset", original, scaled=tuple(self.transform.scaled_size(width, height)),
                       resize_mode=self.transform.mode)
        if fit == "dataset":
            raise ValidationError("this model's dataset was not resized at creation (or is unknown): choose "
                                  "fit auto, tiles or whole", field="fit")
        if fit == "whole":
            return Fit("whole", original)
        auto = self.auto_tile(height, width)
        if fit == "tiles":
            size = self.preprocess.input_size
            if not size:
                raise ValidationError("this model does not record its training size: give a tile size", field="tile")
            auto = (min(size[1], height), min(size[0], width))
        return Fit("tiles", original, tile=auto) if auto else Fit("whole", original)

    def run(self, image, fit="auto", tile=None, stride=None, should_stop=None):
        """Return (H×W uint8 class ids at the input's size, the Fit used) for a uint8 image."""
        img = np.asarray(image)
        plan = self.plan_fit(img.shape[1], img.shape[0], fit, tile)
        if plan.mode == "dataset":
            scaled = scale_image(img, plan.scaled) if tuple(plan.scaled) != plan.original else img
            scores = self.scores(scaled, tile=0)
            mask = scores.argmax(1)[0].to("cpu").numpy().astype(np.uint8)
            return restore_mask(mask, plan.original), plan
        scores = self.scores(img, tile=plan.tile if plan.mode == "tiles" else 0, stride=stride,
                             should_stop=should_stop)
        return scores.argmax(1)[0].to("cpu").numpy().astype(np.uint8), plan

    def describe(self):
        """Return JSON-able facts for pages and logs."""
        return {
            "model_dir": self.model_dir,
            "weights": os.path.basename(self.weights_path) if self.weights_path else None,
            "device": str(self.device),
            "classes": self.classes,
            "colormap": self.colormap,
            "preprocess": self.preprocess.to_dict(),
            "engine": self.engine,
            "dataset_resize": ({"size": list(self.transform.size), "mode": self.transform.mode}
                               if self.transform else None),
        }


def _choose_backend(predictor, backend):
    from . import onnx_backend

    if backend not in onnx_backend.BACKENDS:
        raise ValidationError("unknown backend %r. Available: %s" % (backend, ", ".join(onnx_backend.BACKENDS)),
                              field="backend")
    if backend == "torch":
        return
    if backend == "onnxruntime":
        onnx_backend.ensure(predictor)
    elif str(predictor.device) == "cpu":
        cached = onnx_backend.load_cached(predictor.model_dir, predictor.weights_path)
        if cached is not None:
            predictor.attach_onnx(cached)


def _probe_num_classes(net, preprocess, device):
    """Return the class count of a net's score blob by one small forward pass (no labels.txt to tell)."""
    import torch

    h, w = (preprocess.input_size[1], preprocess.input_size[0]) if preprocess.input_size else (64, 64)
    net = net.to(device).eval()
    with torch.inference_mode():
        out = net(torch.zeros((1, preprocess.channels, min(h, 256), min(w, 256)), device=device))
    scores = out[net.score_blob] if isinstance(out, dict) else out
    return int(scores.shape[1])
