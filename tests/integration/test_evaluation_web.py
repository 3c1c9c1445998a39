"""The "Evaluate predictions" form: an evaluation job scores server folders; its page shows test-many's components."""

import html.parser
import os

import numpy as np
from PIL import Image

from digits_seg.jobs.tasks import run_job

API = {"X-Requested-With": "digits-seg"}


class Tables(html.parser.HTMLParser):
    """Rows of cell texts of every table with an id: {"aggregate": [["pixel accuracy", "66.7%", ...]], ...}."""

    def __init__(self, text):
        super().__init__()
        self.tables, self.current, self.row, self.cell = {}, None, None, None
        self.nav = []
        self.in_nav = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self.current = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self.current is not None:
            self.row = []
            self.current.append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = ""
        elif tag == "nav":
            self.in_nav = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "table":
            self.current, self.row = None, None
        elif tag == "nav":
            self.in_nav = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        if self.in_nav and data.strip():
            self.nav.append(data.strip())


def write_masks(root):
    """CamVid-like names; greyscale index labels with void (11) and a colour prediction."""
    colors = [(128, 128, 128), (128, 0, 0), (192, 192, 128)] + [(i, i, 0) for i in range(3, 11)] + [(0, 0, 0)]
    pred, labels = os.path.join(root, "pred"), os.path.join(root, "labels")
    os.makedirs(pred)
    os.makedirs(labels)
    gt = np.array([[0, 0, 1, 1], [2, 2, 11, 11]], np.uint8)
    pr = np.array([[0, 1, 1, 1], [2, 0, 0, 2]], np.uint8)
    Image.fromarray(gt, "L").save(os.path.join(labels, "0016E5_07959.png"))
    lut = np.zeros((256, 3), np.uint8)
    lut[:12] = colors
    Image.fromarray(lut[pr]).save(os.path.join(pred, "0016E5_07959.png"))
    names = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
             "Bicyclist", "Unlabelled"]
    with open(os.path.join(root, "classes.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    with open(os.path.join(root, "colormap.txt"), "w") as f:
        f.writelines("%d %d %d\n" % c for c in colors)
    return pred, labels


def test_evaluate_predictions_job_and_page(client, settings):
    root = settings.data_roots[0]
    pred, labels = write_masks(root)
    body = {"pred_dir": pred, "labels_dir": labels, "classes_file": os.path.join(root, "classes.txt"),
            "colormap_file": os.path.join(root, "colormap.txt"), "ignore": "11"}
    resp = client.post("/evaluations.json", json=body, headers=API)
    assert resp.status_code == 201, resp.get_json()
    job_id = resp.get_json()["id"]
    run_job(job_id, settings.jobs_dir)  # the worker's entry point, in this process

    data = client.get("/evaluations/%s.json" % job_id).get_json()
    assert data["state"] == "done", data.get("error")
    agg = data["report"]["aggregate"]
    # void (11) pixels left out: sky tp 1, truth 2, predicted 2 -> 1/3; building tp 2, truth 2,
    # predicted 3 -> 2/3; pole tp 1, truth 2, predicted 1 -> 1/2; 4 of 6 pixels right
    assert agg["pixel_acc"] == 4 / 6
    assert abs(agg["mean_iou"] - (1 / 3 + 2 / 3 + 1 / 2) / 3) < 1e-12
    assert agg["per_class_iou"][11] is None and agg["per_class"][11]["ignored"]

    page = Tables(client.get("/evaluations/%s" % job_id).get_data(as_text=True)).tables
    assert page["aggregate"][0] == ["pixel accuracy", "66.7%", "mean accuracy", "66.7%", "mean IoU", "50.0%",
                                    "frequency-weighted IoU", "50.0%"]
    assert page["per-class"][12][1:3] == ["Unlabelled", "ignored"] and page["per-class"][1][1:4] == [
        "Sky", "33.3%", "50.0%"]
    assert len(page["confusion"]) == 13 and page["confusion"][1][1:3] == ["50%", "50%"]
    assert page["worst-images"][1][0] == "0016E5_07959.png"
    assert "Evaluate predictions" in Tables(client.get("/").get_data(as_text=True)).nav

    # bad input: a clear error naming the field, nothing queued
    Image.new("L", (4, 2)).save(os.path.join(pred, "0016E5_08010.png"))
    bad = client.post("/evaluations.json", json=body, headers=API)
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "pred"
    assert "without a label: 0016E5_08010.png" in bad.get_json()["error"]["message"]
    outside = client.post("/evaluations.json", json=dict(body, pred_dir="/etc"), headers=API)
    assert outside.status_code == 400 and outside.get_json()["error"]["field"] == "pred_dir"
    several = client.post("/evaluations.json", json=dict(body, labels_dir=root + "/nope", ignore="abc"), headers=API)
    errors = several.get_json()["error"]["errors"]  # every problem at once, named as the form names them
    assert [(e["field"], e["label"]) for e in errors] == [("labels_dir", "Label folder"), ("ignore", "Ignore classes")]
    assert errors[0]["message"].startswith("Label folder ") and "does not exist" in errors[0]["message"]
    form = client.get("/evaluations/new")
    assert form.status_code == 200 and b'id="evaluate-form"' in form.data
