"""Dataset statistics per split, accumulated while streaming and stored in `stats.h5` (h5py).

Layout: one group per split with attribute `count`, datasets `image_sizes` (rows w, h, n),
`class_pixels` and `class_images` (one entry per class), `mean_pixel` (per channel),
`mean_image` (H×W×C float32, same-size splits only) and attributes `ignore_pixels` and
`mean_samples` (the images, evenly spread over the split, that the means average).
"""

import collections

import numpy as np

from .palette import IGNORE_LABEL


class SampleSums:
    """Pixel sums of the sampled images of each split, for the mean pixel and the mean image.

    Built up where the pixels are decoded (one per pool worker, see `pool.OrderedMap`), then
    merged in the parent: only these sums cross a pipe, never the sampled arrays. The image
    sum is exact integer arithmetic, so any split of the work gives identical results.
    """

    def __init__(self):
        self.splits = {}  # split -> {"count", "pixels", "folded": per-channel float64, "image": uint32 sum or None}

    def add(self, split, array):
        a = array.reshape(array.shape[0], array.shape[1], -1)
        s = self.splits.get(split)
        if s is None:
            s = self.splits[split] = {"count": 0, "pixels": 0, "folded": np.zeros(a.shape[2]),
                                      "image": np.zeros(a.shape, dtype=np.uint32)}
        if len(s["folded"]) != a.shape[2]:
            return  # mixed channel counts: creation refuses the dataset anyway
        if s["image"] is not None and s["image"].shape == a.shape:
            np.add(s["image"], a, out=s["image"])  # ≤ 16 M samples × 255 fits uint32
        else:
            _fold(s)
            s["folded"] += _channel_sum(a)
        s["count"] += 1
        s["pixels"] += a.shape[0] * a.shape[1]

    def merge(self, other):
        """Add another worker's sums into this one."""
        for split, o in other.splits.items():
            s = self.splits.get(split)
            if s is None:
                self.splits[split] = o
                continue
            if len(s["folded"]) != len(o["folded"]):
                continue
            if s["image"] is not None and o["image"] is not None and s["image"].shape == o["image"].shape:
                s["image"] = s["image"] + o["image"]
            else:
                _fold(s)
                _fold(o)
            s["folded"] = s["folded"] + o["folded"]
            s["count"] += o["count"]
            s["pixels"] += o["pixels"]
        return self

    def __getstate__(self):
        """Pickle image sums of up to 257 samples as uint16: half the bytes through the pipe."""
        out = {}
        for split, s in self.splits.items():
            s = dict(s)
            if s["image"] is not None and s["count"] * 255 <= np.iinfo(np.uint16).max:
                s["image"] = s["image"].astype(np.uint16)
            out[split] = s
        return {"splits": out}

    def __setstate__(self, state):
        self.splits = state["splits"]
        for s in self.splits.values():
            if s["image"] is not None:
                s["image"] = s["image"].astype(np.uint32, copy=False)

    @classmethod
    def merged(cls, parts):
        out = cls()
        for p in parts:
            if p is not None:
                out.merge(p)
        return out

    def mean_pixel(self, split):
        s = self.splits.get(split)
        if not s or not s["pixels"]:
            return []
        total = s["folded"] + (s["image"].sum(axis=(0, 1), dtype=np.uint64) if s["image"] is not None else 0)
        return (total / s["pixels"]).tolist()

    def mean_image(self, split):
        """H×W×C float32 mean of the samples, or None when their sizes differ."""
        s = self.splits.get(split)
        if not s or s["image"] is None or not s["count"]:
            return None
        return (s["image"] / s["count"]).astype(np.float32)


def _fold(s):
    """Give up the image sum of a split (sizes differ): keep only its per-channel sums."""
    if s["image"] is not None:
        s["folded"] += s["image"].sum(axis=(0, 1), dtype=np.uint64)
        s["image"] = None


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
        self.samples = None  # (SampleSums, split name) once creation has merged the workers' sums

    def add(self, result):
        """Add one processed pair (a `process_pair` result with Datum bytes)."""
        self.count += 1
        w, h = result["out_size"]
        self.sizes[(w, h)] += 1
        counts = result["label_counts"]
        self.class_pixels += counts
        self.class_images += counts > 0

    @property
    def mean_pixel(self):
        return self.samples[0].mean_pixel(self.samples[1]) if self.samples else []

    @property
    def mean_samples(self):
        """How many images the mean pixel and mean image average (a sample, see create.MEAN_SAMPLES)."""
        s = self.samples[0].splits.get(self.samples[1]) if self.samples else None
        return s["count"] if s else 0

    @property
    def mean_image(self):
        """The mean of the sampled images; None unless the whole split has one size."""
        if not self.samples or not self.want_mean_image or len(self.sizes) != 1:
            return None
        return self.samples[0].mean_image(self.samples[1])

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
