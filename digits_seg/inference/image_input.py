"""Open test images the way dataset creation opens training images: size checked first, 16-bit scaled alike.

Every way an image reaches inference (Test one by upload or server path, Test many, `digits-seg
infer`) goes through `open_image`, so two rules hold everywhere:

- size: width × height is read from the header and checked before anything is decoded (a
  20000×20000 PNG of a few KB would otherwise take GBs). The web process uses the setting
  `max_image_pixels` (its message sends bigger images to Test many); jobs and the CLI use
  `max_job_image_pixels` (default: the limit dataset creation applies to training images).
- 16-bit greyscale (`I;16`, microscopy and industrial cameras) reaches the network as dataset
  creation stored the model's training images: value ÷ 2^(n − 8) for the n significant bits its
  `preprocess.json` records (`datasets.sixteen_bit`; 16, i.e. ÷ 256, for models without the
  record), so a model sees test images as it saw its training images. A value above the n-bit
  range is refused, not clipped. Pillow's `convert("L")` clips at 255 instead, which made a
  12-bit image almost all white.
"""

import numpy as np
from PIL import Image

from ..datasets.sixteen_bit import LEGACY_BITS, scale_words
from ..datasets.transform import convert_mode
from ..errors import ValidationError

WEB = "web"
"""`where` for images decoded in the web process (Test one image)."""
JOB = "job"
"""`where` for images decoded by a worker (Test many) or the `digits-seg infer` command."""

GREY_MODES = ("L", "I;16", "I;16L", "I;16B", "I;16N", "I", "F")
"""Pillow modes read as one channel (as dataset creation's `target_mode` with channels `keep`)."""

_ADVICE = {
    WEB: ("are not tested in the web server (setting DIGITS_SEG_MAX_IMAGE_PIXELS): shrink it, or use Test many, "
          "which runs in a worker"),
    JOB: ("are not tested by Test many jobs or `digits-seg infer` (setting DIGITS_SEG_MAX_JOB_IMAGE_PIXELS): shrink "
          "or split it, or raise the setting"),
}


def size_error(name, width, height, max_pixels, where=WEB, field="image"):
    """The error for an image over the pixel limit (one wording for uploads and server paths)."""
    return ValidationError("%s is %d×%d pixels (%.1f Mpx); images above %.1f Mpx %s"
                           % (name, width, height, width * height / 1e6, max_pixels / 1e6, _ADVICE[where]),
                           field=field)


def check_size(name, width, height, max_pixels, where=WEB, field="image"):
    """Raise `size_error` when width × height is above `max_pixels` (None or 0: no limit of ours)."""
    if max_pixels and width * height > max_pixels:
        raise size_error(name, width, height, max_pixels, where, field)


def header_size(fp):
    """Return (width, height) from an image header, or None; used when Pillow's own bomb check refused it.

    Pillow's `Image.open` refuses images above twice `Image.MAX_IMAGE_PIXELS` before we can see
    their size; its format plugins read the same header without that check, so the refusal can
    name the size like every other one (instead of changing Pillow's global limit).
    """
    Image.init()
    fp.seek(0)
    prefix = fp.read(16)
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            accepted = not accept or accept(prefix)
            if not accepted or isinstance(accepted, str):  # a str is Pillow's "looks like it, but unsupported"
                continue
            fp.seek(0)
            im = factory(fp, "")
        except Exception:  # noqa: BLE001 - not this format (plugins raise assorted errors), try the next
            continue
        size = im.size
        im.close()
        return size
    return None


def range_fix(bits):
    """What to do about a test image outside the model's 16-bit range (for the refusal's message)."""
    return ("the model's training images were %d-bit, stored as %s, so larger values cannot be fed as training "
            "was: use images taken with the same bit depth, or train on a dataset created with a larger 16-bit "
            "depth (--sixteen-bit 14 or full) that holds such images" % (bits, scale_words(bits)))


def to_array(img, bits=LEGACY_BITS, name="image"):
    """Return the uint8 H×W (greyscale) or H×W×3 array of a loaded image, 16-bit scaled as training images were.

    Args:
        bits: the model's `Preprocess.significant_bits` (16-bit values become value ÷ 2^(bits − 8)).
    """
    if img.mode == "F":  # as dataset creation: Pillow would clip 0..1 floats to a black image
        a = np.asarray(img)
        raise ValidationError("%s is a 32-bit floating-point image (values %.4g to %.4g): its scale to 0-255 cannot be "
                              "known; save it as 8- or 16-bit integers, as the training images were (e.g. 0-1 times "
                              "255)" % (name, float(np.nanmin(a)) if a.size else 0, float(np.nanmax(a)) if a.size else 0))
    if img.mode in GREY_MODES:
        return np.asarray(convert_mode(img, "L", bits, name, range_fix(bits)))
    return np.asarray(img.convert("RGB"))


def decode(fp, name, max_pixels, where=WEB, field="image", bits=LEGACY_BITS):
    """Open `fp` (a path or a binary file), check its size from the header, decode it to a uint8 array.

    Raises the size error before decoding, and lets Pillow's errors (UnidentifiedImageError,
    OSError, ...) through for the caller's own wording.
    """
    try:
        with Image.open(fp) as img:
            check_size(name, img.width, img.height, max_pixels, where, field)
            img.load()
            try:
                return to_array(img, bits, name)
            except ValidationError as exc:
                raise ValidationError(exc.message, field=field) from None
    except Image.DecompressionBombError:
        if max_pixels:
            size = _size_of(fp)
            if size is not None:
                raise size_error(name, size[0], size[1], max_pixels, where, field) from None
        raise


def check_range(path, bits, field="images"):
    """Refuse a 16-bit greyscale file with values above the model's `bits` (other files pass undecoded).

    The CLI calls it for every file before writing any output, so a refusal leaves nothing half-written.
    """
    try:
        with Image.open(path) as img:
            if img.mode not in GREY_MODES or img.mode in ("L", "F"):
                return
            img.load()
            to_array(img, bits, path)
    except ValidationError as exc:
        raise ValidationError(exc.message, field=field) from None
    except Exception:  # noqa: BLE001 - unreadable: decoding it later says why, in the caller's words
        return


def check_file(path, max_pixels, where=JOB, field="images"):
    """Refuse an image file over the pixel limit from its header alone (files Pillow cannot open are left to `decode`)."""
    if not max_pixels:
        return
    try:
        with Image.open(path) as img:
            size = img.size
    except Image.DecompressionBombError:
        size = _size_of(path)
    except Exception:  # noqa: BLE001 - unreadable: decoding it later says why, in the caller's words
        return
    if size is not None:
        check_size(path, size[0], size[1], max_pixels, where, field)


def _size_of(fp):
    if isinstance(fp, (str, bytes)) or hasattr(fp, "__fspath__"):
        with open(fp, "rb") as f:
            return header_size(f)
    return header_size(fp)
