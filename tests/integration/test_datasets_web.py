"""Dataset pages through the Flask test client with a real embedded Redis and a real worker."""

import io
import os
import zipfile

from ..conftest import wait_for

from digits_seg.datasets import synthcity


def make_city(settings, count=6):
    root = os.path.join(settings.data_roots[0], "city")
    synthcity.generate(root, count, size=(32, 24), seed=9)
    return root


def test_check_complete_and_validation_errors(client, settings):
    root = make_city(settings)
    r = client.get("/datasets/complete.json?dirs=1&prefix=" + os.path.join(root, "im"))
    assert r.get_json()["entries"] == [os.path.join(root, "images") + os.sep]
    r = client.post("/datasets/check.json", json={"images": root + "/images", "labels": root + "/labels",
                                                  "classes_file": root + "/classes.txt"})
    report = r.get_json()
    assert r.status_code == 200 and report["ok"] and report["summary"]["num_classes"] == 10
    r = client.post("/datasets.json", json={"images": "/etc", "labels": root + "/labels"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "images"
    r = client.post("/datasets", data={"images": "/etc", "labels": root + "/labels"},
                    headers={"X-Requested-With": "digits-seg"})
    assert r.status_code == 400 and b"outside the allowed data folders" in r.data and b'name="images"' in r.data
    assert client.get("/datasets/new").status_code == 200


def test_create_show_and_explore(client, settings, start_worker):
    root = make_city(settings)
    start_worker()
    r = client.post("/datasets.json", json={"images": root + "/images", "labels": root + "/labels",
                                            "classes_file": root + "/classes.txt", "val_pct": "34", "name": "city"})
    assert r.status_code == 201
    job_id = r.get_json()["id"]
    wait_for(lambda: client.get("/datasets/%s.json" % job_id).get_json()["state"] in ("done", "error"), 90,
             message="dataset job to finish")
    data = client.get("/datasets/%s.json" % job_id).get_json()
    assert data["state"] == "done", data.get("error")
    assert data["dataset"]["splits"]["train"]["count"] == 4 and data["dataset"]["splits"]["val"]["count"] == 2
    assert [c["name"] for c in data["dataset"]["class_table"]["train"]][:3] == ["sky", "building", "road"]
    items = data["explorer"]["items"]
    assert len(items) == 4
    png = client.get(items[0]["overlay"])
    assert png.status_code == 200 and png.data[:8] == b"\x89PNG\r\n\x1a\n"
    html = client.get("/datasets/%s?split=val" % job_id).data.decode()
    assert "Explorer" in html and 'data-split-tab="val"' in html and "traffic sign" in html
    assert client.get("/datasets/%s/records/train/99/image.png" % job_id).status_code == 404
    clone = client.get("/datasets/new?clone=" + job_id).data.decode()
    assert 'value="34' in clone


def test_zip_upload_is_extracted_safely(client, settings, start_worker):
    root = make_city(settings, count=4)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for sub in ("images", "labels"):
            for name in sorted(os.listdir(os.path.join(root, sub))):
                z.write(os.path.join(root, sub, name), "city/%s/%s" % (sub, name))
    buf.seek(0)
    r = client.post("/datasets", data={"archive": (buf, "city.zip"), "val_pct": "25", "name": "zipped"},
                    headers={"X-Requested-With": "digits-seg"}, content_type="multipart/form-data")
    assert r.status_code == 302, r.data[:500]
    job_id = r.headers["Location"].rstrip("/").split("/")[-1]
    start_worker()
    wait_for(lambda: client.get("/datasets/%s.json" % job_id).get_json()["state"] in ("done", "error"), 90,
             message="zip dataset to finish")
    data = client.get("/datasets/%s.json" % job_id).get_json()
    assert data["state"] == "done" and data["dataset"]["splits"]["train"]["count"] == 3
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../evil.png", b"x")
    bad.seek(0)
    r = client.post("/datasets", data={"archive": (bad, "evil.zip")}, headers={"X-Requested-With": "digits-seg"},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and b"field-error" in r.data
