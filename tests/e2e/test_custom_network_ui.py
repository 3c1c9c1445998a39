"""Browser test: a Caffe solver file fills the model form's solver fields, and Validate lists every problem
of a custom network at once."""

import os
import re
import time

import numpy as np
import pytest
from playwright.sync_api import expect

from digits_seg.config import load_settings
from digits_seg.datasets.reader import SegmentationLMDB
from tests.integration.test_models_web import make_dataset
from tests.unit.test_caffe_files import BROKEN

pytestmark = pytest.mark.e2e


def test_solver_file_fills_the_form_and_validate_lists_all_problems(live_server, page, shared_data, artifact_path):
    settings = load_settings({"jobs_dir": live_server.jobs_dir, "data_roots": live_server.data_root}, environ={})
    ds = make_dataset(settings, count=10, size=32)                      # 8 training images
    page.goto(live_server.url + "/models/new?dataset=" + ds)
    page.click("#solver-file-box summary")
    page.set_input_files("#solver-file", os.path.join(shared_data, "caffe", "fcn", "voc-fcn8s_solver.prototxt"))
    expect(page.locator("#solver-text")).to_have_value(re.compile("train_net"))
    page.fill("#batch_size", "1")
    # Its base_lr 1e-14 is for FCN's unnormalised loss: without the network it was tuned with, refused.
    page.click("#solver-fill")
    expect(page.locator("#solver-error")).to_contain_text("solver file line 10: base_lr 1e-14 is a rate for an "
                                                          "unnormalised (summed) loss")
    # With FCN-8s's train file as the custom network (normalize: false), rescaled by the labelled pixels per image.
    page.check('input[name="network_kind"][value="custom"]')
    with open(os.path.join(shared_data, "caffe", "fcn", "voc-fcn8s_train.prototxt")) as fh:
        page.fill("#custom_network", fh.read())
    page.fill("#crop_size", "")

    def late_unless_fixed(route):  # previews asked while the fill is half done answer last, as on a busy server
        if "lr_policy=fixed" not in route.request.url:
            time.sleep(1.0)
        route.continue_()
    page.route("**/models/lr-preview.json*", late_unless_fixed)
    page.click("#solver-fill")
    expect(page.locator("#solver-mapped li").first).to_be_visible()
    page.wait_for_timeout(2500)
    # The plot is the schedule the form now holds (was a stale 'step' plot from a half-filled form).
    assert page.get_attribute("#lr-preview", "data-policy") == "fixed"
    page.unroute("**/models/lr-preview.json*")
    train = SegmentationLMDB(os.path.join(live_server.jobs_dir, ds, "train_db"))
    per_image = np.mean([(train[i][1] != 255).sum() for i in range(len(train))])
    assert float(page.input_value("#base_lr")) == pytest.approx(1e-14 * per_image, rel=1e-5)
    assert page.input_value("#momentum") == "0.99"
    assert page.input_value("#lr_policy") == "fixed"
    assert page.input_value("#epochs") == "12500"                    # 100000 iterations x batch 1 / 8 images
    mapped = page.locator("#solver-mapped li").all_inner_texts()
    assert "max_iter 100000 x iter_size 1 x batch 1 / 8 training images -> epochs 12500" in mapped

    page.fill("#custom_network", BROKEN)
    page.click("#validate-network")
    items = page.locator("#validate-problems li")
    # The first compile in the web process imports torch: allow for a slow, shared CI machine.
    expect(items.first).to_be_visible(timeout=90000)
    texts = items.all_inner_texts()
    for layer in ("'bn1'", "'relu1'", "'hook'", "'norm'"):
        assert any(layer in t for t in texts), (layer, texts)
    assert "write 'ReLU'" in texts[1]
    page.screenshot(path=artifact_path("custom_network_problems.png"), full_page=True)

    # LeNet's train file states no input size: the chosen dataset's 32x32 images size its ip1 (500 x 50x5x5 + 500).
    with open(os.path.join(shared_data, "caffe", "bvlc", "mnist_lenet_train_test.prototxt")) as fh:
        page.fill("#custom_network", fh.read())
    page.click("#validate-network")
    expect(page.locator("#validate-summary")).to_contain_text(
        "parameters at input 3×32×32 (the dataset's training images (32×32, 3 channel(s)))")
    ip1 = page.locator("#layer-table tbody tr", has_text="InnerProduct").first.locator("td").all_inner_texts()
    # grouped like the summary's total ("625,500", was "625500")
    assert ip1[:2] == ["ip1", "InnerProduct"] and ip1[3] == "{:,}".format(500 * 50 * 5 * 5 + 500)
