"""`DatasetInfo`: what training, inference and the web need to know about a dataset folder."""

import os

import numpy as np

from .. import fsutil
from ..errors import NotFoundError
from .palette import IGNORE_LABEL, default_class_names, voc_palette
from .stats import read_stats


class DatasetInfo:
    """Classes, colours, split counts and statistics of a finished dataset (ours or DIGITS-made)."""

    def __init__(self, dataset_dir, data):
        self.dataset_dir = dataset_dir
        self._data = data
        self.classes = list(data["classes"])
        self.colormap = [list(c) for c in data["colormap"]]
        self.num_classes = len(self.classes)
        self.ignore_label = int(data.get("ignore_label", IGNORE_LABEL))
        self.splits = {s: {"count": v["count"], "size": v.get("size")} for s, v in data["splits"].items()}
        self.variable_size = bool(data.get("variable_size"))
        self.channels = int(data.get("channels", 3))
        self.mean_pixel = list(data.get("mean_pixel") or [])
        # 16-bit greyscale images were stored as value ÷ 2^(n − 8); older datasets without the record: ÷ 256
        self.significant_bits = int((data.get("sixteen_bit") or {}).get("significant_bits") or 16)
        self.resize = data.get("resize")  # [w, h] images were resized to at creation, or None
        self.resize_mode = data.get("resize_mode")
        self.warnings = list(data.get("warnings", []))
        self._stats = None

    @classmethod
    def load(cls, dataset_dir):
        """Read `dataset.json` (ours) or inspect a DIGITS-made folder; NotFoundError if neither."""
        path = os.path.join(dataset_dir, "dataset.json")
        if os.path.exists(path):
            return cls(dataset_dir, fsutil.read_json(path))
        if os.path.isdir(os.path.join(dataset_dir, "train_db", "features")):
            return cls(dataset_dir, _digits_folder(dataset_dir))
        raise NotFoundError("%s is not a finished dataset (no dataset.json and no train_db/features); "
                            "if its job is still running wait for it, else re-create it" % dataset_dir)

    def split_dir(self, split):
        return os.path.join(self.dataset_dir, split + "_db")

    def stats(self):
        """All of stats.h5 ({} when the folder has none, e.g. DIGITS-made)."""
        if self._stats is None:
            p = os.path.join(self.dataset_dir, "stats.h5")
            self._stats = read_stats(p) if os.path.exists(p) else {}
        return self._stats

    def class_pixel_counts(self, split):
        """Pixels per class in `split` (int64 array of length num_classes; zeros when unknown)."""
        st = self.stats().get(split)
        out = np.zeros(self.num_classes, dtype=np.int64)
        if st is not None:
            cp = st["class_pixels"][:self.num_classes]
            out[:len(cp)] = cp
        return out

    def class_image_counts(self, split):
        st = self.stats().get(split)
        out = np.zeros(self.num_classes, dtype=np.int64)
        if st is not None:
            ci = st["class_images"][:self.num_classes]
            out[:len(ci)] = ci
        return out

    def class_table(self, split="train"):
        """Rows {index, name, color, pixels, share, images} for the dataset page."""
        pixels = self.class_pixel_counts(split)
        images = self.class_image_counts(split)
        total = max(1, int(pixels.sum()))
        return [{"index": i, "name": n, "color": self.colormap[i] if i < len(self.colormap) else [0, 0, 0],
                 "pixels": int(pixels[i]), "share": float(pixels[i]) / total, "images": int(images[i])}
                for i, n in enumerate(self.classes)]

    def ignore_row(self, split="train"):
        """{pixels, share}: the split's ignore (255) pixels and their share of all its pixels."""
        st = self.stats().get(split)
        ignored = int(st["ignore_pixels"]) if st is not None else int(self._data["splits"].get(split, {}).get(
            "ignore_pixels", 0))
        total = int(self.class_pixel_counts(split).sum()) + ignored
        return {"pixels": ignored, "share": ignored / total if total else 0.0}

    def to_dict(self):
        d = dict(self._data)
        d.update(classes=self.classes, colormap=self.colormap, num_classes=self.num_classes,
                 ignore_label=self.ignore_label, splits={s: dict(self._data["splits"][s]) for s in self._data["splits"]},
                 variable_size=self.variable_size, channels=self.channels, mean_pixel=self.mean_pixel,
                 class_table={s: self.class_table(s) for s in self.splits},
                 ignored={s: self.ignore_row(s) for s in self.splits})
        return d


def _digits_folder(dataset_dir):
    """Describe a DIGITS-made folder from its LMDBs and whatever class/colour files it has."""
    from .records import SplitReader

    splits, size, channels = {}, None, 3
    for split in ("train", "val"):
        d = os.path.join(dataset_dir, split + "_db")
        if not os.path.isdir(os.path.join(d, "features")):
            splits[split] = {"count": 0, "size": None}
            continue
        ds = SplitReader(d)
        if len(ds):
            img, lbl = ds[0]
            size, channels = [img.shape[1], img.shape[0]], img.shape[2]
        splits[split] = {"count": len(ds), "size": size}
    names = None
    for fname in ("labels.txt", "classes.txt"):
        p = os.path.join(dataset_dir, fname)
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                names = [ln.strip() for ln in f if ln.strip()]
            break
    names = names or default_class_names(2)
    cmap_path = os.path.join(dataset_dir, "colormap.json")
    colormap = fsutil.read_json(cmap_path) if os.path.exists(cmap_path) else voc_palette(len(names))
    return {"classes": names, "colormap": colormap[:len(names)], "splits": splits, "variable_size": False,
            "channels": channels, "mean_pixel": [], "warnings": ["DIGITS-made dataset: no statistics available"],
            "format": "digits"}
