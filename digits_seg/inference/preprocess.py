"""What a model expects as input: read the model folder's preprocessing and apply it to images.

Inference must feed the network exactly what training fed it. The trainer records that in
`preprocess.json` (see docs/CONTRACTS.md → training). Older or foreign folders lack it, so
we fall back, in order, to: job.json `params` (`mean_subtraction`, `crop_size`, `dataset`)
plus that dataset's `DatasetInfo` (mean pixel, channels); a pretrained folder's
`manifest.json` (`preprocess` key); and finally raw 0..255 RGB with no mean (what the
standard networks see when trained with `mean_subtraction: none`; FCN-AlexNet from DIGITS
subtracts its mean inside the net with a `Power` layer).

A "mean image" model subtracts the dataset's mean image (from its `stats.h5`) resized
bilinearly to the input, exactly as the trainer does; when the dataset or its mean image
is gone, the mean pixel is used instead (the trainer's own fallback) and `source` says so.
"""

import dataclasses
import os

import numpy as np

from ..errors import ValidationError
from ..fsutil import read_json

PREPROCESS_FILE = "preprocess.json"
"""Name of the preprocessing record inside a model job folder."""


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """Input recipe: net input = (image channels in `channel_order` - mean_pixel) * scale."""

    channels: int = 3
    channel_order: str = "RGB"
    mean_subtraction: str = "none"
    mean_pixel: tuple = None
    scale: object = 1.0  # a float, or one float per channel (ImageNet-style 1/std)
    input_size: tuple = None  # (w, h) of training crops/images; larger images are tiled
    significant_bits: int = 16  # 16-bit greyscale inputs become value ÷ 2^(n − 8), as the dataset stored them
    source: str = "default"   # where this came from, for the log and the model page
    mean_image: object = dataclasses.field(default=None, repr=False, compare=False)  # H×W×C float32 or None

    def to_dict(self):
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "mean_image"}
        d["mean_image"] = list(np.asarray(self.mean_image).shape) if self.mean_image is not None else None
        d["mean_pixel"] = list(self.mean_pixel) if self.mean_pixel is not None else None
        d["input_size"] = list(self.input_size) if self.input_size is not None else None
        d["scale"] = list(self.scale) if isinstance(self.scale, tuple) else self.scale
        return d

    def apply(self, image):
        """Return the C×H×W float32 array the network takes for a uint8 H×W[×C] image."""
        img = np.asarray(image)
        if img.dtype != np.uint8:
            raise ValidationError("image must be uint8 (0..255), got %s" % img.dtype, field="image")
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
            raise ValidationError("image must be H×W, H×W×1, H×W×3 or H×W×4, got shape %s" % (img.shape,), field="image")
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if self.channels == 1 and img.shape[2] == 3:
            # ITU-R 601 luma, as Pillow's convert("L") does, so greyscale models see what training saw.
            img = (img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
        elif self.channels == 3 and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        x = img.astype(np.float32)
        if self.channels == 3 and self.channel_order.upper() == "BGR":
            x = x[:, :, ::-1]
        if self.mean_image is not None:
            x = x - self.mean_image_for(x.shape[0], x.shape[1])
        elif self.mean_pixel is not None:
            x = x - np.asarray(self.mean_pixel, np.float32).reshape(1, 1, -1)
        if self.scale != 1.0:
            x = x * np.asarray(self.scale, np.float32).reshape(1, 1, -1)
        return np.ascontiguousarray(x.transpose(2, 0, 1))


    def mean_image_for(self, height, width):
        """Return the mean image resized (bilinear, as the trainer does with torch) to H×W×C."""
        import torch

        m = np.asarray(self.mean_image, np.float32)
        if m.ndim == 2:
            m = m[:, :, None]
        if m.shape[:2] == (height, width):
            return m
        t = torch.from_numpy(np.ascontiguousarray(m.transpose(2, 0, 1)))[None]
        t = torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
        return t[0].numpy().transpose(1, 2, 0)


def _size(value):
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    return None


def _from_record(rec, source):
    mode = str(rec.get("mean_subtraction") or ("pixel" if rec.get("mean_pixel") else "none")).lower()
    mean = rec.get("mean_pixel")
    if mode == "none":
        mean = None
    channels = int(rec.get("channels") or (len(mean) if mean else 3))
    if channels not in (1, 3):
        raise ValidationError("%s: channels must be 1 or 3, got %r" % (source, channels), field="channels")
    if mean is not None and len(mean) not in (1, channels):
        raise ValidationError("%s: mean_pixel has %d values but the model takes %d channels"
                              % (source, len(mean), channels), field="mean_pixel")
    return Preprocess(
        channels=channels,
        channel_order=str(rec.get("channel_order") or "RGB").upper(),
        mean_subtraction=mode,
        mean_pixel=tuple(float(v) for v in mean) if mean is not None else None,
        scale=_scale(rec.get("scale", 1.0), channels, source),
        input_size=_size(rec.get("input_size")),
        significant_bits=_bits(rec.get("significant_bits"), source),
        source=source,
    )


def _bits(value, source):
    """`significant_bits` of a record: 8..16 (absent: 16, the ÷ 256 every model before the field used)."""
    if value is None:
        return 16
    if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 16:
        raise ValidationError("%s: significant_bits must be a whole number from 8 to 16, got %r" % (source, value),
                              field="significant_bits")
    return value


def _scale(value, channels, source):
    """`scale` as a float, or a tuple of one float per channel (torchvision's 1 / (255 * std))."""
    if isinstance(value, (list, tuple)):
        if len(value) not in (1, channels) or not all(isinstance(v, (int, float)) and v for v in value):
            raise ValidationError("%s: scale must be a number or %d non-zero numbers (one per channel), got %r"
                                  % (source, channels, value), field="scale")
        values = tuple(float(v) for v in value)
        return values[0] if len(values) == 1 else values
    return float(value or 1.0)


def _dataset_dir(model_dir, params):
    dataset = params.get("dataset") or params.get("dataset_id")
    if not dataset:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(model_dir)), str(dataset))
    return path if os.path.isdir(path) else None


