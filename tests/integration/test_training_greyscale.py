"""Single-channel datasets (like the membrane sample) train and predict with the standard networks."""

import os

import numpy as np
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets.create import create_dataset
from digits_seg.datasets.info import DatasetInfo
from digits_seg.datasets.params import validate_params as dataset_params
from digits_seg.inference.predictor import Predictor
from digits_seg.training.params import validate_params
from digits_seg.training.trainer import train


def write_binary_masks(root, count=12, size=40):
    """Greyscale cells (bright discs) with 0/255 masks, as EM membrane data is stored."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "labels"))
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        cy, cx, r = rng.integers(10, size - 10), rng.integers(10, size - 10), rng.integers(5, 9)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)
        img = (40 + 150 * mask + rng.normal(0, 10, mask.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(img, "L").save(os.path.join(root, "images", "c%02d.png" % i))
        Image.fromarray((mask * 255).astype(np.uint8), "L").save(os.path.join(root, "labels", "c%02d.png" % i))


def test_greyscale_binary_dataset_trains_and_predicts(tmp_path):
    root = str(tmp_path)
    write_binary_masks(os.path.join(root, "src"))
    settings = load_settings({"jobs_dir": root, "data_roots": root}, environ={})
    dparams = dataset_params({"images": os.path.join(root, "src", "images"),
                              "labels": os.path.join(root, "src", "labels"),
                              "channels": "keep", "val_pct": 25}, settings)
    ds_dir = os.path.join(root, "dataset")
    os.makedirs(ds_dir)
    create_dataset(ds_dir, dparams, settings=settings, log=lambda t: None)
    info = DatasetInfo.load(ds_dir)
    assert info.channels == 1 and info.num_classes == 2  # 0/255 masks became classes 0/1

    params = validate_params({"network": "tiny-fcn", "network_kind": "standard", "epochs": 1, "batch_size": 3,
                              "base_lr": 0.01, "loader_workers": 0, "dataset_id": "x"}, settings, info)
    model_dir = os.path.join(root, "model")
    os.makedirs(model_dir)
    train(model_dir, params, dataset_dir=ds_dir, on_progress=lambda *a: None, should_stop=lambda: False,
          log=lambda t: None)
    predictor = Predictor.from_model_dir(model_dir)
    image = np.array(Image.open(os.path.join(root, "src", "images", "c00.png")))
    mask = predictor.predict(image[:, :, None])
    assert mask.shape == image.shape and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
