"""A float test image is refused with its value range, as dataset creation refuses it."""

import numpy as np
import pytest
from PIL import Image

from digits_seg.errors import ValidationError
from digits_seg.inference.image_input import to_array


def test_float_test_image_refusal_gives_its_value_range():
    a = np.linspace(0.0, 1.0, 48, dtype=np.float32).reshape(6, 8)  # a 0-1 float TIFF, e.g. a normalised scan
    with pytest.raises(ValidationError) as e:
        to_array(Image.fromarray(a, mode="F"), name="scan.tif")
    assert "scan.tif is a 32-bit floating-point image (values 0 to 1)" in str(e.value)
    assert "0-1 times 255" in str(e.value)
