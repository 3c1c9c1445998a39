"""Dataset statistics per split, accumulated while streaming and stored in `stats.h5` (h5py).

Layout: one group per split with attribute `count`, datasets `image_sizes` (rows w, h, n),
`class_pixels` and `class_images` (one entry per class), `mean_pixel` (per channel),
`mean_image` (H×W×C float32, same-size splits only) and attribute `ignore_pixels`.
"""

import collections

import numpy as np

from .palette import IGNORE_LABEL


class SplitStats:
    """Running statistics of one split (memory: one mean-image buffer at most)."""

    def __init__(self, mean_image=True):
        self.count = 0
        self.sizes = collections.Counter()
        self.class_pixels = np.zeros(256, dtype=np.int64)
        self.class_images = np.zeros(256, dtype=np.int64)
        self.channel_sum = None
        self.pixels = 0
        self._mean_sum = None
        self._mean_count = 0
        self._mean_ok = mean_image

    def add(self, result):
        """Add one processed pair (a `process_pair` result with Datum bytes)."""
        self.count += 1
        w, h = result["out_size"]
        self.sizes[(w, h)] += 1
        counts = result["label_counts"]
        self.class_pixels += counts
        self.class_images += counts > 0
        cs = result["channel_sum"]
        if cs is not None:  # a sample of images (see create.MEAN_IMAGE_SAMPLES)
            if self.channel_sum is None:
                self.channel_sum = np.zeros(len(cs))
            self.channel_sum += cs
            self.pixels += w * h
        if len(self.sizes) > 1:  # a mean image needs one size for the whole split
            self._mean_ok, self._mean_sum = False, None
        arr = result.get("image_array")
        if self._mean_ok and arr is not None:
            a = arr.reshape(arr.shape[0], arr.shape[1], -1)
            if self._mean_sum is None:
                self._mean_sum = np.zeros(a.shape, dtype=np.uint32)  # ≤ MEAN_IMAGE_SAMPLES × 255: no overflow
            if self._mean_sum.shape != a.shape:
                self._mean_ok, self._mean_sum = False, None
            else:
                np.add(self._mean_sum, a, out=self._mean_sum)
                self._mean_count += 1

    @property
    def mean_pixel(self):
        if not self.pixels:
            return []
        return (self.channel_sum / self.pixels).tolist()

    @property
    def mean_image(self):
        if self._mean_sum is None or not self._mean_count:
            return None
        return (self._mean_sum / self._mean_count).astype(np.float32)

    def summary(self, num_classes):
        sizes = sorted(self.sizes.items(), key=lambda kv: -kv[1])
        return {"count": self.count, "size": list(sizes[0][0]) if len(sizes) == 1 else None,
                "sizes": [[w, h, n] for (w, h), n in sizes[:20]],
                "class_pixels": self.class_pixels[:num_classes].tolist(),
                "class_images": self.class_images[:num_classes].tolist(),
                "ignore_pixels": int(self.class_pixels[IGNORE_LABEL]), "mean_pixel": self.mean_pixel}


def write_stats(path, splits, num_classes):
    """Write `stats.h5` for {split: SplitStats}."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["num_classes"] = num_classes
        for name, st in splits.items():
            g = f.create_group(name)
            g.attrs["count"] = st.count
            g.attrs["ignore_pixels"] = int(st.class_pixels[IGNORE_LABEL])
            rows = [[w, h, n] for (w, h), n in sorted(st.sizes.items())]
            g.create_dataset("image_sizes", data=np.asarray(rows, dtype=np.int64).reshape(-1, 3))
            g.create_dataset("class_pixels", data=st.class_pixels[:num_classes])
            g.create_dataset("class_images", data=st.class_images[:num_classes])
            g.create_dataset("mean_pixel", data=np.asarray(st.mean_pixel, dtype=np.float64))
            mean = st.mean_image
            if mean is not None:
                g.create_dataset("mean_image", data=mean)  # gzip here cost more than the whole LMDB commit


def read_stats(path):
    """Read `stats.h5` into {split: {count, image_sizes, class_pixels, class_images, mean_pixel, mean_image?}}."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        for name in f:
            g = f[name]
            out[name] = {"count": int(g.attrs["count"]), "ignore_pixels": int(g.attrs.get("ignore_pixels", 0)),
                         **{k: g[k][()] for k in ("image_sizes", "class_pixels", "class_images", "mean_pixel",
                                                    "mean_image") if k in g}}
    return out


RARE_CLASS_SHARE = 0.01
"""Classes below this share of labelled pixels get a class-weighting warning."""


def class_warnings(names, class_pixels, split="train"):
    """Human warnings about class balance: absent classes and classes under 1% of labelled pixels."""
    pixels = np.asarray(class_pixels, dtype=np.float64)[:len(names)]
    total = pixels.sum()
    out = []
    if total <= 0:
        return ["the %s split has no labelled pixels" % split]
    for i, name in enumerate(names):
        share = pixels[i] / total
        if pixels[i] == 0:
            out.append("class `%s` (%d) never occurs in the %s split: the model cannot learn it" % (name, i, split))
        elif share < RARE_CLASS_SHARE:
            out.append("class `%s` is %.1f%% of %s pixels: consider class weighting" % (name, 100 * share, split))
    return out
