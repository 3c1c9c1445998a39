"""A dataset read in the parent stays readable in forked DataLoader workers (py-lmdb registry)."""

import numpy as np
import torch

from digits_seg.config import load_settings
from digits_seg.datasets.create import create_dataset
from digits_seg.datasets.params import validate_params
from digits_seg.datasets.reader import SegmentationLMDB
from digits_seg.datasets.synthcity import generate


def test_loader_workers_after_parent_read(tmp_path):
    generate(str(tmp_path / "sc"), 6, size=(32, 32), seed=3)
    settings = load_settings({"jobs_dir": str(tmp_path / "jobs"), "data_roots": str(tmp_path)}, environ={})
    params = validate_params({"images": str(tmp_path / "sc" / "images"), "labels": str(tmp_path / "sc" / "labels"),
                              "classes_file": str(tmp_path / "sc" / "classes.txt"), "val_pct": 0,
                              "name": "fork"}, settings)
    job_dir = tmp_path / "ds"
    job_dir.mkdir()
    create_dataset(str(job_dir), params, on_progress=lambda *a: None, should_stop=lambda: False,
                   log=lambda t: None, settings=settings)
    ds = SegmentationLMDB(str(job_dir / "train_db"))
    first_image, first_label = ds[0]  # the parent opens the environments first
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2,
                                         collate_fn=lambda batch: batch, multiprocessing_context="fork")
    seen = [item for batch in loader for item in batch]
    assert len(seen) == len(ds) == 6
    np.testing.assert_array_equal(seen[0][0], first_image)
    np.testing.assert_array_equal(seen[0][1], first_label)
