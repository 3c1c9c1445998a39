"""datasets.png: the label encoder round-trips through Pillow; the inflate-only check never
vouches for a file that Pillow's full decode refuses, and vouches for intact files of every
colour type."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from digits_seg.datasets import png


def _pil_decodes(data):
    try:
        Image.open(io.BytesIO(data)).load()
        return True
    except Exception:
        return False


def _chunks(data):
    pos, out = 8, []
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        out.append((data[pos + 4:pos + 8], pos, n))
        pos += 12 + n
    return out


def _png(kind_of_image, **save):
    buf = io.BytesIO()
    kind_of_image.save(buf, "PNG", **save)
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (24, 32), (360, 480)])
def test_encoded_labels_decode_to_the_same_indices(shape):
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    blocks = rng.integers(0, 256, (shape[0] // 4 + 1, shape[1] // 4 + 1), dtype=np.uint8)
    a = np.kron(blocks, np.ones((4, 4), np.uint8))[:shape[0], :shape[1]]  # runs, as in label maps
    a[rng.random(shape) < 0.05] = 255  # some ignore pixels
    data = png.encode_labels(a)
    im = Image.open(io.BytesIO(data))
    assert im.mode == "L" and im.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(im), a)
    # every row below the first wraps modulo 256 (0 - 255), which the Up filter must undo exactly
    b = np.where(np.arange(shape[0])[:, None] % 2 == 0, 0, 255).astype(np.uint8) * np.ones(shape[1], np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png.encode_labels(b)))), b)


def test_encoded_labels_are_no_larger_than_pillows_on_label_like_maps():
    """The size the encoder costs, measured: SynthCity-like scenes (big regions) at 512×512."""
    from digits_seg.datasets import synthcity

    ours = pils = 0
    for i in range(4):
        _, label = synthcity.render((256, 256), np.random.default_rng([3, i]))
        ours += len(png.encode_labels(label))
        buf = io.BytesIO()
        Image.fromarray(label, "L").save(buf, "PNG", compress_level=6)
        pils += len(buf.getvalue())
    assert ours <= pils * 1.05, (ours, pils)


def _images():
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    yield "RGB", _png(Image.fromarray(rgb), compress_level=1)
    yield "RGBA", _png(Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA"))
    yield "L", _png(Image.fromarray(rgb[..., 0]), compress_level=9)
    yield "LA", _png(Image.fromarray(rgb[..., :2].copy(), "LA"))
    p = Image.fromarray(rgb[..., 0] % 7, "P")
    p.putpalette([i * 30 % 256 for i in range(768)])
    yield "P", _png(p)
    yield "1", _png(Image.fromarray(rgb[..., 0] > 128))
    yield "P 4-bit", _png(p, bits=4)
    yield "I;16", _png(Image.fromarray(rgb[..., 0].astype(np.uint16) * 257))


@pytest.mark.parametrize("name,data", list(_images()))
def test_intact_pngs_of_every_colour_type_are_vouched_for(name, data):
    assert _pil_decodes(data)
    assert png.pixels_complete(data), name


def _damaged(data):
    """Damage of every kind seen in the wild, each as (what, bytes)."""
    idats = [c for c in _chunks(data) if c[0] == b"IDAT"]
    _, pos, n = idats[0]
    for cut in (len(data) // 2, pos + 8 + n // 2, pos + 8, 40, 12):
        yield "truncated at %d" % cut, data[:cut]
    for k in range(0, n, max(1, n // 16)):  # a changed byte inside the compressed stream
        bad = bytearray(data)
        bad[pos + 8 + k] ^= 0x5A
        yield "byte %d flipped" % k, bytes(bad)
    yield "no IDAT", data[:pos] + data[pos + 12 + n:]
    yield "not a PNG", b"<html>" + data[6:]


@pytest.mark.parametrize("name,data", list(_images()))
def test_the_check_never_vouches_for_what_pillow_refuses(name, data):
    seen_refused = 0
    for what, bad in _damaged(data):
        ok = png.pixels_complete(bad)
        if ok:
            assert _pil_decodes(bad), "%s, %s: vouched for, but Pillow refuses it" % (name, what)
        if not _pil_decodes(bad):
            seen_refused += 1
    assert seen_refused >= 5  # the damage is real


def _rows_png(width, height, rows, interlace=0):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, interlace)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return png.SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_an_unknown_row_filter_is_not_vouched_for():
    good = _rows_png(4, 3, bytes([0, 1, 2, 3, 4] * 3))
    bad = _rows_png(4, 3, bytes([0, 1, 2, 3, 4, 7, 1, 2, 3, 4, 0, 1, 2, 3, 4]))
    assert png.pixels_complete(good) and _pil_decodes(good)
    assert not png.pixels_complete(bad)


def test_interlaced_files_are_left_to_pillow():
    data = _rows_png(4, 3, bytes(15), interlace=1)
    assert not png.pixels_complete(data)


def test_a_file_cut_after_its_pixel_data_is_accepted_as_pillow_does():
    """Pillow stops reading once it has every row: a file cut inside IEND still loads, and the check (which
    needs the whole zlib stream, not the chunks after it) vouches for it too."""
    data = _png(Image.fromarray(np.arange(64 * 48, dtype=np.uint32).reshape(48, 64).astype(np.uint8)))
    cut = data[:-6]
    assert _pil_decodes(cut) and png.pixels_complete(cut)


def test_pixel_data_split_into_tiny_idat_chunks_is_vouched_for():
    """Encoders may split the stream anywhere (even inside the zlib header): every piece counts."""
    rows = bytes([2, 1, 2, 3, 4] * 3)
    z = zlib.compress(rows)
    ihdr = struct.pack(">IIBBBBB", 4, 3, 8, 0, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    data = png.SIGNATURE + chunk(b"IHDR", ihdr) + b"".join(chunk(b"IDAT", z[i:i + 1]) for i in range(len(z)))
    data += chunk(b"IEND", b"")
    assert _pil_decodes(data) and png.pixels_complete(data)
    assert not png.pixels_complete(data[: len(data) // 2])
