"""Check = create at submit: the web form, the JSON API and the CLI refuse what creation would refuse,
with the check's report and no job; declared ignore values reach the stored dataset and its page."""

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
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(os.path.join(root, "train", stem + ".png"))
        label = np.repeat(np.arange(12, dtype=np.uint8), 3)[None, :32].repeat(24, axis=0)
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
