"""Interp: DeepLab's bilinear resize (align-corners, as Caffe's Interp computes it).

Output size comes from `interp_param`: `height`+`width`, `zoom_factor`, `shrink_factor`
(both: shrink first), or — our extension, as in PSPNet's fork — a second bottom whose
spatial size is copied, which lets a network return to its input size for any input.
`align_corners: false` in interp_param selects a plain (half-pixel) bilinear resize.
"""

import torch.nn.functional as F

from .base import CaffeLayer, register


def interp_size(h, w, zoom, shrink, height, width, pad_beg=0, pad_end=0):
    """Return DeepLab's Interp output size for an h×w input."""
    h_eff, w_eff = h + pad_beg + pad_end, w + pad_beg + pad_end
    if height and width:
        return height, width
    if shrink:
        h_eff, w_eff = (h_eff - 1) // shrink + 1, (w_eff - 1) // shrink + 1
    if zoom:
        h_eff, w_eff = h_eff + (h_eff - 1) * (zoom - 1), w_eff + (w_eff - 1) * (zoom - 1)
    return h_eff, w_eff


class Interp(CaffeLayer):
    def __init__(self, spec, out_shapes, geometry, align):
        super().__init__(spec, out_shapes)
        self.geometry, self.align = geometry, align

    def forward(self, x, ref=None):
        if ref is not None:
            size = (ref.shape[2], ref.shape[3])
        else:
            size = interp_size(x.shape[2], x.shape[3], *self.geometry)
        if size == (x.shape[2], x.shape[3]):
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align)


@register("Interp")
def build_interp(spec):
    spec.expect_bottoms(1, 2)
    shape = spec.in_shapes[0]
    if len(shape) != 4:
        raise spec.error("expects a 4-D input, got shape %s" % list(shape))
    p = spec.param("interp_param")
    zoom = spec.number(p, "zoom_factor", 0, int, 0)
    shrink = spec.number(p, "shrink_factor", 0, int, 0)
    height = spec.number(p, "height", 0, int, 0)
    width = spec.number(p, "width", 0, int, 0)
    pad_beg = spec.number(p, "pad_beg", 0, int)
    pad_end = spec.number(p, "pad_end", 0, int)
    if pad_beg > 0 or pad_end > 0:
        raise spec.error("only pad_beg/pad_end <= 0 (cropping) is supported by Caffe's Interp")
    if pad_beg or pad_end:
        raise spec.error("pad_beg/pad_end are not supported; crop with a Crop layer instead")
    if len(spec.in_shapes) == 2:
        ref = spec.in_shapes[1]
        size = (ref[2], ref[3])
    elif not ((height and width) or zoom or shrink):
        raise spec.error("interp_param needs height+width, zoom_factor or shrink_factor "
                         "(or a second bottom to copy the size from)")
    else:
        size = interp_size(shape[2], shape[3], zoom, shrink, height, width)
    return Interp(spec, [(shape[0], shape[1]) + tuple(size)],
                  (zoom, shrink, height, width), bool(p.get("align_corners", True)))
