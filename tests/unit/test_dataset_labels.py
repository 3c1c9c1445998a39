"""Label decoding and colour-map parsing on tiny arrays."""

import numpy as np
import pytest
from PIL import Image

from digits_seg.datasets import palette
from digits_seg.datasets.labels import LabelRules, colorize, decode_label, is_binary_mask
from digits_seg.errors import ValidationError


def test_voc_palette_known_entries():
    p = palette.voc_palette(256)
    assert p[0] == [0, 0, 0] and p[1] == [128, 0, 0] and p[2] == [0, 128, 0] and p[15] == [192, 128, 128]
    assert len({tuple(c) for c in p}) == 256


def test_palette_label_keeps_indices_unchanged():
    a = np.array([[0, 1], [5, 255]], dtype=np.uint8)
    im = Image.fromarray(a, "P")
    im.putpalette([v for c in palette.voc_palette(256) for v in c])
    res = decode_label(im, LabelRules())
    assert res.indices.tolist() == a.tolist() and not res.changed and not res.bad_values


def test_values_over_class_count_reported_but_255_is_ignore():
    a = np.array([[0, 3], [7, 255]], dtype=np.uint8)
    res = decode_label(Image.fromarray(a, "L"), LabelRules(num_classes=4))
    assert res.bad_values == {7: 1}


def test_binary_mask_maps_255_to_class_1():
    a = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    res = decode_label(Image.fromarray(a, "L"), LabelRules(binary=True))
    assert res.indices.tolist() == [[0, 1], [1, 0]] and res.changed
    res = decode_label(Image.fromarray(np.array([[0, 128]], np.uint8), "L"), LabelRules(binary=True))
    assert res.bad_values == {128: 1}
    assert is_binary_mask({0, 255}) and not is_binary_mask({0, 1}) and not is_binary_mask({0, 5, 255})


def test_16bit_greyscale_fits_in_8_bits():
    a = np.array([[0, 2], [3, 300]], dtype=np.uint16)
    res = decode_label(Image.frombytes("I;16", (2, 2), a.astype("<u2").tobytes()), LabelRules())
    assert res.indices[0].tolist() == [0, 2] and res.changed and res.bad_values == {300: 1}


def test_rgb_colours_map_exactly_or_within_tolerance():
    cmap = ((0, 0, 0), (0, 175, 77), (227, 0, 144))
    a = np.array([[[0, 0, 0], [0, 175, 77]], [[228, 0, 144], [9, 9, 9]]], dtype=np.uint8)
    strict = decode_label(Image.fromarray(a, "RGB"), LabelRules(colormap=cmap))
    assert strict.unknown_colors == {(228, 0, 144): 1, (9, 9, 9): 1}
    loose = decode_label(Image.fromarray(a, "RGB"), LabelRules(colormap=cmap, tolerance=2))
    assert loose.indices[0].tolist() == [0, 1] and loose.indices[1, 0] == 2
    assert loose.unknown_colors == {(9, 9, 9): 1} and loose.nearest_pixels == 1


def test_rgba_alpha_ignored_with_note():
    a = np.zeros((2, 2, 4), dtype=np.uint8)
    a[..., 3] = 7
    a[0, 0, :3] = (128, 0, 0)
    res = decode_label(Image.fromarray(a, "RGBA"), LabelRules(colormap=((0, 0, 0), (128, 0, 0))))
    assert res.indices.tolist() == [[1, 0], [0, 0]] and any("alpha" in n for n in res.notes)


def test_rgb_without_colour_map_is_a_clear_error():
    a = np.zeros((2, 2, 3), dtype=np.uint8)
    a[0, 0] = (10, 20, 30)
    with pytest.raises(ValidationError, match="colour map"):
        decode_label(Image.fromarray(a, "RGB"), LabelRules())


def test_colormap_text_and_csv(tmp_path):
    colors, names = palette.parse_colormap_text("# comment\n0 0 0\n128 64 128 road\n")
    assert colors == [[0, 0, 0], [128, 64, 128]] and names is None
    colors, names = palette.parse_colormap_text("name,r,g,b,x\nbg, 1, 2, 3, 0\nfg,4,5,6,1\n")
    assert colors == [[1, 2, 3], [4, 5, 6]] and names == ["bg", "fg"]
    with pytest.raises(ValidationError, match="line 2"):
        palette.parse_colormap_text("0 0 0\n1 2\n")
    with pytest.raises(ValidationError, match="same colour"):
        palette.parse_colormap_text("0 0 0\n0 0 0\n")
    with pytest.raises(ValidationError, match="outside 0-255"):
        palette.parse_colormap_text("0 0 300\n")
    f = tmp_path / "classes.txt"
    f.write_text("sky\n\nroad\n")
    assert palette.parse_classes_file(str(f)) == ["sky", "road"]


def test_colorize_draws_ignore_as_grey_stripes_not_a_class():
    from digits_seg.inference import visualize

    m = np.full((8, 8), 255, np.uint8)
    m[0, :3] = [0, 1, 7]
    ys, xs = np.nonzero(m == 255)
    stripes = np.where(((xs + ys) % 8 < 4)[:, None], 96, 176)  # black is VOC's background: never for ignore
    for out in (colorize(m, [[0, 0, 0], [4, 5, 6]]), visualize.colorize(m, [[0, 0, 0], [4, 5, 6]])):
        assert out[0, :3].tolist() == [[0, 0, 0], [4, 5, 6], [0, 0, 0]]
        assert (out[ys, xs] == stripes).all() and {96, 176} <= set(out[ys, xs, 0].tolist())
