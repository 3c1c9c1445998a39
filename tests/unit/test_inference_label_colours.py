"""Test-many ground truth in colours: a folder of photos given as labels is refused, not scored as 0."""

import numpy as np
import pytest
from PIL import Image

from digits_seg.errors import ValidationError
from digits_seg.inference.sources import read_image, read_label

COLORS = [(128, 64, 128), (70, 70, 70)]


def test_rgb_label_in_the_model_colours_reads_and_a_photo_is_refused(tmp_path):
    ids = np.array([[0, 1, 1, 0], [1, 1, 0, 0]], np.uint8)
    rgb = np.array(COLORS, np.uint8)[ids]
    rgb[0, 0] = (1, 2, 3)  # one stray colour: ignored (255), as before
    Image.fromarray(rgb).save(tmp_path / "0001TP_006690_L.png")
    want = ids.copy()
    want[0, 0] = 255
    np.testing.assert_array_equal(read_label(str(tmp_path / "0001TP_006690_L.png"), COLORS, 2), want)

    photo = np.random.RandomState(0).randint(0, 256, (8, 8, 3)).astype(np.uint8)  # an image, not a label
    Image.fromarray(photo).save(tmp_path / "0001TP_006720.png")
    with pytest.raises(ValidationError, match=r"0001TP_006720.png: 100% of its pixels have colours in no class"):
        read_label(str(tmp_path / "0001TP_006720.png"), COLORS, 2)


def test_a_text_file_named_png_is_named_for_what_it_is(tmp_path):
    (tmp_path / "0001TP_006750.png").write_text("version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer
    for read in (read_image, lambda p: read_label(p, COLORS, 2)):
        with pytest.raises(ValidationError, match=r"0001TP_006750.png is not an image: it is text starting with"):
            read(str(tmp_path / "0001TP_006750.png"))
