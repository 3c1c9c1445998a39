"""Browser test of the overlay viewer: predict a validation image, then change the view in the page.

A real `digits-seg serve` runs; the test writes a finished dataset job (SynthCity through
`create_dataset`) and a finished tiny-fcn model job trained in-process into its jobs dir.
Each interaction must change the canvas pixels, read back from the page itself.
"""


import pytest
from playwright.sync_api import expect

from digits_seg.config import load_settings
from digits_seg.jobs.store import JobStore
from tests.conftest import synthcity_dataset_job, train_tiny_model, wait_for

pytestmark = pytest.mark.e2e

# A checksum of the viewer canvas, computed in the page.
CANVAS_SUM = """() => {
  const c = document.querySelector('#viewer canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = 0;
  for (let i = 0; i < d.length; i += 4) s = (s * 31 + d[i] * 7 + d[i + 1] * 3 + d[i + 2]) % 1000000007;
  return [c.width, c.height, s];
}"""


def _make_jobs(server, tmp_path):
    store = JobStore(server.jobs_dir)
    settings = load_settings({"jobs_dir": server.jobs_dir, "data_roots": str(tmp_path)}, environ={})
    ds = synthcity_dataset_job(settings, str(tmp_path / "src"), 16, (96, 64), seed=4, val_pct=25)
    return train_tiny_model(store, ds, "tiny viewer model", seed=2)


def test_viewer_controls_change_canvas(live_server, page, artifact_path, tmp_path):
    model_id = _make_jobs(live_server, tmp_path)
    page.goto(live_server.url + "/models/%s/infer" % model_id)
    page.fill("#val_index", "0")
    page.click("#infer-submit")
    viewer = page.locator("#viewer")
    expect(viewer).to_have_attribute("data-ready", "yes", timeout=30_000)
    expect(page.locator("[data-role=timing]")).to_contain_text("val[0] ")  # which file the record came from
    assert "/images/scene_" in page.text_content("[data-role=timing]")
    w, h, start = page.evaluate(CANVAS_SUM)
    assert (w, h) == (96, 64)

    # opacity slider
    page.locator('#viewer [data-role="opacity"]').fill("100")
    expect(page.locator('#viewer [data-role="opacity-value"]')).to_have_text("100%")
    opaque = page.evaluate(CANVAS_SUM)[2]
    assert opaque != start

    # hide the first class of the legend
    rows = page.locator("#viewer .legend-table tbody tr")
    assert rows.count() >= 2
    rows.first.locator("input[type=checkbox]").uncheck()
    hidden = page.evaluate(CANVAS_SUM)[2]
    assert hidden != opaque
    rows.first.locator("input[type=checkbox]").check()
    assert page.evaluate(CANVAS_SUM)[2] == opaque

    # error map, ground truth and contours
    page.select_option('#viewer [data-role="mode"]', "error")
    expect(viewer).to_have_attribute("data-mode", "error")
    error_sum = page.evaluate(CANVAS_SUM)[2]
    assert error_sum not in (opaque, start)
    page.select_option('#viewer [data-role="mode"]', "gt")
    gt_sum = page.evaluate(CANVAS_SUM)[2]
    assert gt_sum != error_sum
    page.select_option('#viewer [data-role="mode"]', "pred")
    page.check('#viewer [data-role="contour"]')
    assert page.evaluate(CANVAS_SUM)[2] != opaque
    page.uncheck('#viewer [data-role="contour"]')

    # hover shows the class under the cursor
    canvas = page.locator("#viewer canvas")
    canvas.hover(position={"x": 5, "y": 5})
    expect(page.locator('#viewer [data-role="hover"]')).to_contain_text("predicted:")
    # ... next to the cursor, not under the (tall) image where it cannot be seen
    box, tip = canvas.bounding_box(), page.locator('#viewer [data-role="hover"]').bounding_box()
    assert abs(tip["x"] - (box["x"] + 5)) < 40 and abs(tip["y"] - (box["y"] + 5)) < 40, (box, tip)

    # flip mode alternates input → prediction → ground truth by itself
    page.check('#viewer [data-role="flip"]')
    seen = set()
    for _ in range(40):
        seen.add(viewer.get_attribute("data-mode"))
        if seen >= {"input", "pred", "gt"}:
            break
        page.wait_for_timeout(150)
    assert seen >= {"input", "pred", "gt"}
    page.uncheck('#viewer [data-role="flip"]')

    # downloads: the cut-out link follows the shown classes
    href = page.get_attribute('#viewer [data-role="cutout-link"]', "href")
    assert "keep=" in href
    page.screenshot(path=artifact_path("inference_viewer.png"), full_page=True)

    # test many on the validation split: results page sorted worst-first, then the viewer of one image
    status, body = live_server.post_json("/inference.json", {"model_id": model_id, "source": "val"})
    assert status == 201, body
    wait_for(lambda: live_server.get_json("/jobs/%s/status.json" % body["id"])["state"] in ("done", "error"),
             timeout=60, message="test-many job")
    page.goto(live_server.url + body["url"])
    expect(page.locator(".job-status [data-role=badge]").first).to_have_text("done")
    page.click("[data-role=sort-worst]")
    cells = page.locator("#results-grid .result-cell")
    expect(cells.first).to_be_visible()
    scores = [float(t.split("mIoU ")[1].rstrip("%")) for t in page.locator("#results-grid [data-role=score]").all_text_contents()]
    assert scores == sorted(scores) and len(scores) == 4
    page.screenshot(path=artifact_path("inference_results.png"), full_page=True)
    cells.first.locator("a").first.click()
    expect(page.locator("#viewer")).to_have_attribute("data-ready", "yes", timeout=20_000)
    page.select_option('#viewer [data-role="mode"]', "error")
    assert page.evaluate(CANVAS_SUM)[:2] == [96, 64]
