"""What to do instead of a layer type digits-seg does not run: a known replacement, else the nearest name."""

import difflib

from .layers import supported_types

FIXES = {
    "BatchNormalization": "use BatchNorm followed by Scale { bias_term: true } (BVLC Caffe), or BN (caffe-segnet)",
    "SyncBN": "use BatchNorm followed by Scale { bias_term: true }",
    "Normalize": "replace it with BatchNorm + Scale, or remove it (ParseNet/SSD's L2 normalisation is not "
                 "supported)",
    "MVN": "replace it with BatchNorm (use_global_stats false) followed by Scale",
    "ConvolutionDepthwise": "use Convolution with group equal to its input channels",
    "DepthwiseConvolution": "use Convolution with group equal to its input channels",
    "ArgMax": "remove it: digits-seg takes the arg max of the score blob itself",
    "HDF5Output": "remove it: outputs are written by digits-seg",
    "ReLU6": "use ReLU (the clipping at 6 is not supported)",
    "Upsampling": "use Upsample (max-unpooling with a pooling mask), Deconvolution or Interp",
    "SigmoidCrossEntropyLoss": "replace it with SoftmaxWithLoss over one score channel per class",
    "EuclideanLoss": "replace it with SoftmaxWithLoss: digits-seg trains per-pixel classification",
    "InfogainLoss": "replace it with SoftmaxWithLoss; class weights go in loss_param "
                    "{ weight_by_label_freqs: true class_weighting: ... }",
    "MultinomialLogisticLoss": "replace it and the Softmax before it by SoftmaxWithLoss",
    "HingeLoss": "replace it with SoftmaxWithLoss",
}
"""Unsupported layer type -> what to do instead (other types get the nearest supported name)."""


def fix_for(type_name):
    """Return the fix for an unknown layer type: a known replacement, a case slip, or the nearest names."""
    if type_name in FIXES:
        return FIXES[type_name]
    close = difflib.get_close_matches(type_name, supported_types(), n=2, cutoff=0.6)
    lower = [t for t in supported_types() if t.lower() == type_name.lower()]
    if lower:
        return "layer types are case-sensitive: write '%s'" % lower[0]
    if close:
        return "did you mean %s? (or remove the layer)" % " or ".join("'%s'" % c for c in close)
    return "remove it or replace it with a supported type (listed below)"
