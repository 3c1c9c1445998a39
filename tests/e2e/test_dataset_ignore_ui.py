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
