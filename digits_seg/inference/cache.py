"""A small thread-safe LRU of loaded Predictors for interactive inference in the web process.

Why single-image inference runs in the web process (and batch runs in a worker): a job
round trip through Redis and a forked worker costs seconds plus a model load, which is
far slower than a forward pass of one image; but loading a model (compile + read weights,
~0.5 s for FCN-AlexNet) must not happen per request. So the app keeps the last few
predictors loaded (`capacity`, default 2: FCN-AlexNet is ~230 MB of float32 weights).

Not blocking other requests for long:
- the LRU lock is held only to look up / insert entries, never while loading or predicting;
- each key has its own load lock, so two requests for the same model load it once while
  requests for other models (or pages) go on;
- at most `max_concurrent` forward passes run at once (a semaphore): the web server has
  several threads, and letting every one of them start a CPU forward pass would make each
  slower and starve page requests of CPU. A request that cannot get a slot within
  `wait_s` fails with a ConflictError ("busy, retry") instead of queueing forever.
One cache per app (created in `create_app`), never a module-level instance.
"""

import collections
import contextlib
import os
import threading

from ..errors import ConflictError

DEFAULT_CAPACITY = 2
"""Predictors kept loaded (count)."""

DEFAULT_MAX_CONCURRENT = 1
"""Forward passes allowed at the same time in the web process (count)."""

DEFAULT_WAIT_S = 30.0
"""Seconds a request waits for a free inference slot before answering 'busy'."""


def _weights_mtime(model_dir, snapshot):
    from .predictor import resolve_snapshot

    path = resolve_snapshot(model_dir, snapshot)
    return path, os.stat(path).st_mtime_ns


class PredictorCache:
    """LRU of `Predictor`s keyed by (model folder, weight file, its mtime, device)."""

    def __init__(self, capacity=DEFAULT_CAPACITY, max_concurrent=DEFAULT_MAX_CONCURRENT, wait_s=DEFAULT_WAIT_S,
                 loader=None, onnx=False):
        from .onnx_backend import BackgroundExports
        from .predictor import Predictor

        self.capacity = max(1, int(capacity))
        self.wait_s = wait_s
        self._loader = loader or Predictor.from_model_dir
        self._lock = threading.Lock()
        self._entries = collections.OrderedDict()
        self._loading = {}
        self._slots = threading.BoundedSemaphore(max(1, int(max_concurrent)))
        self.loads = 0  # how many times a model was actually loaded (for tests and the status page)
        # CPU predictors run in PyTorch until their ONNX graph is exported and verified (onnx_backend).
        self.exports = BackgroundExports() if onnx else None

    def get(self, model_dir, snapshot="best", device="cpu"):
        """Return a loaded Predictor, loading it at most once even under concurrent requests.

        The key includes the weight file's mtime: `best.h5` is rewritten while training
        runs, and a cached predictor must not keep serving the old weights.
        """
        model_dir = os.path.realpath(model_dir)
        path, mtime = _weights_mtime(model_dir, snapshot)
        key = (model_dir, path, mtime, str(device))
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
            try:
                predictor = self._loader(model_dir, snapshot=snapshot, device=device)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                # Drop stale versions of the same model/weights (older mtimes) first.
                for old in [k for k in self._entries if k[:2] == key[:2] and k != key]:
                    del self._entries[old]
                self._entries[key] = predictor
                self.loads += 1
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            if self.exports is not None and str(predictor.device) == "cpu" and predictor.engine == "pytorch":
                self.exports.request(predictor)
            return predictor

    @contextlib.contextmanager
    def slot(self):
        """Hold one of the inference slots for the duration of a forward pass."""
        if not self._slots.acquire(timeout=self.wait_s):
            raise ConflictError("the server is busy with other inference requests; retry in a few seconds "
                                "or use 'test many' (a background job)")
        try:
            yield
        finally:
            self._slots.release()

    def predict(self, model_dir, image, snapshot="best", device="cpu", tile=None, stride=None, fit="auto"):
        """Load (or reuse) the model and return (predictor, H×W uint8 class ids)."""
        predictor = self.get(model_dir, snapshot, device)
        with self.slot():
            return predictor, predictor.predict(image, tile=tile, stride=stride, fit=fit)

    def evict(self, model_dir=None):
        """Forget cached predictors (all, or those of one model folder, e.g. when a job is deleted)."""
        with self._lock:
            if model_dir is None:
                self._entries.clear()
                return
            real = os.path.realpath(model_dir)
            for k in [k for k in self._entries if k[0] == real]:
                del self._entries[k]

    def __len__(self):
        with self._lock:
            return len(self._entries)
