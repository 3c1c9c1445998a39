"""Dataset statistics per split, accumulated while streaming and stored in `stats.h5` (h5py).

Layout: one group per split with attribute `count`, datasets `image_sizes` (rows w, h, n),
`class_pixels` and `class_images` (one entry per class), `mean_pixel` (per channel),
`mean_image` (H×W×C float32, same-size splits only) and attributes `ignore_pixels` and
`mean_samples` (the images, evenly spread over the split, that the means average).
"""

import collections

import numpy as np

from .palette import IGNORE_LABEL


class SplitSums:
    """Pixel sums of one split's sampled images: an exact uint32 image sum while every sample
    has one shape, per-channel sums (`folded`) for what no longer fits it."""

    def __init__(self, channels, shape):
        self.count = self.pixels = 0
        self.folded = np.zeros(channels)
        self.image = np.zeros(shape, dtype=np.uint32)  # ≤ 16 M samples × 255 fits uint32

    def add(self, a):
        if len(self.folded) != a.shape[2]:
            return  # mixed channel counts: creation refuses the dataset anyway
        if self.image is not None and self.image.shape == a.shape:
            np.add(self.image, a, out=self.image)
        else:
            self.fold()
            self.folded += _channel_sum(a)
        self.count += 1
        self.pixels += a.shape[0] * a.shape[1]

    def merge(self, other):
        if len(self.folded) != len(other.folded):
            return
        if self.image is not None and other.image is not None and self.image.shape == other.image.shape:
            self.image = self.image + other.image
        else:
            self.fold()
            other.fold()
        self.folded = self.folded + other.folded
        self.count += other.count
        self.pixels += other.pixels

    def fold(self):
        """Give up the image sum (sample sizes differ): keep only per-channel sums."""
        if self.image is not None:
            self.folded += self.image.sum(axis=(0, 1), dtype=np.uint64)
            self.image = None

    def mean_pixel(self):
        if not self.pixels:
            return []
        total = self.folded + (self.image.sum(axis=(0, 1), dtype=np.uint64) if self.image is not None else 0)
        return (total / self.pixels).tolist()

    def mean_image(self):
        """H×W×C float32 mean of the samples, or None when their sizes differ."""
        if self.image is None or not self.count:
            return None
        return (self.image / self.count).astype(np.float32)

    def __getstate__(self):
        """Pickle image sums of up to 257 samples as uint16: half the bytes through the pipe."""
        state = dict(self.__dict__)
        if self.image is not None and self.count * 255 <= np.iinfo(np.uint16).max:
            state["image"] = self.image.astype(np.uint16)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.image is not None:
            self.image = self.image.astype(np.uint32, copy=False)


class SampleSums:
    """`SplitSums` per split, built up where the pixels are decoded (one per pool worker, see
    `pool.OrderedMap`), then merged in the parent: only these sums cross a pipe, never the
    sampled arrays. Integer sums, so any split of the work gives identical results."""

    def __init__(self):
        self.splits = {}  # split name -> SplitSums

    def add(self, split, array):
        a = array.reshape(array.shape[0], array.shape[1], -1)
        if split not in self.splits:
            self.splits[split] = SplitSums(a.shape[2], a.shape)
        self.splits[split].add(a)

    def merge(self, other):
        """Add another worker's sums into this one."""
        for split, o in other.splits.items():
            if split in self.splits:
                self.splits[split].merge(o)
            else:
                self.splits[split] = o
        return self

    @classmethod
    def merged(cls, parts):
        out = cls()
        for p in parts:
            out.merge(p)
        return out


def _channel_sum(a):
    """Per-channel pixel sums; rows first in uint32 (10x faster than one float reduction)."""
    return a.sum(axis=0, dtype=np.uint32).sum(axis=0, dtype=np.uint64).astype(np.float64)


class SplitStats:
    """Running statistics of one split; the sampled pixel sums are attached at the end (`samples`)."""

    def __init__(self, mean_image=True):
        self.count = 0
        self.sizes = collections.Counter()
        self.class_pixels = np.zeros(256, dtype=np.int64)
        self.class_images = np.zeros(256, dtype=np.int64)
        self.want_mean_image = mean_image
        self.samples = None  # this split's merged SplitSums, attached once the workers are done

    def add(self, result):
        """Add one processed pair (a `process_pair` result)."""
        self.count += 1
        w, h = result["out_size"]
        self.sizes[(w, h)] += 1
        counts = result["label_counts"]
        self.class_pixels += counts
        self.class_images += counts > 0

    @property
    def mean_pixel(self):
        return self.samples.mean_pixel() if self.samples else []

    @property
    def mean_samples(self):
        """How many images the mean pixel and mean image average (a sample, see create.MEAN_SAMPLES)."""
        return self.samples.count if self.samples else 0

    @property
    def mean_image(self):
        """The mean of the sampled images; None unless the whole split has one size."""
        if not self.samples or not self.want_mean_image or len(self.sizes) != 1:
            return None
        return self.samples.mean_image()

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
            g.attrs["mean_samples"] = st.mean_samples  # images averaged into mean_pixel / mean_image
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
                         "mean_samples": int(g.attrs.get("mean_samples", 0)),
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
