"""Model pages still display metrics.jsonl files written before the four FCN metrics were all recorded."""

import json
import os

from digits_seg.config import load_settings
from digits_seg.web.app import create_app

OLD = [  # an early file: no mean_acc / fw_iou / per_class_acc / confusion; a partial last line
    {"type": "train", "iteration": 10, "epoch": 0.5, "loss": 1.2, "lr": 0.01},
    {"type": "val", "iteration": 20, "epoch": 1, "loss": 0.9, "pixel_acc": 0.71, "mean_iou": 0.42,
     "per_class_iou": [0.8, None]},
]


def test_model_page_shows_an_old_metrics_file(tmp_path):
    app = create_app(load_settings({"jobs_dir": str(tmp_path / "jobs")}, environ={}))
    store = app.extensions["digits_seg"].store
    job = store.create("model", "old model", {"network": {"kind": "standard", "name": "tiny-fcn"}})
    folder = store.job_dir(job.id)
    with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in OLD) + '{"type": "val", "itera')
    with open(os.path.join(folder, "labels.txt"), "w") as f:
        f.write("road\ncar\n")
    client = app.test_client()
    data = client.get("/models/%s.json" % job.id).get_json()["model"]
    assert data["best_mean_iou"] == 0.42 and data["curves"]["val"]["fw_iou"] == [None]
    assert [(c["name"], c["iou"], c["acc"]) for c in data["per_class"]] == [("road", 0.8, None), ("car", None, None)]
    page = client.get("/models/%s" % job.id)
    assert page.status_code == 200 and b"0.800" in page.data
