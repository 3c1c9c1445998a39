"""Browser: the new-dataset form's "Import a standard layout" — detect a CamVid (SegNet) folder, see what was
found, create, and get the 11 classes with void ignored."""

import os

import pytest

from .. import layout_fixtures as F

pytestmark = pytest.mark.e2e


def test_import_camvid_layout(live_server, page, artifact_path):
    root = os.path.join(live_server.data_root, "segnet")
    F.make_camvid(root)
    page.goto(live_server.url + "/datasets/new")
    page.fill("#layout_root", os.path.join(root, "nothing-here"))
    page.click("#detect-layout")
    page.wait_for_selector("[data-role=layout-error]", timeout=30000)
    assert "nothing-here does not exist" in page.text_content("[data-role=layout-error]")

    coco = F.make_coco(os.path.join(live_server.data_root, "coco"))  # crowd regions: ignored without a value
    page.fill("#layout_root", coco)
    page.click("#detect-layout")
    page.wait_for_selector("[data-role=layout-title]", timeout=30000)
    assert page.text_content("[data-role=layout-ignore]") == ("Stored as ignore (255): crowd regions (iscrowd) that "
                                                              "no instance covers")  # was "nothing"
    assert page.text_content("#layout-result details summary") == "How label values become classes (1 rule)"

    assert page.input_value("#layout") == "coco"
    page.fill("#layout_root", root)  # another folder: auto-detected afresh (was refused as "not COCO-style")
    assert page.input_value("#layout") == "auto"
    page.click("#detect-layout")
    page.wait_for_selector("[data-role=layout-title]:has-text('CamVid')", timeout=30000)
    assert "CamVid (SegNet layout)" in page.text_content("[data-role=layout-title]")
    assert page.text_content("[data-role=layout-counts]") == "Pairs: 3 train, 2 val"
    assert page.locator("#layout-classes tbody tr").count() == 11
    assert "Unlabelled" not in page.text_content("#layout-classes")
    assert "value 11 → ignore" in page.text_content("[data-role=layout-mapping]")
    assert page.text_content("[data-role=layout-ignore]") == "Stored as ignore (255): label value 11"
    assert page.input_value("#images") == os.path.join(root, "CamVid", "train")  # filled for reference ...
    assert page.is_disabled("#images")  # ... and not submitted: the layout supplies the pairs
    assert page.input_value("#ignore_values") == "11" and page.input_value("#label_map").endswith("10:10 11:255")
    page.screenshot(path=artifact_path("datasets_layout_detected.png"), full_page=True)

    page.click("button[data-action=create]")
    page.wait_for_url("**/datasets/*", timeout=30000)
    page.wait_for_selector("#class-table", timeout=60000)
    assert page.locator("#class-table tbody tr").count() >= 11
    assert "Pedestrian" in page.text_content("#class-table")
    counts = page.locator("#dataset-summary [data-role=count]").all_text_contents()
    assert counts == ["3 pairs", "2 pairs"]
    page.screenshot(path=artifact_path("datasets_layout_created.png"), full_page=True)
