"""Browser: store page with a dead store beside a working one, filter, Import, then Train from it."""

import json
import os
import re
import subprocess
import sys

import pytest

from digits_seg.networks.compiler import compile_net
from digits_seg.networks.standard import standard_prototxt
from digits_seg.networks.weights import save_h5
from digits_seg.store.publish import add_entry
from tests.conftest import LiveServer

pytestmark = pytest.mark.e2e

DEAD_STORE = "http://127.0.0.1:1/"


@pytest.fixture
def team_store(tmp_path):
    """A store folder with a tiny-fcn pretrained for 4 classes (weights generated here)."""
    text = standard_prototxt("tiny-fcn", 4)
    w = str(tmp_path / "w.h5")
    save_h5(compile_net(text, phase="train"), w)
    folder = str(tmp_path / "team-store")
    add_entry(folder, "tiny-synth", {"name": "Tiny FCN <b>demo</b>", "architecture": "tiny-fcn",
                                     "classes": ["a", "b", "c", "d"], "license": "CC0-1.0",
                                     "trained_on": "SynthCity", "metrics": {"val_mean_iou": 0.25}},
              {"network.prototxt": ("network", text.encode()), "weights.h5": ("weights", w)})
    return folder


@pytest.fixture
def server(tmp_path, team_store):
    srv = LiveServer(tmp_path, env={"DIGITS_SEG_STORE_URLS": "%s,%s" % (team_store, DEAD_STORE)})
    yield srv
    srv.stop()


def _dataset(server):
    """A small SynthCity dataset job made with the CLI (`--now`) in the server's jobs dir."""
    from digits_seg.datasets import synthcity

    src = os.path.join(server.data_root, "synth")
    synthcity.generate(src, 12, size=(32, 32), seed=4)
    out = subprocess.run([sys.executable, "-m", "digits_seg.cli", "dataset", "create", "--jobs-dir", server.jobs_dir,
                          "--images", os.path.join(src, "images"), "--labels", os.path.join(src, "labels"),
                          "--val-pct", "25", "--name", "synth-e2e", "--now", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])["id"]


def _has_model_form(server):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(server.url + "/models/new", timeout=10):
            return True
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise


def test_import_then_train_from_the_store_page(server, team_store, page, artifact_path):
    page.goto(server.url + "/store")
    # the page never waits for a store: it renders, then reloads itself when every store answered
    team_row = page.locator('tr[data-store-url="%s"]' % team_store)
    page.wait_for_function("""(url) => {
        const row = document.querySelector('tr[data-store-url="' + url + '"]');
        return row && row.dataset.storeStatus === 'reachable'; }""", arg=team_store, timeout=30_000)
    page.wait_for_function("""() => document.querySelector('#store-statuses').dataset.checking === 'false'""",
                           timeout=30_000)
    assert team_row.get_attribute("data-store-status") == "reachable"
    dead = page.locator('tr[data-store-url="%s"] [data-role="store-status"]' % DEAD_STORE).text_content()
    assert dead.startswith("unreachable:")
    row = page.locator('tr.store-model[data-model="tiny-synth"]')
    assert row.locator('[data-role="name"]').text_content() == "Tiny FCN <b>demo</b>"  # shown as text
    bundled = page.locator('tr.store-model[data-model="fcn-8s-voc"]')
    assert bundled.is_visible()
    # sizes in binary units, and "size unknown" (naming the file) where a store publishes none: never "0.0 MiB"
    assert bundled.locator('[data-role="size"]').text_content() == "size unknown"
    assert "fcn8s-heavy-pascal.caffemodel" in bundled.locator('td[data-label="size"]').text_content()
    unet_size = page.locator('tr.store-model[data-model="unet"] [data-role="size"]').text_content()
    assert re.fullmatch(r"\d+\.\d KiB", unet_size), unet_size
    assert re.fullmatch(r"\d+\.\d KiB", row.locator('[data-role="size"]').text_content())
    page.screenshot(path=artifact_path("store_sizes.png"), full_page=True)

    page.fill("#store-filter", "tiny synthcity")
    assert row.is_visible() and not bundled.is_visible()
    page.fill("#store-filter", "no-such-model")
    assert not row.is_visible() and page.locator("#store-no-match").is_visible()
    page.fill("#store-filter", "tiny")
    page.screenshot(path=artifact_path("store_page.png"), full_page=True)

    row.locator('[data-action="import"]').click()
    page.wait_for_url(re.compile(r".*/pretrained_models/[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$"))
    pretrained_id = page.url.rsplit("/", 1)[-1]
    page.wait_for_selector('.job-status[data-state="done"]', timeout=60_000)
    page.wait_for_selector("text=Classes (4)", timeout=30_000)  # after the reload on completion
    page.screenshot(path=artifact_path("store_pretrained.png"), full_page=True)
    assert server.get_json("/pretrained_models/%s.json" % pretrained_id)["manifest"]["num_classes"] == 4
    assert page.locator('[data-role="preprocess"]').text_content() == "RGB, no mean subtraction, scale 1"
    assert re.fullmatch(r"\d+\.\d KiB", page.locator('tr[data-file="weights.h5"] [data-role="size"]').text_content())

    train = page.locator('[data-action="train-from"]')
    if not _has_model_form(server):
        assert train.count() == 0
        pytest.skip("no models blueprint in this build: 'Train from it' needs the models.new form")
    assert train.count() == 1
    dataset_id = _dataset(server)
    train.click()
    page.wait_for_url(re.compile(r".*/models/new\?pretrained=%s" % pretrained_id))
    assert page.locator('[name="pretrained_job"]').first.input_value() == pretrained_id
    page.locator('select[name="dataset_id"], select[name="dataset"]').first.select_option(dataset_id)
    page.get_by_role("button", name=re.compile(r"^\s*Train")).first.click()
    page.wait_for_url(re.compile(r".*/models/[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$"), timeout=30_000)
    page.wait_for_selector('.job-status[data-state="running"], .job-status[data-state="done"]', timeout=60_000)
    page.screenshot(path=artifact_path("store_train_from.png"), full_page=True)
