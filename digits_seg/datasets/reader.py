"""A split as a `torch.utils.data.Dataset` (training); `records.SplitReader` is the torch-free core."""

from torch.utils.data import Dataset

from .records import SplitReader


class SegmentationLMDB(SplitReader, Dataset):
    """`ds[i]` → (image uint8 H×W×C, label uint8 H×W, 255 = ignore); LMDB opened lazily per process,
    read-only, without locks, so DataLoader workers each get their own handles."""
