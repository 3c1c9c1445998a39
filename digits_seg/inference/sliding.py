"""Sliding-window inference: predict images larger than the training size tile by tile.

Squashing a large image to the training size destroys thin structures (poles, lane
markings); running a fully convolutional net on the whole image can run out of memory
and sees object scales it was not trained on. So, as mmsegmentation does, we cut the
image into overlapping tiles of the training size, run each tile, and average the class
scores where tiles overlap; the last tile in each direction is aligned to the image edge
so every pixel is covered without padding.
"""

from ..errors import ValidationError

DEFAULT_OVERLAP = 1.0 / 3.0
"""Fraction of a tile shared with its neighbour when no stride is given."""


def window_starts(length, tile, stride):
    """Return the start offsets of tiles of size `tile` covering 0..length with step `stride`.

    The last start is `length - tile` so the final tile ends at the edge (no padding);
    a length not larger than the tile gives a single window at 0.
    """
    if tile <= 0 or stride <= 0:
        raise ValidationError("tile and stride must be positive, got tile=%r stride=%r" % (tile, stride), field="tile")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def resolve_tiling(height, width, tile, stride=None):
    """Return (tile_h, tile_w, stride_h, stride_w) for an image, clamping tiles to the image.

    Args:
        tile: int (square) or (h, w) pair, in pixels.
        stride: int or (h, w); default: tile minus a third of it (1/3 overlap).
    """
    th, tw = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    if th <= 0 or tw <= 0:
        raise ValidationError("tile size must be positive, got %r" % (tile,), field="tile")
    if stride is None:
        sh = max(1, th - int(round(th * DEFAULT_OVERLAP)))
        sw = max(1, tw - int(round(tw * DEFAULT_OVERLAP)))
    else:
        sh, sw = (stride, stride) if isinstance(stride, int) else (int(stride[0]), int(stride[1]))
    if sh <= 0 or sw <= 0:
        raise ValidationError("stride must be positive, got %r" % (stride,), field="stride")
    if sh > th or sw > tw:
        raise ValidationError("stride %r is larger than tile %r: some pixels would never be predicted; "
                              "use a stride <= the tile size" % (stride, tile), field="stride")
    return min(th, height), min(tw, width), sh, sw


def sliding_logits(forward, data, tile, stride=None, should_stop=None):
    """Return N×K×H×W class scores of `data` (N×C×H×W tensor) averaged over overlapping tiles.

    Args:
        forward: callable mapping an N×C×h×w tensor to N×K×h×w scores (same spatial size).
        tile, stride: see `resolve_tiling`.
        should_stop: optional callable polled between tiles (raise from it to abort).
    """
    import torch

    n, _, height, width = data.shape
    th, tw, sh, sw = resolve_tiling(height, width, tile, stride)
    total = None
    count = torch.zeros((1, 1, height, width), dtype=torch.float32, device=data.device)
    for y in window_starts(height, th, sh):
        for x in window_starts(width, tw, sw):
            if should_stop is not None:
                should_stop()
            scores = forward(data[:, :, y:y + th, x:x + tw])
            if scores.shape[-2:] != (th, tw):
                raise ValidationError("the network returned %s scores for a %dx%d tile; sliding windows need "
                                      "an output the size of its input (choose another tile size)"
                                      % (tuple(scores.shape[-2:]), th, tw), field="tile")
            if total is None:
                total = torch.zeros((n, scores.shape[1], height, width), dtype=torch.float32, device=data.device)
            total[:, :, y:y + th, x:x + tw] += scores.float()
            count[:, :, y:y + th, x:x + tw] += 1
    return total / count
