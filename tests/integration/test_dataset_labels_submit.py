"""Check = create at submit: the web form, the JSON API and the CLI refuse what creation would refuse,
with the check's report and no job; declared ignore values reach the stored dataset and its page."""

import json
import os

import numpy as np
from PIL import Image

from digits_seg.cli import main

from ..conftest import wait_for

CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
          "Bicyclist", "Unlabelled"]


def camvid_segnet(settings, count=4):
    """CamVid in SegNet's layout: train/ + trainannot/ grey labels 0..11 (11 = Unlabelled)."""
    root = os.path.join(settings.data_roots[0], "CamVid")
    rng = np.random.default_rng(0)
    for sub in ("train", "trainannot"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for i in range(count):
        stem = "0001TP_%06d" % (6690 + 30 * i)
        Image.fromarray(rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)).save(os.path.join(root, "train", stem + ".png"))
        label = np.repeat(np.arange(12, dtype=np.uint8), 3)[None, :].repeat(24, axis=0)
        Image.fromarray(np.roll(label, i, axis=1), "L").save(os.path.join(root, "trainannot", stem + ".png"))
    with open(os.path.join(root, "camvid12.txt"), "w") as f:
        f.write("\n".join(CAMVID) + "\n")
    return root


def test_fake_pngs_refused_at_submit_everywhere(client, settings, capsys):
    root = camvid_segnet(settings)
    fake = os.path.join(root, "trainannot", "0001TP_006720.png")
    with open(fake, "w") as f:
        f.write("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\n")  # an LFS pointer, named .png
    body = {"images": root + "/train", "labels": root + "/trainannot", "name": "fake"}
    before = client.get("/index.json").get_json()
    r = client.post("/datasets.json", json=body)
    assert r.status_code == 400
    message = r.get_json()["error"]["message"]
    assert "0001TP_006720.png is not an image" in message and "BytesIO" not in message
    r = client.post("/datasets", data=body, headers={"X-Requested-With": "digits-seg"})
    assert r.status_code == 400 and b"0001TP_006720.png is not an image" in r.data and b"BytesIO" not in r.data
    code = main(["dataset", "create", "--jobs-dir", settings.jobs_dir, "--redis-url", settings.redis_url,
                 "--images", root + "/train", "--labels", root + "/trainannot", "--name", "fake"])
    err = capsys.readouterr().err
    assert code != 0 and "0001TP_006720.png is not an image" in err and "BytesIO" not in err
    assert client.get("/index.json").get_json() == before  # no job from any of the three
    assert not [d for d in os.listdir(settings.jobs_dir) if not d.startswith(".")]


def test_api_ignore_value_reaches_the_stored_labels_and_the_page(client, settings, start_worker):
    from ..unit.test_dataset_mapping import stored_labels

    root = camvid_segnet(settings, count=3)
    start_worker()
    r = client.post("/datasets.json", json={"images": root + "/train", "labels": root + "/trainannot",
                                            "classes_file": root + "/camvid12.txt", "ignore_values": [11],
                                            "val_pct": 0, "name": "camvid"})
    assert r.status_code == 201, r.get_json()
    job_id = r.get_json()["id"]
    wait_for(lambda: client.get("/datasets/%s.json" % job_id).get_json()["state"] in ("done", "error"), 90,
             message="dataset job to finish")
    data = client.get("/datasets/%s.json" % job_id).get_json()
    assert data["state"] == "done", data.get("error")
    ds = data["dataset"]
    assert ds["classes"] == CAMVID[:11] and "value 11 → ignore (255)" in ds["label_mapping"]["text"]
    stems = sorted(os.listdir(os.path.join(root, "trainannot")))
    expected = [np.asarray(Image.open(os.path.join(root, "trainannot", s))) for s in stems]
    expected = [np.where(a == 11, 255, a) for a in expected]
    got = stored_labels(os.path.join(settings.jobs_dir, job_id))
    assert len(got) == 3 and all(np.array_equal(g, e) for g, e in zip(got, expected))
    share = sum(int((e == 255).sum()) for e in expected) / sum(e.size for e in expected)
    assert abs(ds["ignored"]["train"]["share"] - share) < 1e-9
    html = client.get("/datasets/" + job_id).data.decode()
    assert "How labels were read" in html and 'data-class="ignore"' in html and "value 11 → ignore (255)" in html


def test_cli_unlisted_white_refused_then_declared_ignore(settings, capsys, tmp_path):
    from ..unit.test_dataset_mapping import STEMS, rgb_set, stored_labels

    root = tmp_path / "rgb"
    rgb_set(root, np.random.default_rng(3))
    base = ["dataset", "create", "--jobs-dir", settings.jobs_dir, "--redis-url", settings.redis_url,
            "--images", str(root / "images"), "--labels", str(root / "labels"), "--colormap", str(root / "class_dict.csv"),
            "--val-pct", "0"]
    assert main(base + ["--now"]) != 0
    err = capsys.readouterr().err
    assert "(255,255,255): 60 px" in err and "--ignore-color" in err
    assert main(base + ["--unknown-colors", "ignore", "--check"]) == 0
    assert "stored as ignore (255)" in capsys.readouterr().out
    assert main(base + ["--ignore-color", "255,255,255", "--now", "--json"]) == 0
    job = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    colors = [(64, 128, 64), (128, 64, 128), (128, 128, 128), (0, 0, 0)]
    for stem, got in zip(STEMS, stored_labels(job["dir"])):
        a = np.asarray(Image.open(root / "labels" / (stem + "_L.png")))
        want = np.full(a.shape[:2], 255, np.uint8)
        for k, c in enumerate(colors):
            want[(a == c).all(axis=2)] = k
        np.testing.assert_array_equal(got, want)


def test_create_reuses_the_forms_passed_check_of_the_same_fields(client, settings):
    root = camvid_segnet(settings, count=3)
    body = {"images": root + "/train", "labels": root + "/trainannot", "name": "camvid", "ignore_values": "11"}
    check = client.post("/datasets/checks.json", json=body).get_json()
    wait_for(lambda: client.get(check["url"]).get_json()["state"] != "running", 30, message="the check")
    assert client.get(check["url"]).get_json()["report"]["ok"]
    with open(os.path.join(root, "trainannot", sorted(os.listdir(os.path.join(root, "trainannot")))[0]), "w") as f:
        f.write("not a png")  # changed after the check: only a fresh check can see it
    assert client.post("/datasets.json", json=dict(body, name="other", check_id=check["id"])).status_code == 400
    assert client.post("/datasets.json", json=dict(body, check_id="0" * 16)).status_code == 400
    r = client.post("/datasets.json", json=dict(body, check_id=check["id"]))  # the very fields it passed
    assert r.status_code == 201  # not decoded again at submit (the job validates every pair as it builds)