def _from_job_params(model_dir, params):
    rec = {"mean_subtraction": params.get("mean_subtraction", "none")}
    crop = params.get("crop_size")
    if crop:
        rec["input_size"] = crop
    ds_dir = _dataset_dir(model_dir, params)
    if ds_dir is not None:
        try:
            from ..datasets.info import DatasetInfo
        except ImportError:  # datasets package not installed in this checkout
            DatasetInfo = None
        if DatasetInfo is not None:
            info = DatasetInfo.load(ds_dir)
            rec["channels"] = int(getattr(info, "channels", 3) or 3)
            rec["significant_bits"] = int(getattr(info, "significant_bits", 16) or 16)
            if rec["mean_subtraction"] != "none":
                mean = getattr(info, "mean_pixel", None)
                rec["mean_pixel"] = [float(v) for v in np.asarray(mean).ravel()] if mean is not None else None
            if "input_size" not in rec:
                size = ((getattr(info, "splits", None) or {}).get("train") or {}).get("size")
                rec["input_size"] = list(size) if size else None
    if rec["mean_subtraction"] != "none" and not rec.get("mean_pixel"):
        raise ValidationError(
            "model %s was trained with mean subtraction %r but its dataset (%s) is gone and the folder has no %s; "
            "re-create the dataset or add %s with the mean pixel"
            % (model_dir, rec["mean_subtraction"], params.get("dataset"), PREPROCESS_FILE, PREPROCESS_FILE),
            field="model")
    return _from_record(rec, "job.json params")


def _with_mean_image(pre, model_dir):
    """Attach the dataset's mean image to a 'mean image' recipe (or note the mean-pixel fallback)."""
    if pre.mean_subtraction != "image":
        return pre
    job_path = os.path.join(model_dir, "job.json")
    params = (read_json(job_path).get("params") or {}) if os.path.isfile(job_path) else {}
    ds_dir = _dataset_dir(model_dir, params)
    mean = None
    if ds_dir is not None:
        try:
            from ..datasets.info import DatasetInfo

            mean = (DatasetInfo.load(ds_dir).stats().get("train") or {}).get("mean_image")
        except (ImportError, OSError, KeyError, ValueError):
            mean = None
    if mean is None:
        return dataclasses.replace(pre, source=pre.source + " (mean image unavailable: mean pixel used)")
    return dataclasses.replace(pre, mean_image=np.asarray(mean, np.float32))


def load_preprocess(model_dir):
    """Return the `Preprocess` a model folder was trained with (see the module docstring for the order)."""
    return _with_mean_image(_load_recipe(model_dir), model_dir)


def _load_recipe(model_dir):
    path = os.path.join(model_dir, PREPROCESS_FILE)
    if os.path.isfile(path):
        return _from_record(read_json(path), path)
    job_path = os.path.join(model_dir, "job.json")
    if os.path.isfile(job_path):
        job = read_json(job_path)
        params = job.get("params") or {}
        if job.get("kind") == "model" or "mean_subtraction" in params:
            return _from_job_params(model_dir, params)
    manifest = os.path.join(model_dir, "manifest.json")
    if os.path.isfile(manifest):
        rec = read_json(manifest).get("preprocess")
        if isinstance(rec, dict):
            return _from_record(rec, manifest)
    return Preprocess()
