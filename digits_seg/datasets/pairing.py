"""Pair image and label files by stem (recursive), detect a label-name suffix, split train/val."""

import collections
import dataclasses
import os
import random

from ..errors import ValidationError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
COMMON_SUFFIXES = ("_L", "_mask", "_label", "_labels", "_gt", "_seg", "-mask", "-label", "_labelIds", "_gtFine_labelIds")


@dataclasses.dataclass
class Pairing:
    """Result of pairing two folders; `pairs` are (stem, image_path, label_path), sorted by stem."""

    pairs: list
    images_without_label: list  # paths
    labels_without_image: list  # paths
    duplicate_stems: dict  # stem -> [paths] (in one folder)
    suffix: str  # the label suffix applied ("" for none)
    suggested_suffix: str = None  # a suffix that would pair more files (when not applied)

    def hint(self):
        """A suggestion when unpaired names differ from their partners only by a suffix."""
        if self.suggested_suffix:
            return "label names end with %r: set the label suffix to %r" % (self.suggested_suffix, self.suggested_suffix)
        return None


def scan_folder(folder, what="folder"):
    """Map stem → list of image files found under `folder` (recursively, hidden entries skipped)."""
    if not os.path.isdir(folder):
        raise ValidationError("%s %s does not exist or is not a folder" % (what, folder))
    found = collections.defaultdict(list)
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTENSIONS:
                found[stem].append(os.path.join(root, name))
    return found


def detect_suffix(image_stems, label_stems):
    """Return the suffix s such that label stems are image stems + s for most labels, or "" if none."""
    image_stems = set(image_stems)
    unmatched = [s for s in label_stems if s not in image_stems]
    if not unmatched:
        return ""
    counts = collections.Counter()
    for stem in unmatched:
        for cut in range(1, min(len(stem), 24)):
            base, suffix = stem[:-cut], stem[-cut:]
            if base in image_stems and suffix[0] in "_-. ":
                counts[suffix] += 1
                break
        else:
            for suffix in COMMON_SUFFIXES:
                if stem.endswith(suffix) and stem[:-len(suffix)] in image_stems:
                    counts[suffix] += 1
                    break
    if not counts:
        return ""
    suffix, n = counts.most_common(1)[0]
    return suffix if n >= max(1, len(unmatched) // 2) else ""


def pair_folders(images_dir, labels_dir, suffix="auto"):
    """Pair files of `images_dir` and `labels_dir` by stem; `suffix` is a label-name suffix, "" or "auto"."""
    images = scan_folder(images_dir, "image folder")
    labels = scan_folder(labels_dir, "label folder")
    suggested = detect_suffix(images.keys(), labels.keys())
    applied = suggested if suffix == "auto" else (suffix or "")
    if applied:
        stripped = {}
        for stem, paths in labels.items():
            key = stem[:-len(applied)] if stem.endswith(applied) else stem
            stripped.setdefault(key, []).extend(paths)
        labels = stripped
    duplicates = {}
    for stem, paths in list(images.items()) + list(labels.items()):
        if len(paths) > 1:
            duplicates.setdefault(stem, []).extend(paths)
    pairs, no_label, no_image = [], [], []
    for stem in sorted(images):
        if stem in duplicates:
            continue
        if stem in labels:
            pairs.append((stem, images[stem][0], labels[stem][0]))
        else:
            no_label.append(images[stem][0])
    for stem in sorted(labels):
        if stem not in images and stem not in duplicates:
            no_image.append(labels[stem][0])
    return Pairing(pairs=pairs, images_without_label=no_label, labels_without_image=no_image,
                   duplicate_stems=duplicates, suffix=applied,
                   suggested_suffix=suggested if suggested and suggested != applied else None)


def split_pairs(pairs, val_pct, seed):
    """Split pairs into (train, val) taking `val_pct` percent at random (reproducible for `seed`)."""
    if not val_pct:
        return list(pairs), []
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_val = int(round(len(pairs) * float(val_pct) / 100.0))
    if n_val == 0 and len(pairs) >= 2:
        n_val = 1
    n_val = min(n_val, len(pairs) - 1) if len(pairs) > 1 else 0
    val_idx = set(order[:n_val])
    train = [p for i, p in enumerate(pairs) if i not in val_idx]
    val = [p for i, p in enumerate(pairs) if i in val_idx]
    return train, val
