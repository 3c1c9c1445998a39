"""Batches from a dataset's LMDB split: worker processes decode and augment, the main process trains.

Images travel as uint8 N×C×H×W tensors in pinned memory (4× less to copy than float) and
are converted and mean-subtracted on the device. The sampler yields `(epoch, index)` keys so
each sample's augmentation is seeded by (seed, epoch, index): the same run gives the same
crops whatever the number of workers, and a resumed run continues the same sequence.
"""

import numpy as np

from ..errors import ValidationError


class EpochSampler:
    """Yields `(epoch, index)` for one epoch, shuffled by (seed, epoch) when `shuffle`; call `set_epoch` first.

    With `world_size` > 1 it yields only rank `rank`'s share of the epoch's order, as
    torch's DistributedSampler does (every rank shuffles identically, then takes every
    world_size-th key); `pad` repeats keys so all ranks get as many (see distributed.shard).
    """

    def __init__(self, n, shuffle, seed, rank=0, world_size=1, pad=True):
        self.n = n
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.rank, self.world_size, self.pad = rank, world_size, pad

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def __len__(self):
        if self.world_size == 1:
            return self.n
        if self.pad:
            return -(-self.n // self.world_size)
        return len(range(self.rank, self.n, self.world_size))

    def __iter__(self):
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.world_size > 1:
            from .distributed import shard

            order = shard(order, self.rank, self.world_size, self.pad)
        return iter([(self.epoch, int(i)) for i in order])


class AugmentedSplit:
    """A map-style dataset over `SegmentationLMDB` returning (uint8 C×H×W tensor, uint8 H×W tensor, index)."""

    def __init__(self, base, transform, seed):
        self.base = base
        self.transform = transform
        self.seed = seed

    def __len__(self):
        return len(self.base)

    def __getitem__(self, key):
        import torch

        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, label = self.base[index]
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        label = np.array(label, dtype=np.uint8)  # a writable copy: LMDB-backed arrays are read-only
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            image, label = self.transform(image, label, rng)
        return (
            torch.from_numpy(np.array(image.transpose(2, 0, 1), order="C")),
            torch.from_numpy(np.ascontiguousarray(label)),
            index,
        )


def open_split(dataset_dir, split):
    """The `SegmentationLMDB` of `<dataset_dir>/<split>_db`, with a clear error when it is missing."""
    import os

    from ..datasets.reader import SegmentationLMDB

    split_dir = os.path.join(dataset_dir, "%s_db" % split)
    if not os.path.isdir(split_dir):
        raise ValidationError(
            "The dataset has no %s split (%s is missing); recreate the dataset with a %s split" % (split, split_dir, split),
            field="dataset",
        )
    return SegmentationLMDB(split_dir)


def make_loader(base, *, batch_size, shuffle, transform, seed, workers, pin_memory, prefetch=4, rank=0,
                world_size=1, pad=True):
    """Return (DataLoader, EpochSampler) over `base` (a `SegmentationLMDB` or any (image, label) dataset).

    `rank`/`world_size` give this process its share of the data (DistributedDataParallel).
    """
    import torch

    sampler = EpochSampler(len(base), shuffle, seed, rank, world_size, pad)
    kwargs = {}
    if workers > 0:
        kwargs = {"persistent_workers": True, "prefetch_factor": prefetch}
    loader = torch.utils.data.DataLoader(
        AugmentedSplit(base, transform, seed),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        drop_last=False,
        **kwargs,
    )
    return loader, sampler


def class_weights(mode, counts):
    """Loss weights per class from pixel counts: 'none' → None, 'inverse' frequency or 'median' frequency.

    Both are normalised so the average weight over training pixels is 1 (the loss keeps its
    scale, so the learning rate need not change); classes with no pixels get weight 1.
    """
    if mode == "none":
        return None
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    present = counts > 0
    if not present.any():
        raise ValidationError("Class weighting needs class pixel counts, but the dataset has none", field="class_weighting")
    freq = counts / counts.sum()
    w = np.ones_like(freq)
    if mode == "inverse":
        w[present] = 1.0 / freq[present]
    elif mode == "median":
        w[present] = np.median(freq[present]) / freq[present]
    else:
        raise ValidationError("Unknown class weighting %r. Available: none, inverse, median" % mode, field="class_weighting")
    scale = (w[present] * freq[present]).sum()
    w[present] /= scale
    return w.astype(np.float32)
