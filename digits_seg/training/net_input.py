"""The input shape the trainer builds a network at for a dataset and crop, with words saying so.

The layer table of the model form, `network show --dataset` and the submit check all use it, so the
shapes and parameter counts they show are the ones training will have (an InnerProduct after
convolutions is sized by it).
"""


def training_input(info, crop_size=None):
    """Return ((C, H, W), words) the trainer builds at: the crop, else the dataset's training-image size;
    (None, why) when the dataset does not fix it (callers then use the file's size or say they assumed one)."""
    try:
        crop = int(crop_size) if crop_size not in (None, "") else None
    except (TypeError, ValueError):
        crop = None
    if info is None:
        return None, "the dataset is not finished yet, and the file does not state its input size"
    channels = int(info.channels or 3)
    if crop:
        return (channels, crop, crop), "the crop size %d with the dataset's %d channel(s)" % (crop, channels)
    size = (info.splits.get("train") or {}).get("size")
    if not size:
        return None, "the dataset's images differ in size and no crop size is set"
    return (channels, int(size[1]), int(size[0])), "the dataset's training images (%d×%d, %d channel(s))" % (
        int(size[0]), int(size[1]), channels)
