"""Unit tests of the mask rendering helpers (colourise, blend, error map, cut-out, contour, PNG)."""

import io

import numpy as np
import pytest
from PIL import Image

from digits_seg.errors import ValidationError
from digits_seg.inference import visualize as vz

CMAP = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]


def _mask():
    m = np.zeros((4, 6), dtype=np.uint8)
    m[:, 3:] = 1
    m[0, 0] = 2
    m[3, 5] = 255
    return m


def test_colorize_uses_palette_and_ignore_color():
    rgb = vz.colorize(_mask(), CMAP, ignore_color=(9, 9, 9))
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert rgb[1, 0].tolist() == [0, 0, 0]
    assert rgb[1, 4].tolist() == [255, 0, 0]
    assert rgb[0, 0].tolist() == [0, 255, 0]
    assert rgb[3, 5].tolist() == [9, 9, 9]


def test_colorize_rejects_wrong_shape():
    with pytest.raises(ValidationError):
        vz.colorize(np.zeros((2, 2, 3), np.uint8), CMAP)


def test_blend_alpha_extremes_and_midpoint():
    img = np.full((4, 6, 3), 100, np.uint8)
    col = np.full((4, 6, 3), 200, np.uint8)
    assert (vz.blend(img, col, 0.0) == 100).all()
    assert (vz.blend(img, col, 1.0) == 200).all()
    assert (vz.blend(img, col, 0.25) == 125).all()
    where = np.zeros((4, 6), bool)
    where[0, 0] = True
    out = vz.blend(img, col, 1.0, where=where)
    assert out[0, 0, 0] == 200 and out[1, 1, 0] == 100
    with pytest.raises(ValidationError):
        vz.blend(img, col, 1.5)


def test_overlay_leaves_ignore_pixels_and_accepts_greyscale():
    img = np.full((4, 6), 50, np.uint8)
    out = vz.overlay(img, _mask(), CMAP, alpha=1.0)
    assert out.shape == (4, 6, 3)
    assert out[3, 5].tolist() == [50, 50, 50]
    assert out[1, 4].tolist() == [255, 0, 0]


def test_error_map_ignores_255():
    gt = _mask()
    pred = gt.copy()
    pred[3, 5] = 1  # under ignore: not an error
    pred[0, 1] = 2  # real error
    err = vz.error_map(pred, gt)
    assert err.dtype == bool
    assert err.sum() == 1 and err[0, 1]
    with pytest.raises(ValidationError):
        vz.error_map(pred, gt[:2])


def test_error_overlay_paints_errors_only():
    gt = _mask()
    pred = gt.copy()
    pred[0, 1] = 2
    out = vz.error_overlay(np.full((4, 6, 3), 80, np.uint8), pred, gt, alpha=1.0)
    assert out[0, 1].tolist() == list(vz.ERROR_COLOR)
    assert out[2, 2].tolist() == [80, 80, 80]


def test_cutout_keeps_chosen_classes_only():
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    rgba = vz.cutout(img, _mask(), keep_classes=[1])
    assert rgba.shape == (4, 6, 4)
    assert (rgba[:, :, :3] == img).all()
    alpha = rgba[:, :, 3]
    assert (alpha[:, 3:5] == 255).all()
    assert alpha[3, 5] == 0 and alpha[0, 0] == 0 and (alpha[:, 1:3] == 0).all()
    assert (vz.cutout(img, _mask(), [])[:, :, 3] == 0).all()


def test_contour_marks_both_sides_of_a_boundary():
    m = np.zeros((5, 5), np.uint8)
    m[:, 3:] = 1
    edge = vz.contour(m)
    assert edge[:, 2].all() and edge[:, 3].all()
    assert not edge[:, :2].any() and not edge[:, 4].any()
    assert vz.contour(m, thickness=2)[:, 1].all()
    outlined = vz.contour_overlay(np.zeros((5, 5, 3), np.uint8), m, CMAP)
    assert outlined[0, 3].tolist() == [255, 0, 0] and outlined[0, 4].tolist() == [0, 0, 0]


def test_class_histogram_counts_and_shares():
    h = vz.class_histogram(_mask(), ["bg", "car", "person"], CMAP)
    assert h["total"] == 24 and h["ignored"] == 1
    rows = {r["name"]: r for r in h["classes"]}
    assert rows["car"]["pixels"] == 11 and rows["person"]["pixels"] == 1 and rows["bg"]["pixels"] == 11
    assert abs(sum(r["share"] for r in h["classes"]) - 1.0) < 1e-9
    assert rows["car"]["color"] == [255, 0, 0]
    extra = vz.class_histogram(np.full((2, 2), 7, np.uint8), ["a"])
    assert [r["id"] for r in extra["classes"]] == [0, 7]


def test_palette_png_round_trip(tmp_path):
    path = tmp_path / "mask.png"
    vz.save_palette_png(_mask(), CMAP, str(path))
    img = Image.open(path)
    assert img.mode == "P"
    assert (np.asarray(img) == _mask()).all()
    assert img.getpalette()[3:6] == [255, 0, 0]
    rgba = Image.open(io.BytesIO(vz.encode_png(vz.cutout(np.zeros((4, 6, 3), np.uint8), _mask(), [1]))))
    assert rgba.mode == "RGBA"


def test_voc_colormap_known_entries():
    c = vz.voc_colormap()
    assert c[1].tolist() == [128, 0, 0] and c[15].tolist() == [192, 128, 128]


def test_result_files_keep_the_inputs_names():
    from digits_seg.inference.batch import file_stem

    used = set()
    names = [file_stem(n, used) for n in ("frame_001", "frame 002", "Frame_001", "straße", "../x", "")]
    assert names == ["frame_001", "frame_002", "Frame_001_2", "straße", "x", "image"]
