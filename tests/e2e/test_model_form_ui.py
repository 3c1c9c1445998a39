"""Browser test of the model form: every error at once under its field, the URL kept, stale errors cleared,
the LR preview following the network choice, the device warning on a server without GPU workers."""

import pytest
from playwright.sync_api import expect

from digits_seg.config import load_settings
from tests.conftest import LiveServer
from tests.integration.test_models_web import make_dataset

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path):
    live = LiveServer(tmp_path, env={"DIGITS_SEG_WORKERS": "0"})  # no worker: nothing trains, the form warns
    yield live
    live.stop()


def test_model_form_shows_every_error_at_once(server, page, artifact_path):
    settings = load_settings({"jobs_dir": server.jobs_dir, "data_roots": server.data_root}, environ={})
    ds = make_dataset(settings, count=6, size=32)
    page.goto(server.url + "/models/new?dataset=" + ds)
    preview = page.locator("#lr-preview")
    expect(preview).to_have_attribute("data-base-lr", "0.0001", timeout=15000)  # fcn-alexnet's recommendation
    page.select_option("#network", "unet")
    expect(preview).to_have_attribute("data-base-lr", "0.001")
    expect(preview).to_have_attribute("data-policy", "poly")
    page.check('input[name="network_kind"][value="custom"]')
    expect(preview).to_have_attribute("data-base-lr", "0.01")  # the declared default, as a submit would use
    page.check('input[name="network_kind"][value="standard"]')

    expect(page.locator("#device-warning")).to_be_visible()
    assert "No worker is running" in page.locator("#device-warning").inner_text()

    page.fill("#epochs", "0")
    page.fill("#batch_size", "5000")
    page.fill("#base_lr", "abc")
    page.fill("#crop_size", "99999")
    page.click("#train-button")
    errors = page.locator("#model-form .field-error[data-field]")
    expect(errors).to_have_count(4)
    shown = {errors.nth(i).get_attribute("data-field"): errors.nth(i).inner_text() for i in range(4)}
    assert shown == {"epochs": "Epochs must be at least 1, got 0",
                     "batch_size": "Batch size must be at most 1024, got 5000",
                     "base_lr": "Base learning rate must be a number, got 'abc'",
                     "crop_size": "Random crop (px) must be at most 4096, got 99999"}
    # each under its own field, and the page is still the form's URL (a reload does not re-post)
    assert page.locator('[data-field-box="epochs"] .field-error').count() == 1
    assert "/models/new" in page.url
    page.screenshot(path=artifact_path("model_form_errors.png"), full_page=True)

    page.fill("#epochs", "1")  # a corrected field's stale error goes at once; the others stay
    expect(page.locator('[data-field-box="epochs"] .field-error')).to_have_count(0)
    expect(errors).to_have_count(3)
    for field in ("batch_size", "base_lr", "crop_size"):
        page.fill("#" + field, "")
    page.click("#train-button")
    page.wait_for_url("**/models/2*", timeout=15000)
    job = server.get_json(page.url.split(server.url)[1] + ".json")
    assert job["params"]["epochs"] == 1 and job["params"]["network"] == {"kind": "standard", "name": "unet"}
    assert job["params"]["base_lr"] == 0.001  # blank fields took the chosen network's recommendation
