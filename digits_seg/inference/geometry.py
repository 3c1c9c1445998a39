"""At which scale a model sees an image: the training geometry, sliding tiles, or native size.

A model trained on a dataset created with `--resize 240x180` learned objects at that scale;
run on a 480×360 photo at full size it sees everything twice as large (and, tiled at the
training size, 4× the pixels: slower and worse). DIGITS resized inputs to the network's
size. So by default (`fit="auto"`):

- dataset resized at creation → scale the input as creation did (the resize mode's scale
  factors, bilinear), predict the whole scaled image, map the mask back to the original size
  with nearest neighbour. Creation's crop/pad step is not repeated: a fully convolutional
  net predicts the whole scaled image, so every original pixel gets a class;
- dataset kept at native size → sliding tiles of the training size when the image is
  larger (mmsegmentation's slide mode), else the whole image.

`tiles` and `whole` stay available as explicit choices. Every prediction says which
geometry it used (`Fit.describe`), so pages and results files can show it.
"""

import dataclasses
import os

import numpy as np
from PIL import Image

from ..errors import ValidationError
from ..fsutil import read_json

FIT_MODES = ("auto", "dataset", "tiles", "whole")
"""`auto`: the dataset's resize if it had one, else tiles when larger than the training size;
`dataset`: always the dataset's resize; `tiles`: sliding windows at native size; `whole`: one pass at
native size."""

FIT_HELP = ("How the image is sized for the network: auto (the dataset's resize when it had one, else "
            "sliding tiles of the training size for larger images), dataset, tiles or whole (native size, "
            "one pass).")


@dataclasses.dataclass(frozen=True)
class DatasetTransform:
    """The resize a dataset applied at creation: target (w, h) and DIGITS resize mode."""

    size: tuple
    mode: str = "squash"

    def scaled_size(self, width, height):
        """Return the (w, h) an image of this size was scaled to before any crop or padding."""
        from ..datasets.transform import geometry

        return geometry(width, height, self.size[0], self.size[1], self.mode)[0]


@dataclasses.dataclass(frozen=True)
class Fit:
    """The geometry used for one image."""

    mode: str              # "dataset" | "tiles" | "whole"
    original: tuple        # (w, h) of the input
    scaled: tuple = None   # (w, h) the network saw ("dataset" only)
    tile: tuple = None     # (h, w) of sliding windows ("tiles" only)
    resize_mode: str = None

    def describe(self):
        """One sentence for pages, logs and results files."""
        w, h = self.original
        if self.mode == "dataset":
            if tuple(self.scaled) == (w, h):
                return "%d×%d, already the dataset's scale (%s)" % (w, h, self.resize_mode)
            return ("scaled to %d×%d as the dataset was (%s), mask mapped back to %d×%d (nearest)"
                    % (self.scaled[0], self.scaled[1], self.resize_mode, w, h))
        if self.mode == "tiles":
            return "%d×%d in sliding tiles of %d×%d (native size)" % (w, h, self.tile[1], self.tile[0])
        return "%d×%d in one pass (native size)" % (w, h)

    def to_dict(self):
        return {"mode": self.mode, "original": list(self.original),
                "scaled": list(self.scaled) if self.scaled else None,
                "tile": list(self.tile) if self.tile else None, "resize_mode": self.resize_mode,
                "text": self.describe()}


def check_fit(value, field="fit"):
    """Return a valid fit mode (blank → auto) or raise a ValidationError listing the choices."""
    v = "auto" if value in (None, "") else str(value).strip().lower()
    if v not in FIT_MODES:
        raise ValidationError("unknown %s %r. Available: %s" % (field, value, ", ".join(FIT_MODES)), field=field)
    return v


def _transform_from(rec):
    size = rec.get("resize") if isinstance(rec, dict) else None
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        return None
    return DatasetTransform(size=(int(size[0]), int(size[1])), mode=str(rec.get("resize_mode") or "squash"))


def load_transform(model_dir):
    """Return the DatasetTransform a model was trained under, or None (native size / unknown).

    Read from `preprocess.json` (`resize`, `resize_mode`: written by training and carried by
    published models), else from the dataset the job names (its `dataset.json`).
    """
    if not model_dir:
        return None
    pre = os.path.join(model_dir, "preprocess.json")
    if os.path.isfile(pre):
        rec = read_json(pre)
        if isinstance(rec, dict) and "resize" in rec:
            return _transform_from(rec)
    job = os.path.join(model_dir, "job.json")
    if os.path.isfile(job):
        params = read_json(job).get("params") or {}
        dataset = params.get("dataset") or params.get("dataset_id")
        if dataset:
            ds = os.path.join(os.path.dirname(os.path.abspath(model_dir)), str(dataset), "dataset.json")
            if os.path.isfile(ds):
                return _transform_from(read_json(ds))
    return None


def scale_image(image, size):
    """Resize a uint8 H×W[×C] image to (w, h) bilinearly, as dataset creation does (Pillow)."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return np.asarray(Image.fromarray(arr).resize(tuple(size), Image.BILINEAR))


def restore_mask(mask, size):
    """Map class ids predicted at a scaled size back to (w, h) with nearest neighbour."""
    if (mask.shape[1], mask.shape[0]) == tuple(size):
        return mask
    return np.asarray(Image.fromarray(mask, "L").resize(tuple(size), Image.NEAREST))
