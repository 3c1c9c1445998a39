"""Fit the FCN authors' upsampling weights to our grouped upsampling layers.

The FCN authors' Caffe nets upsample class scores with a Deconvolution of `num_output` C and
no group: C×C×k×k weights holding a bilinear kernel on the diagonal and zeros elsewhere (set by
their `surgery.interp`, kept by `lr_mult: 0`). Our FCN networks write that layer grouped
(`group` C, weights C×1×k×k), as DIGITS did, so that a new class count re-initialises it from
the bilinear filler correctly. With zero off-diagonal weights both compute the same scores, so
the import keeps the diagonal; anything else is left for the weight loader to refuse by name.
"""

import numpy as np

from ..errors import ValidationError


def network_blob_shapes(text):
    """{layer: [blob shape]} of a network's deploy phase, built without allocating; None when it does not build."""
    from ..networks.compiler import compile_net

    try:
        net = compile_net(text, "deploy", include_loss=False, device="meta")
    except ValidationError:
        return None  # an unusual network: nothing is adapted; the loader says what does not fit
    return {k: [tuple(b.shape) for b in v] for k, v in net.layer_blobs().items()}


def _diagonal(weights):
    """The C×1×k×k diagonal of C×C×k×k weights whose off-diagonal entries are all zero, else None."""
    c = weights.shape[0]
    idx = np.arange(c)
    off = np.array(weights, copy=True)
    off[idx, idx] = 0
    if np.any(off):
        return None
    return np.ascontiguousarray(weights[idx, idx][:, None])


def group_diagonal_blobs(blobs, text, log):
    """Return `blobs` with C×C×k×k diagonal weights reduced to C×1×k×k where the network's layer is grouped.

    Returns `blobs` itself when nothing needed fitting.
    """
    candidates = [k for k, v in blobs.items()
                  if v and np.ndim(v[0]) == 4 and np.shape(v[0])[0] == np.shape(v[0])[1] > 1]
    if not candidates:
        return blobs
    expected = network_blob_shapes(text)
    if not expected:
        return blobs
    out = {}
    for name in candidates:
        w = np.asarray(blobs[name][0])
        c, _, kh, kw = w.shape
        want = expected.get(name)
        if not want or want[0] != (c, 1, kh, kw):
            continue
        diag = _diagonal(w)
        if diag is None:
            continue
        out[name] = [diag] + list(blobs[name][1:])
        log("weights: %s %dx%dx%dx%d (a deconvolution with bilinear kernels on its diagonal) written as the "
            "network's grouped %dx1x%dx%d" % (name, c, c, kh, kw, c, kh, kw))
    return dict(blobs, **out) if out else blobs  # unchanged: the same object, so a verified file is kept as is
