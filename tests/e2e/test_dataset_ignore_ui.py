"""Browser: the check offers the label values it found as ignore; ticking one declares it, and the
re-check shows the class list without it, the ignored share and the mapping in words."""

import os

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

CAMVID = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
          "Bicyclist", "Unlabelled"]


def test_ignore_offered_ticked_and_rechecked(live_server, page, artifact_path):
    root = os.path.join(live_server.data_root, "CamVid")
    for sub in ("train", "trainannot"):
        os.makedirs(os.path.join(root, sub))
    rng = np.random.default_rng(1)
    for i in range(3):
        stem = "Seq05VD_f%05d" % (30 * i)
        Image.fromarray(rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)).save(os.path.join(root, "train", stem + ".png"))
        label = np.repeat(np.arange(12, dtype=np.uint8), 3)[None, :].repeat(24, axis=0)
        Image.fromarray(label, "L").save(os.path.join(root, "trainannot", stem + ".png"))
    with open(os.path.join(root, "camvid12.txt"), "w") as f:
        f.write("\n".join(CAMVID) + "\n")

    page.goto(live_server.url + "/datasets/new")
    page.fill("#images", root + "/train")
    page.fill("#labels", root + "/trainannot")
    page.fill("#classes_file", root + "/camvid12.txt")
    page.click("#check-folders")
    page.wait_for_selector("[data-role=ignore-choices]", timeout=30000)
    assert "Unlabelled" in page.text_content("[data-role=warnings]")  # offered as ignore by its name
    assert "named like void" in page.text_content("[data-role=ignore-choices] label:has(input[value='11'])")
    page.check("[data-role=ignore-choices] input[value='11']")
    assert page.input_value("#ignore_values") == "11"

    page.click("#check-folders")
    page.wait_for_function("document.querySelector('[data-role=mapping]') && "
                           "document.querySelector('[data-role=mapping]').textContent.includes('ignore (255)')",
                           timeout=30000)
    assert page.locator("#check-report table tbody tr:not([data-class=ignore])").count() == 11
    assert "value 11 → ignore (255)" in page.text_content("[data-role=mapping]")
    assert "(8.3%)" in page.text_content("#check-report tr[data-class=ignore]")  # 3 of 36 columns
    page.screenshot(path=artifact_path("datasets_ignore_check.png"), full_page=True)


def test_rgb_labels_with_only_a_colour_file_given(live_server, page, artifact_path):
    """As a new user fills the form for an RGB label set with a `class_dict.csv`: leaving the colour-map
    select as it is, the file is used (it used to be ignored, the colours looked up in the VOC palette);
    the unlisted white is offered as ignore, and ticking it makes the check pass."""
    root = os.path.join(live_server.data_root, "steel")
    for sub in ("images", "labels"):
        os.makedirs(os.path.join(root, sub))
    colors = np.array([[1, 175, 76], [227, 0, 144], [255, 255, 255]], np.uint8)  # slag, scraper, unlisted white
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(os.path.join(root, "images", "img_%d.png" % i))
        idx = (np.arange(30)[None, :] // 10 + i).repeat(20, axis=0) % 3
        Image.fromarray(colors[idx]).save(os.path.join(root, "labels", "img_%d_L.png" % i))
    with open(os.path.join(root, "class_dict.csv"), "w") as f:
        f.write("name,r,g,b\nscraper,227,0,144\nslag,1,175,76\n")

    page.goto(live_server.url + "/datasets/new")
    page.fill("#images", root + "/images")
    page.fill("#labels", root + "/labels")
    page.fill("#colormap_file", root + "/class_dict.csv")
    page.click("#check-folders")
    page.wait_for_selector("[data-role=ignore-choices]", timeout=30000)
    mapping = page.text_content("[data-role=mapping]")
    assert "PASCAL VOC" not in mapping and "class_dict.csv" in mapping, mapping
    page.check("[data-role=ignore-choices] input[value='255,255,255']")
    page.click("#check-folders")
    page.wait_for_function("document.querySelector('[data-role=mapping]') && "
                           "document.querySelector('[data-role=mapping]').textContent.includes('ignore (255)')",
                           timeout=30000)
    assert "no problems" in page.text_content("#check-report").lower() or \
        page.locator("#check-report .field-error, #check-report [data-role=errors] li").count() == 0
    names = page.locator("#check-report table tbody tr:not([data-class=ignore]) td:nth-child(3)").all_text_contents()
    assert names == ["scraper", "slag"]
    page.screenshot(path=artifact_path("datasets_colour_file_check.png"), full_page=True)
