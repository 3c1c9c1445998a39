"""Dataset pages through the Flask test client with a real embedded Redis and a real worker."""

import io
import os
import re
import zipfile

from ..conftest import wait_for

from digits_seg.datasets import synthcity
from digits_seg.datasets.names import record_name


def make_city(settings, count=6):
    root = os.path.join(settings.data_roots[0], "city")
    synthcity.generate(root, count, size=(32, 24), seed=9)
    return root


def test_check_complete_and_validation_errors(client, settings):
    root = make_city(settings)
    os.mkdir(os.path.join(os.fsencode(root), b"im\xffx"))  # not UTF-8: the browser could not send it back
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
        z.writestr("city/classes.txt", "".join("c%d\n" % k for k in range(10)))  # demo-data's names, read too
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
    assert data["dataset"]["classes"][:2] == ["c0", "c1"]
    # the extracted upload moved into the job and went once the databases held it: nothing piles up
    assert os.listdir(os.path.join(settings.jobs_dir, ".uploads")) == []
    assert not os.path.exists(os.path.join(settings.jobs_dir, job_id, "upload"))
    assert "removed the uploaded files" in client.get("/jobs/%s/log.txt" % job_id).data.decode()
    source = record_name(os.path.join(settings.jobs_dir, job_id), "train", 0)  # named inside the zip, not the gone stage
    assert source["image"] == "city/images/%s.png (in the uploaded zip)" % source["stem"]
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../evil.png", b"x")
    bad.seek(0)
    r = client.post("/datasets", data={"archive": (bad, "evil.zip")}, headers={"X-Requested-With": "digits-seg"},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and b"field-error" in r.data
    r = client.post("/datasets", data={"archive": (io.BytesIO(b"not a zip"), "mine.zip")},
                    headers={"X-Requested-With": "digits-seg"}, content_type="multipart/form-data")
    assert r.status_code == 400 and b"mine.zip is not a zip" in r.data  # the user's file name, not ours
    assert os.listdir(os.path.join(settings.jobs_dir, ".uploads")) == []


def test_background_check_reports_progress_then_the_same_report(client, settings):
    root = make_city(settings, count=40)  # ≥ the pool's minimum: the check's decoding runs in worker processes
    body = {"images": root + "/images", "labels": root + "/labels", "classes_file": root + "/classes.txt"}
    r = client.post("/datasets/checks.json", json=body)
    assert r.status_code == 202
    started = r.get_json()
    assert started["state"] == "running" and started["url"].endswith(started["id"] + ".json")
    seen = []

    def finished():
        s = client.get(started["url"]).get_json()
        seen.append(s)
        return s["state"] != "running"
    wait_for(finished, 60, interval=0.05, message="the background check to finish")
    final = seen[-1]
    assert final["state"] == "done" and final["progress"] == 1.0 and final["error"] is None
    sync = client.post("/datasets/check.json", json=body).get_json()
    assert final["report"]["summary"] == sync["summary"] and final["report"]["ok"] and sync["ok"]
    assert all(0.0 <= s["progress"] <= 1.0 for s in seen)
    # bad input is refused up front, with the field, like the form
    r = client.post("/datasets/checks.json", json=dict(body, images="/etc"))
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "images"
    assert client.get("/datasets/checks/nosuchcheck.json").status_code == 404


def test_background_check_can_be_cancelled_and_stops_when_abandoned(client, settings):
    from digits_seg.datasets.params import validate_params
    from digits_seg.web.folder_checks import FolderChecks

    root = make_city(settings, count=300)
    body = {"images": root + "/images", "labels": root + "/labels"}
    started = client.post("/datasets/checks.json", json=body).get_json()
    r = client.delete(started["url"], headers={"X-Requested-With": "digits-seg"})
    assert r.status_code == 200
    wait_for(lambda: client.get(started["url"]).get_json()["state"] != "running", 60, message="cancel")
    s = client.get(started["url"]).get_json()
    assert s["state"] == "cancelled" and s["report"] is None

    checks = FolderChecks(abandoned_s=0.0)  # nobody polls: stopped at the first pair
    check = checks.start(validate_params(body, settings), settings)
    check.thread.join(60)
    assert check.state == "cancelled" and check.report is None


def test_create_refuses_unpaired_folders_before_queuing_a_job(client, settings):
    root = make_city(settings, count=4)
    lonely = sorted(os.listdir(os.path.join(root, "labels")))[0]
    os.unlink(os.path.join(root, "labels", lonely))
    body = {"images": root + "/images", "labels": root + "/labels", "name": "unpaired"}
    before = client.get("/index.json").get_json()
    r = client.post("/datasets.json", json=body)
    assert r.status_code == 400
    message = r.get_json()["error"]["message"]
    assert "have no label" in message and "skip bad pairs" in message
    assert client.get("/index.json").get_json() == before  # no job was created
    r = client.post("/datasets", data=body, headers={"X-Requested-With": "digits-seg"})
    assert r.status_code == 400 and b"have no label" in r.data
    errors = re.findall(r'class="field-error"[^>]*>(.*?)</p>', r.get_data(as_text=True), re.S)
    assert errors and not any("`" in e for e in errors) and any("<code>" in e for e in errors)  # names as code
    r = client.post("/datasets.json", json=dict(body, skip_bad="on"))  # the user chose to leave it out
    assert r.status_code == 201


def test_clone_of_a_dataset_made_before_the_16_bit_option_keeps_its_scale(client, settings):
    from digits_seg.jobs.store import JobStore

    root = make_city(settings, count=2)
    old = JobStore(settings.jobs_dir).create("dataset", "old", {"images": root + "/images", "labels": root + "/labels",
                                                                "val_pct": 10.0, "name": "old"})
    form = client.get("/datasets/new?clone=" + old.id).get_data(as_text=True)
    assert '<option value="full" selected>' in form
    assert '<option value="bits" selected>' in client.get("/datasets/new").get_data(as_text=True)
