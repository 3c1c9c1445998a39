"""Browser test: start a training job from the form, watch the loss chart grow without a reload, abort it."""

import pytest
from playwright.sync_api import expect

from digits_seg.config import load_settings
from tests.integration.test_models_web import make_dataset

pytestmark = pytest.mark.e2e

LOAD_MARKER = "window.__pageLoad = Math.random().toString(36).slice(2);"


def loss_points(page):
    return page.evaluate("""() => {
        const c = document.getElementById('chart-loss');
        return c && c.data && c.data[0] ? c.data[0].x.length : 0; }""")


def test_train_from_form_live_chart_and_abort(live_server, page, artifact_path):
    settings = load_settings({"jobs_dir": live_server.jobs_dir, "data_roots": live_server.data_root}, environ={})
    ds = make_dataset(settings, count=40, size=64)
    page.add_init_script(LOAD_MARKER)
    page.on("dialog", lambda d: d.accept())
    page.goto(live_server.url + "/models/new?dataset=" + ds)
    expect(page.locator("#lr-preview .main-svg").first).to_be_visible(timeout=15000)
    page.check('input[name="network_kind"][value="standard"]')
    page.select_option("#network", "tiny-fcn")
    page.fill("#epochs", "300")
    page.fill("#batch_size", "4")
    page.select_option("#device", "cpu")
    page.click("#train-button")
    page.wait_for_url("**/models/*", timeout=15000)
    expect(page.locator(".job-status [data-role=badge]")).to_have_text("running", timeout=60000)
    load = page.evaluate("window.__pageLoad")

    page.wait_for_function("""() => { const c = document.getElementById('chart-loss');
        return c && c.data && c.data[0] && c.data[0].x.length > 0; }""", timeout=60000)
    first = loss_points(page)
    # a chart without points says what it waits for; one with points shows no such note
    notes = page.evaluate("""() => ['chart-loss', 'chart-acc'].map(id => {
        const c = document.getElementById(id);
        return [c.data[0].x.length, ((c.layout.annotations || [])[0] || {}).text || ''];
    })""")
    assert notes[0][0] > 0 and notes[0][1] == ""
    assert (notes[1][0] > 0) == (notes[1][1] == ""), notes
    assert notes[1][0] > 0 or "no validation yet" in notes[1][1]
    page.wait_for_function("""(n) => { const c = document.getElementById('chart-loss');
        return c.data[0].x.length > n; }""", arg=first, timeout=60000)
    assert page.evaluate("window.__pageLoad") == load, "the page reloaded instead of updating the chart"
    assert loss_points(page) > first
    page.screenshot(path=artifact_path("training_live.png"), full_page=True)

    page.click('.job-status [data-action="abort"]')
    expect(page.locator(".job-status [data-role=badge]")).to_have_text("aborted", timeout=60000)
    job_id = page.url.rstrip("/").split("/")[-1]
    twin = live_server.get_json("/models/%s.json" % job_id)
    assert twin["state"] == "aborted" and twin["model"]["curves"]["train"]["loss"]
