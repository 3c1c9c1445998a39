"""Standard layouts through the JSON API with a real embedded Redis and a real worker: detect, check, create."""

import os

from .. import layout_fixtures as F
from ..conftest import wait_for


def test_detect_check_and_refuse(client, settings):
    root = os.path.join(settings.data_roots[0], "coco")
    F.make_coco(root)
    r = client.post("/datasets/detect.json", json={"layout_root": root, "categories": "person, dog"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    d = body["detection"]
    assert d["layout"] == "coco" and d["splits"]["train"]["count"] == 3 and d["splits"]["val"]["count"] == 1
    assert [c["name"] for c in d["classes"]] == ["background", "person", "dog"]
    assert body["params"]["layout_options"] == {"categories": ["person", "dog"]}
    report = client.post("/datasets/check.json", json={"layout_root": root, "layout": "coco"}).get_json()
    assert report["ok"] and report["summary"]["pairs"] == {"train": 3, "val": 1}
    assert report["summary"]["ignore_pixels"] > 0  # the crowd region, rasterised for the check
    r = client.post("/datasets/detect.json", json={"layout_root": settings.data_roots[0]})
    err = r.get_json()["error"]
    assert r.status_code == 400 and err["field"] == "layout_root" and "Looked for" in err["message"]
    r = client.post("/datasets.json", json={"layout_root": "/etc", "layout": "voc"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "layout_root"
    r = client.post("/datasets/detect.json", json={"layout_root": settings.data_roots[0] + "/nope"})
    assert r.get_json()["error"]["message"].startswith("The dataset top folder ")  # the form's words


def test_each_layout_builds_through_the_api(client, settings, start_worker):
    start_worker()
    jobs = {}
    for layout, maker in F.MAKERS.items():
        root = os.path.join(settings.data_roots[0], layout)
        maker(root)
        r = client.post("/datasets.json", json={"layout_root": root, "layout": layout, "name": layout})
        assert r.status_code == 201, r.get_json()
        jobs[layout] = (r.get_json()["id"], root)

    def finished():
        return all(client.get("/datasets/%s.json" % i).get_json()["state"] in ("done", "error") for i, _ in jobs.values())

    wait_for(finished, 120, message="the layout datasets to build")
    for layout, (job_id, root) in jobs.items():
        data = client.get("/datasets/%s.json" % job_id).get_json()
        assert data["state"] == "done", (layout, data.get("error"))
        assert data["dataset"]["splits"]["train"]["count"] == 3
        if layout == "coco":  # rasterised into an upload stage at submit, adopted by the job, removed when built
            assert data["dataset"]["classes"] == ["background", "person", "car", "dog"]
            stages = os.path.join(settings.jobs_dir, ".uploads")
            assert not (os.path.isdir(stages) and [n for n in os.listdir(stages) if n.startswith("layout-")])
            left = set(os.listdir(os.path.join(settings.jobs_dir, job_id)))
            assert "dataset.json" in left and not left & {"upload", "converted_labels"}
            form = client.get("/datasets/new?clone=" + job_id).get_data(as_text=True)  # Clone re-detects the layout
            assert 'id="layout_root" name="layout_root" value="%s"' % root in form
        else:
            F.assert_labels_match(os.path.join(settings.jobs_dir, job_id), layout, root)


def test_label_options_given_with_a_layout_are_refused_not_dropped(client, settings):
    """`ignore_values` with the CamVid layout used to vanish silently: the dataset was built without it."""
    root = os.path.join(settings.data_roots[0], "camvid")
    F.MAKERS["camvid-segnet"](root)
    before = sorted(os.listdir(settings.jobs_dir)) if os.path.isdir(settings.jobs_dir) else []
    for extra, field in (({"ignore_values": "3"}, "ignore_values"), ({"label_map": "1:0 2:1"}, "label_map"),
                         ({"images": root + "/train"}, "images"), ({"unknown_colors": "ignore"}, "unknown_colors")):
        r = client.post("/datasets.json", json=dict({"layout_root": root, "layout": "camvid-segnet"}, **extra))
        err = r.get_json()["error"]
        assert r.status_code == 400 and err["field"] == field, err
        assert "cannot be combined with a standard layout" in err["message"] and "value 11 → ignore" in err["message"]
    # the form's untouched defaults ask for nothing
    r = client.post("/datasets/check.json", json={"layout_root": root, "layout": "camvid-segnet", "label_suffix": "auto",
                                                  "binary": "auto", "colormap_source": "labels", "color_tolerance": "0",
                                                  "ignore_values": "", "unknown_colors": "refuse"})
    assert r.status_code == 200 and r.get_json()["ok"], r.get_json()
    after = sorted(os.listdir(settings.jobs_dir)) if os.path.isdir(settings.jobs_dir) else []
    assert after == before
