"""Browser: new-dataset form (path completion, Check folders report), create, dataset page and explorer."""

import os
import shutil

import pytest

from digits_seg.datasets import synthcity

pytestmark = pytest.mark.e2e


def test_check_create_and_explore(live_server, page, artifact_path):
    root = os.path.join(live_server.data_root, "city")
    synthcity.generate(root, 8, size=(48, 32), seed=3)
    shutil.copy(os.path.join(root, "images", "scene_00000.png"), os.path.join(root, "images", "orphan.png"))

    page.goto(live_server.url + "/datasets/new")
    page.fill("#images", root + "/im")
    page.wait_for_function("document.querySelectorAll('#images-list option').length > 0", timeout=30000)
    assert page.eval_on_selector("#images-list option", "o => o.value") == root + "/images/"
    page.fill("#images", root + "/images")
    page.fill("#labels", root + "/labels")
    page.fill("#classes_file", root + "/classes.txt")
    page.fill("#val_pct", "25")

    page.click("#check-folders")
    page.wait_for_selector("[data-role=check-result]", timeout=30000)
    assert "problem" in page.text_content("[data-role=check-result]")
    errors = page.text_content("[data-role=errors]")
    assert "orphan.png" in errors and "no label" in errors
    assert page.locator("#check-report table tbody tr:not([data-class=ignore])").count() == 10  # a row per class
    assert page.is_visible("#check-report tr[data-class=ignore]")  # and the ignored (255) share
    assert not page.is_visible("#check-progress")  # the bar goes once the report is in
    page.screenshot(path=artifact_path("datasets_new_check.png"), full_page=True)

    page.click("button[data-action=create]")  # without "skip bad pairs": refused before any job exists
    page.wait_for_selector("[data-role=form-error]", timeout=30000)
    assert "orphan.png" in page.text_content("[data-role=form-error]")
    assert page.input_value("#images") == root + "/images"  # the form keeps what was typed
    page.check("#skip_bad")
    page.click("button[data-action=create]")
    page.wait_for_url("**/datasets/*", timeout=30000)
    page.wait_for_selector("#class-table", timeout=60000)  # the status panel reloads the page when done
    assert page.locator("#class-table tbody tr:not([data-class=ignore])").count() == 10
    assert "orphan.png" in page.text_content("[data-role=skipped]")  # what "skip bad pairs" left out
    assert "road" in page.text_content("#class-table")
    counts = page.locator("#dataset-summary [data-role=count]").all_text_contents()
    assert counts == ["6 pairs", "2 pairs"]
    page.locator("#explorer").scroll_into_view_if_needed()
    page.wait_for_function("[...document.querySelectorAll('.explorer-item img')].every(i => i.complete && i.naturalWidth > 0)",
                           timeout=30000)
    assert page.locator(".explorer-item").count() == 6
    names = page.locator(".explorer-item [data-role=record-name]").all_text_contents()  # file stems, not "#k"
    assert len(set(names)) == 6 and all(n.startswith("scene_") for n in names)
    title = page.get_attribute(".explorer-item", "title")  # hover: where the files are, to fix a bad label
    assert os.path.join(root, "images", names[0] + ".png") in title and os.path.join(root, "labels") in title
    page.fill("#find-record input[name=record]", names[4])  # a file name seen elsewhere: find its record
    page.click("#find-record button")
    page.wait_for_selector(".explorer-item.selected", timeout=10000)
    assert page.text_content(".explorer-item.selected [data-role=record-name]") == names[4]
    assert "skipped" in page.text_content("[data-role=log]")
    page.screenshot(path=artifact_path("datasets_show.png"), full_page=True)

    page.click("[data-split-tab=val]")
    page.wait_for_selector(".explorer-item", timeout=10000)
    assert page.locator(".explorer-item").count() == 2
    assert "active" in page.get_attribute("[data-split-tab=val]", "class")
