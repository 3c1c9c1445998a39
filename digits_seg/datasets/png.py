"""The two PNG jobs dataset creation does for every pair, done with zlib directly.

Pillow is the reference for everything else; these two are the hot path of creating a
dataset from PNG images and RGB labels (`bench/dataset_create.py`, variant png_rgb):

- `pixels_complete`: a PNG image stored unchanged only has to be shown to decode. Pillow's
  full decode inflates, unfilters and unpacks every row; inflating alone finds the same
  damage (a truncated file runs out of rows, a corrupt stream fails zlib's checks), in
  about 60 % of the time. Whatever this check cannot vouch for is left to Pillow.
- `encode_labels`: class-index labels re-encoded as 8-bit greyscale PNGs with the "Up"
  filter on every row and zlib's run-length strategy. Label maps repeat down the image, so
  Up turns most rows into zeros; Pillow's encoder tries every filter on every row, which
  costs twice the time for files within a few percent of the same size (sizes measured in
  the module's tests and the benchmark).
"""

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
"""Samples per pixel of each PNG colour type (grey, RGB, palette, grey+alpha, RGBA)."""
LABEL_LEVEL = 1
LABEL_STRATEGY = zlib.Z_RLE
"""zlib settings for label PNGs: class maps are long runs of few values, which run-length matching
alone finds; level 1 with the default strategy is as fast and 1.5-2x larger."""
FILTER_UP = 2


def header(data):
    """(width, height, bit depth, colour type, interlace) from the IHDR chunk, or None if it is not there."""
    if not data.startswith(SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBBxxB", data[16:29])


def chunks(data):
    """(kind, body) of each chunk after the signature; in a truncated file the last body is cut short.
    Chunk checksums are not verified (Pillow does not either)."""
    view = memoryview(data)
    pos, end = 8, len(data)
    while pos + 8 <= end:
        length = int.from_bytes(view[pos:pos + 4], "big")
        yield bytes(view[pos + 4:pos + 8]), view[pos + 8:min(end, pos + 8 + length)]
        pos += 12 + length


def significant_bits(data):
    """The significant bits a greyscale PNG's `sBIT` chunk declares (1..16), or None when it has none
    (Pillow does not read the chunk)."""
    head = header(data) if data else None
    if head is None:
        return None
    for kind, body in chunks(data):
        if kind in (b"IDAT", b"IEND"):
            return None  # sBIT must come before the image data
        if kind == b"sBIT" and head[3] in (0, 4) and len(body) >= 1:
            return int(body[0]) if 1 <= body[0] <= 16 else None
    return None


def pixels_complete(data):
    """True when the PNG's pixel data inflates to every row with valid row filters.

    False means "not shown": a damaged file, or one this check does not cover (interlaced);
    the caller then decodes it with Pillow, whose verdict and message stand. Like Pillow,
    chunk checksums are not verified (the zlib stream carries its own adler32, which is).
    """
    head = header(data)
    if head is None:
        return False
    width, height, depth, color, interlace = head
    if interlace or color not in CHANNELS or not width or not height:
        return False
    row = 1 + (width * CHANNELS[color] * depth + 7) // 8  # filter byte + packed samples
    need = row * height
    stream = []
    for kind, body in chunks(data):
        if kind == b"IDAT":
            stream.append(body)
        elif kind == b"IEND":
            break
    try:  # one call with the output sized up front: 20 % faster than inflating chunk by chunk
        rows = zlib.decompress(b"".join(stream), bufsize=need)
    except zlib.error:  # damaged, or cut after the last row (Pillow accepts that): Pillow decides
        return False
    return len(rows) >= need and int(np.frombuffer(rows, np.uint8, count=need)[::row].max()) <= 4


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def encode_labels(indices):
    """PNG bytes (8-bit greyscale) of an H×W uint8 class-index array."""
    a = np.ascontiguousarray(indices, dtype=np.uint8)
    height, width = a.shape
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = FILTER_UP
    rows[0, 0] = 0  # the first row has nothing above it: filter None
    rows[0, 1:] = a[0]
    np.subtract(a[1:], a[:-1], out=rows[1:, 1:])  # uint8 wraps modulo 256, as the Up filter does
    deflate = zlib.compressobj(LABEL_LEVEL, zlib.DEFLATED, 15, 9, LABEL_STRATEGY)
    body = deflate.compress(rows) + deflate.flush()
    return b"".join((SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)),
                     _chunk(b"IDAT", body), _chunk(b"IEND", b"")))
