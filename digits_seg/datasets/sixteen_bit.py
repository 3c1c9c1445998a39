"""16-bit greyscale images (microscopy, industrial cameras) → the 8 bits a dataset stores.

Such cameras usually put 10, 12 or 14 significant bits in a 16-bit container. Dividing by 256
(`full`, all this product did before the option existed) keeps 16 grey levels of a 12-bit
image; dividing by 2^(n − 8) for n significant bits keeps 256. A dataset records its n in
`dataset.json` (`sixteen_bit.significant_bits`), a model copies it into `preprocess.json`, and
inference divides 16-bit test images by the same number, refusing values above that n-bit
range rather than clipping them (a clipped value would look like a right one).

The option (`DatasetParams.sixteen_bit`):
- `bits` (default): n = the larger of what the files' PNG `sBIT` chunks declare and what the
  largest value in the dataset's 16-bit images needs, rounded up to 8, 10, 12, 14 or 16 bits;
- `full`: n = 16 (value ÷ 256);
- `10`, `12`, `14`: n as given (a camera's known depth); larger values are refused.
Records without the field (older datasets and models) mean 16: they keep their ÷ 256.
"""

import numpy as np

from ..errors import ValidationError
from . import png

OPTIONS = ("bits", "full", "10", "12", "14")
"""Values of the dataset option `sixteen_bit`."""
DEFAULT_OPTION = "bits"
LEGACY_OPTION = "full"
"""What dataset params without the field (jobs made before it existed) did."""
LEGACY_BITS = 16
"""Significant bits assumed by records without the field: value ÷ 256."""
DEPTHS = (8, 10, 12, 14, 16)
"""Bit depths `bits` rounds the largest value up to (8: 8-bit data in a 16-bit file, stored unchanged)."""
CRUSHED_LEVELS = 64
"""Fewer stored grey levels than this, where another choice keeps more, is reported as a warning."""
GREY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""Pillow modes of greyscale images with more than 8 bits ("I": 32-bit, from some TIFFs and PNG readers)."""


def is_grey16(mode):
    """True for a Pillow mode holding greyscale values above 8 bits."""
    return mode in GREY16_MODES


def explicit_bits(option):
    """The significant bits an option fixes without looking at the images (None for `bits`)."""
    option = option or LEGACY_OPTION
    if option == "full":
        return 16
    return None if option == "bits" else int(option)


def depth_for(max_value):
    """The smallest of `DEPTHS` whose range holds `max_value`."""
    for d in DEPTHS:
        if max_value < 2 ** d:
            return d
    return 16


def inspect(image, data=None):
    """{min, max, sbit} of a decoded 16-bit greyscale image (`data`: the file's bytes, for `sBIT`)."""
    a = np.asarray(image)
    return {"min": int(a.min()) if a.size else 0, "max": int(a.max()) if a.size else 0, "sbit": png.significant_bits(data)}


def range_problem(name, info, bits):
    """A message when an image's values do not fit 16 bits, or the `bits`-bit range (None: they fit)."""
    if info["min"] < 0 or info["max"] > 65535:
        return ("%s has greyscale values from %d to %d: only 8- and 16-bit greyscale images (0–65535) are read; "
                "convert it to 16-bit first" % (name, info["min"], info["max"]))
    if bits is not None and info["max"] >= 2 ** bits:
        return ("%s has values up to %d, above the %d-bit range (0–%d) of the 16-bit option; choose `bits` (the "
                "depth is then found from the images) or a larger depth" % (name, info["max"], bits, 2 ** bits - 1))
    return None


def to_8bit(array, bits, name="image", fix=None):
    """Return `array` (16-bit greyscale values) ÷ 2^(bits − 8) as uint8; raise when a value is outside `bits` bits.

    Args:
        fix: what to do about out-of-range values, for the message (the caller knows its context).
    """
    a = np.asarray(array)
    if a.size:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise ValidationError("%s has greyscale values from %d to %d: only 8- and 16-bit greyscale images "
                                  "(0–65535) are read; convert it to 16-bit first" % (name, lo, hi))
        if hi >= 2 ** bits:
            raise ValidationError("%s has values up to %d, above the %d-bit range (0–%d)%s"
                                  % (name, hi, bits, 2 ** bits - 1, "; " + fix if fix else ""))
    return (a.astype(np.uint32) >> (bits - 8)).astype(np.uint8)


def levels(max_value, bits):
    """Grey levels values 0..max_value keep when stored as value ÷ 2^(bits − 8)."""
    return min(256, (int(max_value) >> (bits - 8)) + 1)


def scale_words(bits):
    """'value ÷ 16' (or 'unchanged' for 8 bits)."""
    return "unchanged" if bits == 8 else "value ÷ %d" % 2 ** (bits - 8)


class Survey:
    """What a dataset's 16-bit greyscale images hold: count, value range, declared `sBIT` depths."""

    def __init__(self):
        self.images = 0
        self.max_value = 0
        self.max_file = None
        self.sbits = {}  # declared depth -> images
        self.sbit_exceeded = None  # (file, sbit, max) of the first image with values above its sBIT
        self.files = []  # the first few 16-bit images

    def add(self, info, path):
        self.images += 1
        if len(self.files) < 20:
            self.files.append(path)
        if info["max"] >= self.max_value:
            self.max_value, self.max_file = info["max"], path
        if info.get("sbit"):
            self.sbits[info["sbit"]] = self.sbits.get(info["sbit"], 0) + 1
            if info["max"] >= 2 ** info["sbit"] and self.sbit_exceeded is None:
                self.sbit_exceeded = (path, info["sbit"], info["max"])

    def detected_bits(self):
        """`bits`: the larger of the declared sBIT depths and the depth the largest value needs."""
        return max([depth_for(min(self.max_value, 65535))] + list(self.sbits))

    def resolve(self, option):
        """The significant bits `option` gives these images (16 when there are none and nothing is fixed)."""
        fixed = explicit_bits(option)
        if fixed is not None:
            return fixed
        return self.detected_bits() if self.images else LEGACY_BITS

    def describe(self, option, bits=None):
        """The record for `dataset.json` and the check: the choice, its numbers and a sentence."""
        option = option or LEGACY_OPTION
        bits = bits or self.resolve(option)
        rec = {"option": option, "significant_bits": bits, "images": self.images}
        if not self.images:
            rec["text"] = ("no 16-bit greyscale images; a 16-bit greyscale test image will be taken as %d-bit data "
                           "(%s, 0-%d → 0-255)" % (bits, scale_words(bits), 2 ** bits - 1))
            return rec
        kept = levels(self.max_value, bits)
        why = {"full": "the whole 16-bit range", "bits": self._why_detected()}.get(option, "as chosen")
        text = ("%d image(s) are 16-bit greyscale with values up to %d (%s): with `%s` they are read as %d-bit (%s) "
                "and stored as %s: 0–%d → 0–%d (%d grey levels)"
                % (self.images, self.max_value, self._sbit_words(), option, bits, why, scale_words(bits),
                   self.max_value, kept - 1, kept))
        better = self.detected_bits()
        rec.update(max_value=self.max_value, max_file=self.max_file, sbit=sorted(self.sbits) or None, levels=kept,
                   text=text, crushed=kept < CRUSHED_LEVELS and levels(self.max_value, better) > kept)
        if rec["crushed"]:
            rec["advice"] = ("%d image(s) are 16-bit with values up to %d: stored as 0–%d with `%s` (%d grey levels "
                             "of the %d of %d-bit data); choose `bits` (CLI --sixteen-bit bits) to store %s and "
                             "keep %d levels" % (self.images, self.max_value, kept - 1, option, kept, 2 ** better,
                                                 better, scale_words(better), levels(self.max_value, better)))
        return rec

    def _sbit_words(self):
        if not self.sbits:
            return "no sBIT chunk"
        return "sBIT declares %s bits" % "/".join(str(b) for b in sorted(self.sbits))

    def _why_detected(self):
        need = depth_for(self.max_value)
        if self.sbits and max(self.sbits) >= need:
            return "from the sBIT chunk"
        return "the largest value needs %d bits" % need
