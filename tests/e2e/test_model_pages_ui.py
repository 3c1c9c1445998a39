"""Browser tests of everyday use: the model page's story, comparing runs, phones, the live log pane.

One `digits-seg serve` (embedded Redis, one real worker) serves the whole module: a SynthCity
dataset built in-process, then two tiny-fcn runs trained by the worker that differ only in
their learning rate. Expected numbers are recomputed here from the job folders.
"""

import json
import os

import pytest
from playwright.sync_api import expect

from digits_seg.config import load_settings
from digits_seg.jobs.job import JobState
from digits_seg.jobs.store import JobStore
from tests.conftest import LiveServer, synthcity_dataset_job

pytestmark = pytest.mark.e2e

SCREENS = "/work/coord/screens"
"""Screenshots looked at by people reviewing this work (kept when the folder exists)."""

PHONE = {"width": 390, "height": 844}
RATES = (0.01, 0.002)


def _screen(page, name, full_page=True):
    if os.path.isdir(SCREENS):
        page.screenshot(path=os.path.join(SCREENS, name), full_page=full_page)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(server, dataset id, [model ids]) with both models trained to the end.

    The server validates and records the two training jobs; this process then runs them with
    the worker's own entry point (`run_job`, as `train --now` does), which saves starting a
    worker process and importing torch there (most of a tiny job's time on a busy machine).
    """
    from digits_seg.jobs.tasks import run_job

    tmp = tmp_path_factory.mktemp("model-pages")
    # No ONNX export of the best snapshot at the end of training: these pages never run inference.
    server = LiveServer(tmp, workers=0, env={"DIGITS_SEG_ONNX_INFERENCE": "0"})
    try:
        settings = load_settings({"jobs_dir": server.jobs_dir, "data_roots": server.data_root}, environ={})
        dataset = synthcity_dataset_job(settings, os.path.join(server.data_root, "src"), 20, (32, 32), seed=3,
                                        val_pct=20, name="streets")
        models = []
        for lr in RATES:
            status, body = server.post_json("/models.json", {
                "dataset_id": dataset, "network_kind": "standard", "network": "tiny-fcn", "epochs": 2,
                "batch_size": 4, "base_lr": lr, "device": "cpu", "name": "lr %g" % lr, "val_previews": 2})
            assert status == 201, body
            models.append(body["id"])
        # the task beats its heartbeat as often as the server expects (LiveServer: every second)
        task_env = {"DIGITS_SEG_HEARTBEAT_S": "1", "DIGITS_SEG_ONNX_INFERENCE": "0"}
        saved = {k: os.environ.get(k) for k in task_env}
        os.environ.update(task_env)
        try:
            for job_id in models:
                run_job(job_id, server.jobs_dir)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        for job_id in models:
            job = server.get_json("/jobs/%s.json" % job_id)
            assert job["state"] == "done", job
        yield server, dataset, models
    finally:
        server.stop()


def _val_points(server, job_id):
    with open(os.path.join(server.jobs_dir, job_id, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["type"] == "val"]


def test_model_page_tells_its_story(runs, page):
    server, dataset, (first, _) = runs
    page.goto(server.url + "/models/" + first)
    story = page.locator("#model-story")
    expect(story.locator('[data-role="dataset"] a')).to_have_text("streets")
    assert story.locator('[data-role="dataset"] a').get_attribute("href") == "/datasets/" + dataset
    expect(story.locator('[data-role="network"]')).to_contain_text("tiny-fcn")
    prototxt = story.locator('[data-role="network"] a', has_text="prototxt").get_attribute("href")
    assert "network.prototxt" in prototxt
    layers = story.locator('[data-action="layers"]').get_attribute("href")
    # the first layer table imports torch in the web process: slow on a busy machine
    table = page.request.get(server.url + layers + ".json", timeout=90000).json()
    with open(os.path.join(server.jobs_dir, first, "labels.txt")) as f:
        classes = len([line for line in f if line.strip()])
    by_name = {r["name"]: r for r in table["layers"]}
    assert table["input_shape"] == [3, 32, 32] and by_name["score"]["shapes"] == [[classes, 32, 32]]
    assert table["total_params"] == sum(r["params"] for r in table["layers"]) > 0
    expect(story.locator('[data-role="solver"]')).to_contain_text("base LR 0.01")
    expect(story.locator('[data-role="solver"]')).to_contain_text("batch 4")
    expect(story.locator('[data-role="device"]')).to_contain_text("CPU worker")
    expect(story.locator('[data-role="source"]')).to_contain_text("random initialisation")
    val = _val_points(server, first)
    best = max(val, key=lambda r: r["mean_iou"])
    expect(story.locator('[data-role="best"]')).to_contain_text("%.3f at epoch %g" % (best["mean_iou"], best["epoch"]))

    # the charts count epochs; each point's iteration is kept for the hover text
    page.wait_for_function("() => { const c = document.getElementById('chart-loss'); return c && c.data; }")
    chart = page.evaluate("""() => { const c = document.getElementById('chart-acc');
        return {title: c.layout.xaxis.title.text, x: c.data[1].x, it: c.data[1].customdata, mode: c.data[1].mode}; }""")
    assert chart["title"] == "epoch"
    assert chart["x"] == [r["epoch"] for r in val] and chart["it"] == [r["iteration"] for r in val]
    assert "markers" in chart["mode"]
    page.select_option("#x-axis", "iteration")  # Caffe's unit, for DIGITS users
    page.wait_for_function("() => document.getElementById('chart-acc').layout.xaxis.title.text === 'iteration'")
    assert page.evaluate("() => document.getElementById('chart-acc').data[1].x") == [r["iteration"] for r in val]
    page.select_option("#x-axis", "epoch")

    # a validation preview opens larger, with its name
    page.locator("#preview-strip button").first.click()
    box = page.locator("#lightbox")
    expect(box).to_be_visible()
    expect(box.locator("figcaption")).to_contain_text("epoch")
    width = page.evaluate("document.querySelector('#lightbox img').getBoundingClientRect().width")
    assert width >= 300, width
    _screen(page, "model_page_lightbox.png", full_page=False)
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()
    _screen(page, "model_page.png")

    # the dataset page lists both runs
    page.goto(server.url + "/datasets/" + dataset)
    expect(page.locator("#dataset-models tbody tr")).to_have_count(2)


def test_compare_two_runs_from_the_home_page(runs, page):
    server, dataset, models = runs
    page.goto(server.url + "/?tab=model")
    button = page.locator('[data-action="compare"]')
    expect(button).to_be_disabled()
    for job_id in models:
        page.check('[data-role="compare-pick"][value="%s"]' % job_id)
    expect(button).to_be_enabled()
    button.click()
    page.wait_for_url("**/models/compare?ids=*")
    ids = page.url.split("ids=", 1)[1].split(",")
    assert sorted(ids) == sorted(models)

    # only the learning rate differs between the two runs, and only its row is marked
    differing = page.eval_on_selector_all("#compare-settings tr.differs", "rows => rows.map(r => r.dataset.setting)")
    assert differing == ["base_lr"]
    page.wait_for_function("() => { const c = document.getElementById('chart-cmp-miou'); return c && c.data; }")
    traces = page.evaluate("() => document.getElementById('chart-cmp-miou').data.map(t => t.x.length)")
    assert traces == [len(_val_points(server, i)) for i in ids]
    _screen(page, "compare.png")

    twin = server.get_json("/models/compare.json?ids=" + ",".join(ids))
    assert [r["id"] for r in twin["runs"]] == ids
    for run in twin["runs"]:
        val = _val_points(server, run["id"])
        best = max(val, key=lambda r: r["mean_iou"])
        assert run["best"]["mean_iou"] == best["mean_iou"] and run["best"]["epoch"] == best["epoch"]
        assert run["curves"]["val"]["mean_iou"] == [r["mean_iou"] for r in val]
    rows = {r["key"]: r for r in twin["settings"]}
    lr_of = {m: "%g" % lr for m, lr in zip(models, RATES)}
    assert rows["base_lr"]["values"] == [lr_of[i] for i in ids] and rows["base_lr"]["differs"]
    assert not rows["dataset"]["differs"] and rows["dataset"]["values"] == ["streets", "streets"]
    per_class = {c["name"]: c["values"] for c in twin["classes"]}
    assert per_class["sky"] == [r["best"]["per_class_iou"][0] for r in twin["runs"]]

    # too few, too many, or not a model: a clear 400
    for query, words in ((models[0], "at least 2"), (",".join([models[0]] * 1 + ["x%d" % i for i in range(6)]),
                                                      "at most 6"), ("%s,%s" % (models[0], dataset), "dataset job")):
        status, body = _get(server, "/models/compare.json?ids=" + query)
        assert status == 400 and words in body["error"]["message"].lower(), (query, body)


def _get(server, path):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(server.url + path, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_main_pages_fit_a_phone(runs, browser):
    server, dataset, models = runs
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        widths = {}
        for path in ("/", "/?tab=model", "/datasets/" + dataset, "/models/" + models[0], "/store",
                     "/models/compare?ids=" + ",".join(models)):
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            widths[path] = page.evaluate("document.documentElement.scrollWidth")
            if path.startswith("/models/2"):
                _screen(page, "phone_model_page.png")
        assert all(w <= PHONE["width"] for w in widths.values()), widths
        # no mode bar over the chart titles on a phone
        page.goto(server.url + "/models/" + models[0])
        page.wait_for_function("() => { const c = document.getElementById('chart-loss'); return c && c.data; }")
        assert page.locator("#chart-loss .modebar").count() == 0
    finally:
        context.close()


def test_log_pane_follows_until_scrolled_up_and_actions_confirm(runs, page):
    server, dataset, _ = runs
    store = JobStore(server.jobs_dir)
    # This test plays the task's part: it writes the job's log and progress, as a worker does.
    job = store.create("check", "chatty", {})
    store.set_state(job.id, JobState.RUNNING)
    counter = [0]

    def work(lines):
        for _ in range(lines):
            counter[0] += 1
            store.append_log(job.id, "line %d" % counter[0])
        store.touch_heartbeat(job.id)
        store.update(job.id, lambda j: j.progress.update(fraction=counter[0] / 1000.0, message="%d" % counter[0]))
        return "line %d" % counter[0]

    work(60)
    page.goto(server.url + "/jobs/" + job.id)
    pane = page.locator('[data-role="log"]')
    at_end = "el => el.scrollTop + el.clientHeight >= el.scrollHeight - 8"
    assert pane.evaluate("el => el.scrollHeight > el.clientHeight + 100")
    assert pane.evaluate(at_end), "the log opens at its end"

    last = work(20)
    expect(pane).to_contain_text(last + "\n")
    page.wait_for_function("() => { const p = document.querySelector('[data-role=log]');"
                           " return p.scrollTop + p.clientHeight >= p.scrollHeight - 8; }")

    pane.evaluate("el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
    last = work(20)
    expect(pane).to_contain_text(last + "\n")
    assert pane.evaluate("el => el.scrollTop") < 5, "scrolled up: the pane must stay where the user put it"

    pane.evaluate("el => { el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); }")
    last = work(20)
    expect(pane).to_contain_text(last + "\n")
    page.wait_for_function("() => { const p = document.querySelector('[data-role=log]');"
                           " return p.scrollTop + p.clientHeight >= p.scrollHeight - 8; }")

    # Abort confirms on the next page
    dialogs = []

    def answer(dialog):
        dialogs.append(dialog.message)
        dialog.accept()
    page.on("dialog", answer)
    page.click('.job-status [data-action="abort"]')
    expect(page.locator('[data-role="flash"]')).to_contain_text("Abort requested for 'chatty'")
    assert dialogs == ["Abort chatty?"]

    # deleting a dataset that models use is refused on its page, before any "are you sure?"
    dialogs.clear()
    page.goto(server.url + "/datasets/" + dataset)
    page.click('.job-status [data-action="delete"]')
    expect(page.locator('.job-status [data-role="refusal"]')).to_contain_text("is used by")
    assert dialogs == [] and page.url.endswith("/datasets/" + dataset)
    assert os.path.isdir(os.path.join(server.jobs_dir, dataset))
