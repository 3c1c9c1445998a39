"""Joint image + label augmentation (numpy, runs in loader workers) and mean subtraction (torch, on the device).

Every geometric change is applied to the image and its label together: DIGITS cropped only
the image, which silently misaligned the targets. Labels are resampled with nearest
neighbour (class ids must not be blended) and padded with the ignore label (255) so padding
never counts as a class.
"""

import numpy as np
from PIL import Image

IGNORE_LABEL = 255
"""Label value that the loss and the metrics skip."""


def random_scale(image, label, lo, hi, rng):
    """Resize both by one random factor in [lo, hi]: bilinear for the image, nearest for the label."""
    f = float(rng.uniform(lo, hi))
    if abs(f - 1.0) < 1e-3:
        return image, label
    h, w = label.shape
    nw, nh = max(1, int(round(w * f))), max(1, int(round(h * f)))
    img = Image.fromarray(image if image.shape[2] != 1 else image[:, :, 0])
    img = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    if img.ndim == 2:
        img = img[:, :, None]
    lab = np.asarray(Image.fromarray(label).resize((nw, nh), Image.NEAREST))
    return img, lab


def random_crop(image, label, size, rng, ignore_label=IGNORE_LABEL):
    """Crop both to size×size at one random offset; pad first (image 0, label `ignore_label`) when smaller."""
    ch, cw = (size, size) if np.isscalar(size) else size
    h, w = label.shape
    if h < ch or w < cw:
        ph, pw = max(0, ch - h), max(0, cw - w)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="constant", constant_values=0)
        label = np.pad(label, ((0, ph), (0, pw)), mode="constant", constant_values=ignore_label)
        h, w = label.shape
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]


def hflip(image, label, rng):
    """Mirror both left-right with probability 1/2."""
    if rng.random() < 0.5:
        return image[:, ::-1], label[:, ::-1]
    return image, label


class JointTransform:
    """The training-time augmentation chain: scale, crop, flip (each optional), in that order."""

    def __init__(self, crop_size=None, flip=False, scale_range=None, ignore_label=IGNORE_LABEL):
        self.crop_size = crop_size
        self.flip = flip
        self.scale_range = scale_range
        self.ignore_label = ignore_label

    def __call__(self, image, label, rng):
        if image.ndim == 2:
            image = image[:, :, None]
        if self.scale_range:
            image, label = random_scale(image, label, self.scale_range[0], self.scale_range[1], rng)
        if self.crop_size:
            image, label = random_crop(image, label, self.crop_size, rng, self.ignore_label)
        if self.flip:
            image, label = hflip(image, label, rng)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)


def mean_tensor(mode, dataset_info, channels, device):
    """The mean to subtract as a float tensor broadcastable to N×C×H×W, or None for mode 'none'.

    'pixel' uses the dataset's per-channel mean; 'image' its mean image (resized to the batch
    at subtraction time), falling back to the pixel mean when the dataset has no mean image.
    """
    import torch

    if mode == "none" or dataset_info is None:
        return None
    if mode == "image":
        mean_image = getattr(dataset_info, "mean_image", None)
        if mean_image is None and hasattr(dataset_info, "stats"):
            mean_image = (dataset_info.stats().get("train") or {}).get("mean_image")
        if mean_image is not None:
            m = np.asarray(mean_image, dtype=np.float32)
            if m.ndim == 2:
                m = m[:, :, None]
            return torch.from_numpy(m.transpose(2, 0, 1).copy()).unsqueeze(0).to(device)
    mp = np.asarray(getattr(dataset_info, "mean_pixel", None) or [0.0] * channels, dtype=np.float32).reshape(-1)
    if mp.size != channels:
        mp = np.resize(mp, channels)
    return torch.from_numpy(mp).view(1, channels, 1, 1).to(device)


def to_input(images_u8, mean, dtype=None, channels_last=False, bgr=False, scale=1.0):
    """uint8 N×C×H×W (already on the device) → the network input: channels in its order, minus the mean, scaled.

    The order of operations is `inference.preprocess.Preprocess.apply`'s (the mean is given in
    the network's channel order), so training and inference feed the same numbers.
    """
    import torch

    x = images_u8.float()
    if bgr:
        x = x.flip(1)
    if mean is not None:
        if mean.shape[-2:] != (1, 1) and mean.shape[-2:] != x.shape[-2:]:
            mean = torch.nn.functional.interpolate(mean, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = x - mean
    if isinstance(scale, torch.Tensor) or scale != 1.0:  # a tensor: one factor per channel
        x = x * scale
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
