"""Run a snapshot's network in ONNX Runtime on the CPU: same scores as PyTorch, less time.

On a 2-core CPU the FCN-AlexNet forward at 512² takes 0.49 s in PyTorch eager and 0.32 s
in ONNX Runtime with identical output, so CPU prediction (the web process's "Test one
image", test-many jobs, `digits-seg infer`) uses ONNX Runtime when a verified graph of the
snapshot exists. The graph holds the *network only* (input: the preprocessed N×C×H×W
tensor, as `Predictor.to_tensor` makes it; output: the score blob), so preprocessing has
one implementation whichever engine runs the net. User-facing exports (export.py) bake the
preprocessing in instead.

The graph is cached per snapshot file next to user exports, as
`exports/<snapshot>-<mtime>.net.onnx`: a rewritten snapshot gets a new name, and the
cache is only published after onnxruntime reproduced PyTorch at three sizes. A network
that cannot be exported keeps running in PyTorch (the job log, or `BackgroundExports.failures`, says why).
"""

import os
import threading

import numpy as np

from ..errors import ValidationError

BACKENDS = ("auto", "torch", "onnxruntime")
"""`auto`: ONNX Runtime on the CPU when a verified graph is cached, else PyTorch; `onnxruntime`:
export the graph now if it is missing (CPU only); `torch`: always PyTorch."""

def cache_path(model_dir, weights_path):
    """Where the network-only graph of a snapshot file is cached."""
    from .export import exported_path

    return exported_path(model_dir, weights_path, "net-onnx")


class OnnxNet:
    """An onnxruntime session of a network-only graph: preprocessed N×C×H×W → scores."""

    def __init__(self, path, threads=None):
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.path = path
        self.session = onnxruntime.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, data):
        """Return class scores (numpy float32) for a float32 numpy batch."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(data, dtype=np.float32)})[0]


def _net_only(predictor):
    import torch

    class NetOnly(torch.nn.Module):
        """The compiled net returning only its score blob."""

        def __init__(self):
            super().__init__()
            self.net = predictor.net

        def forward(self, data):
            out = self.net(data)
            return out[predictor.score_blob] if isinstance(out, dict) else out

    return NetOnly().eval()


def build(predictor, path):
    """Export, verify and publish the network-only graph of a CPU predictor; return the export report."""
    from .export import export_module

    return export_module(_net_only(predictor), predictor.preprocess.channels, path)


def load_cached(model_dir, weights_path):
    """Return an OnnxNet for a snapshot's cached graph, or None when there is none (or it cannot load)."""
    if not model_dir or not weights_path:
        return None
    path = cache_path(model_dir, weights_path)
    if not os.path.isfile(path):
        return None
    try:
        return OnnxNet(path)
    except Exception:  # noqa: BLE001 - a damaged cache file only costs speed: PyTorch runs instead
        return None


def ensure(predictor):
    """Attach an ONNX Runtime session to a CPU predictor, exporting the graph if needed (blocking)."""
    if str(predictor.device) != "cpu":
        raise ValidationError("the onnxruntime backend runs on the CPU; use device cpu (or backend torch for "
                              "%s)" % predictor.device, field="backend")
    path = cache_path(predictor.model_dir, predictor.weights_path)
    if not os.path.isfile(path):
        predictor.onnx_report = build(predictor, path)
    predictor.attach_onnx(OnnxNet(path))
    return path


class BackgroundExports:
    """At most one cache export at a time in a long-lived process (the web server).

    A predictor starts in PyTorch; `request` exports its graph on a thread and attaches the
    session when verified, so the first requests are never delayed by an export.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._busy = set()
        self.failures = {}

    def request(self, predictor):
        key = cache_path(predictor.model_dir, predictor.weights_path)
        with self._lock:
            if self._busy or key in self.failures:  # one export at a time; a failed one is not retried
                return False
            self._busy.add(key)
        threading.Thread(target=self._run, args=(predictor, key), name="onnx-export", daemon=True).start()
        return True

    def _run(self, predictor, key):
        try:
            ensure(predictor)
        except Exception as exc:  # noqa: BLE001 - remembered (not retried); the predictor keeps PyTorch
            self.failures[key] = str(getattr(exc, "message", exc))[:300]
        finally:
            with self._lock:
                self._busy.discard(key)
