"""Inference: load a snapshot, predict one or many images, colourise, overlay, export.

Modules (no Flask/rq imports; torch is imported lazily by the ones that need it):
`visualize` (pure numpy/PIL rendering), `sliding` (tiled inference), `predictor`
(a loaded model), `cache` (LRU of predictors for the web process), `batch` (the
`infer_many` task), `scoring` (per-image and aggregate metrics), `export` (ONNX,
TorchScript).
"""
