"""`digits-seg score`: masks made elsewhere (index and colour PNGs) scored with hand-computed numbers."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from digits_seg.cli import main

CLASSES = ["road", "car", "sky", "void"]
COLORS = [(128, 64, 128), (64, 0, 128), (128, 128, 128), (0, 0, 0)]


def palette_png(path, ids):
    img = Image.fromarray(np.asarray(ids, np.uint8), "P")
    img.putpalette([v for c in COLORS for v in c] + [0] * (768 - 3 * len(COLORS)))
    img.save(path)


def colour_png(path, ids):
    lut = np.zeros((256, 3), np.uint8)
    lut[:len(COLORS)] = COLORS
    Image.fromarray(lut[np.asarray(ids, np.uint8)]).save(path)


@pytest.fixture
def masks(tmp_path):
    pred, labels = tmp_path / "pred", tmp_path / "labels"
    pred.mkdir()
    labels.mkdir()
    # image a: greyscale index label with one 255 pixel, palette prediction that paints "sky" (absent here)
    Image.fromarray(np.array([[0, 0, 1, 1], [0, 0, 1, 255]], np.uint8), "L").save(labels / "0001TP_006690.png")
    palette_png(pred / "0001TP_006690.png", [[0, 0, 1, 0], [0, 2, 1, 1]])
    # image b: colour label with a void pixel, colour prediction
    colour_png(labels / "0001TP_006720.png", [[2, 2, 2, 2], [0, 0, 0, 3]])
    colour_png(pred / "0001TP_006720.png", [[2, 2, 0, 2], [0, 0, 0, 0]])
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (tmp_path / "colormap.txt").write_text("".join("%d %d %d\n" % c for c in COLORS))
    return tmp_path


def score(capsys, root, *extra):
    code = main(["score", "--pred", str(root / "pred"), "--labels", str(root / "labels"),
                 "--classes", str(root / "classes.txt"), "--colormap", str(root / "colormap.txt"), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_score_index_and_colour_masks_gives_hand_computed_numbers(masks, capsys):
    code, out, _ = score(capsys, masks, "--ignore", "3", "--json")
    assert code == 0
    got = json.loads(out)
    # By hand (rows truth, columns prediction), void and 255 left out:
    #   a: road->road 3, road->sky 1, car->car 2, car->road 1
    #   b: road->road 3, sky->sky 3, sky->road 1
    # road: tp 6, truth 7, predicted 8 -> IoU 6/9; car: tp 2, truth 3, predicted 2 -> 2/3;
    # sky: tp 3, truth 4, predicted 4 -> 3/5; 11 of 14 pixels right.
    assert got["pixel_acc"] == pytest.approx(11 / 14)
    assert got["mean_iou"] == pytest.approx((6 / 9 + 2 / 3 + 3 / 5) / 3)
    assert got["mean_acc"] == pytest.approx((6 / 7 + 2 / 3 + 3 / 4) / 3)
    assert got["fw_iou"] == pytest.approx((7 * 6 / 9 + 3 * 2 / 3 + 4 * 3 / 5) / 14)
    assert got["per_class_iou"][:3] == pytest.approx([6 / 9, 2 / 3, 3 / 5]) and got["per_class_iou"][3] is None
    assert got["confusion"] == [[6, 0, 1, 0], [1, 2, 0, 0], [1, 0, 3, 0], [0, 0, 0, 0]]
    # worst image first: a has sky predicted but absent (IoU 0) -> (3/5 + 2/3 + 0) / 3
    assert [e["name"] for e in got["images"]] == ["0001TP_006690.png", "0001TP_006720.png"]
    assert got["images"][0]["scores"]["mean_iou"] == pytest.approx((3 / 5 + 2 / 3 + 0) / 3)

    code, text, _ = score(capsys, masks, "--ignore", "3")
    assert code == 0 and "mean IoU  64.44%" in text and "(ignored)" in text


def test_clear_errors_for_unpaired_files_sizes_and_unknown_colours(masks, capsys):
    colour_png(masks / "pred" / "0001TP_006750.png", [[0]])
    code, _, err = score(capsys, masks)
    assert code == 2 and "1 prediction(s) without a label: 0001TP_006750.png" in err
    os.unlink(masks / "pred" / "0001TP_006750.png")

    Image.fromarray(np.array([[1, 2, 3]], np.uint8)[:, :, None].repeat(3, 2)).save(masks / "pred" / "0001TP_006720.png")
    code, _, err = score(capsys, masks)
    assert code == 2 and "0001TP_006720.png" in err and "(1, 1, 1)" in err and "not in the colour map" in err

    colour_png(masks / "pred" / "0001TP_006720.png", [[0, 0, 0], [0, 0, 0]])
    code, _, err = score(capsys, masks)
    assert code == 2 and "is 3×2 but its label" in err and "4×2" in err


def test_scores_the_output_of_digits_seg_infer_against_a_folder_of_all_labels(masks, capsys):
    """`infer --out` writes <stem>_mask.png + _color/_overlay pictures; the labels folder holds more labels."""
    pred = masks / "pred"
    for stem in ("0001TP_006690", "0001TP_006720"):
        os.rename(pred / (stem + ".png"), pred / (stem + "_mask.png"))
        colour_png(pred / (stem + "_color.png"), [[9]])      # pictures, not masks: never scored
        colour_png(pred / (stem + "_overlay.png"), [[9]])
    Image.fromarray(np.zeros((2, 4), np.uint8), "L").save(masks / "labels" / "0001TP_006750.png")  # no prediction
    code, out, _ = score(capsys, masks, "--ignore", "3", "--json")
    got = json.loads(out)
    assert code == 0 and got["count"] == 2 and got["unscored_labels"] == 1
    assert got["pixel_acc"] == pytest.approx(11 / 14)  # the same numbers as the plain names give
    code, text, _ = score(capsys, masks, "--ignore", "3")
    assert code == 0 and "2 mask pairs; 1 label(s) without a prediction not scored" in text
