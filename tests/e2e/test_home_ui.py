"""Browser tests of the web shell: home tabs, a live job page, error pages, the access token.

A real `digits-seg serve` (embedded Redis, one worker) runs each test; jobs are the
built-in "check" kind, submitted with `JobService` as the CLI does.
"""

import json
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from digits_seg.config import load_settings
from digits_seg.jobs.job import JobState
from digits_seg.jobs.service import JobService
from tests.conftest import LiveServer, wait_for

pytestmark = pytest.mark.e2e

UNKNOWN_ID = "20000101-000000-abcd"

# Records every text the job page's live badge shows, tagged with the page load it belongs
# to, so a test can tell a live update from a reload.
BADGE_RECORDER = """
window.addEventListener("DOMContentLoaded", function () {
  var load = Math.random().toString(36).slice(2);
  var badge = document.querySelector(".job-status[data-job-live] [data-role=badge]");
  if (!badge) return;
  var report = function () { window.recordBadge(load, badge.textContent.trim()); };
  report();
  new MutationObserver(report).observe(badge, {childList: true, characterData: true, subtree: true});
});
"""


def _service(server):
    return JobService(load_settings({"jobs_dir": server.jobs_dir}, environ={}))


def _http(method, url, body=None, headers=None):
    """(status, parsed JSON body) for a request that may fail with 4xx."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _wait_in_browser(page, predicate, timeout=60.0, message="condition"):
    """Poll `predicate()` while letting Playwright deliver page callbacks (exposed functions)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        page.wait_for_timeout(200)
    pytest.fail("timed out after %.0f s waiting for %s" % (timeout, message))


def test_home_tabs_and_live_job_page(live_server, page, artifact_path):
    page.goto(live_server.url + "/")
    tabs = page.locator(".tabs [role=tab]")
    expect(tabs.nth(0)).to_contain_text("Datasets")
    expect(tabs.nth(1)).to_contain_text("Models")
    expect(tabs.nth(2)).to_contain_text("Pretrained")
    expect(page.locator(".tab-panel[data-panel=dataset]")).to_be_visible()

    job = _service(live_server).submit("check", "browser check", {"steps": 8, "interval_s": 0.5})
    page.reload()
    page.locator(".tabs [data-tab=check]").click()
    row = page.locator("tr[data-job-id='%s']" % job.id)
    expect(row).to_be_visible()
    expect(row).to_contain_text("browser check")
    expect(page.locator(".tab-panel[data-panel=dataset]")).to_be_hidden()

    seen = []
    page.expose_function("recordBadge", lambda load, text: seen.append((load, text)))
    page.add_init_script(BADGE_RECORDER)
    row.locator("a", has_text="browser check").click()
    page.wait_for_url("**/jobs/%s" % job.id)
    badge = page.locator("[data-job-live] [data-role=badge]")
    expect(badge).to_be_visible()
    _wait_in_browser(page, lambda: seen, message="the badge recorder")
    first_load, first_text = seen[0]
    assert first_text in ("queued", "running"), "the job finished before its page opened: %s" % seen
    _wait_in_browser(page, lambda: (first_load, "done") in seen,
                     message="the badge to turn 'done' on the page as loaded (seen: %s)" % seen)
    # The page reloads itself once the job has finished (results appear); it still says done.
    expect(page.locator("h2", has_text="Result")).to_be_visible(timeout=30_000)
    expect(badge).to_have_text("done")
    expect(page.locator("[data-action=abort]")).to_have_count(0)
    log = page.locator("[data-role=log]")
    expect(log).to_contain_text("Started check job 'browser check'")
    expect(log).to_contain_text("Done.")
    expect(page.locator(".job-error")).to_be_hidden()
    page.screenshot(path=artifact_path("job.png"), full_page=True)
    page.goto(live_server.url + "/?tab=check")
    expect(page.locator("tr[data-job-id='%s'] [data-role=badge]" % job.id)).to_have_text("done")
    page.screenshot(path=artifact_path("home.png"), full_page=True)


def test_error_pages_are_friendly(live_server, page, artifact_path):
    for path in ("/jobs/" + UNKNOWN_ID, "/jobs/not-a-job-id", "/no/such/page"):
        response = page.goto(live_server.url + path)
        assert response.status == 404
        expect(page.locator("h1")).to_have_text("Not found")
        expect(page.locator(".error-message")).to_be_visible()
        text = page.locator("main").inner_text()
        assert "Traceback" not in text and "File \"" not in text
    page.goto(live_server.url + "/jobs/" + UNKNOWN_ID)
    expect(page.locator(".error-message")).to_contain_text(UNKNOWN_ID)
    page.screenshot(path=artifact_path("error-404.png"))

    status, body = _http("GET", live_server.url + "/jobs/%s.json" % UNKNOWN_ID)
    assert status == 404
    assert set(body) == {"error"}
    assert UNKNOWN_ID in body["error"]["message"]
    status, body = _http("POST", live_server.url + "/jobs/%s/abort.json" % UNKNOWN_ID, {})
    assert status == 404 and "message" in body["error"]


def test_access_token_guards_writes(tmp_path, page, artifact_path):
    token = "correct-horse-battery"
    server = LiveServer(tmp_path, env={"DIGITS_SEG_AUTH_TOKEN": token, "DIGITS_SEG_AUTH_READS": "0"})
    try:
        service = _service(server)
        job = service.submit("check", "guarded", {"steps": 600, "interval_s": 0.2})
        wait_for(lambda: service.store.get(job.id).state == JobState.RUNNING, timeout=60, message="job running")

        abort_url = server.url + "/jobs/%s/abort.json" % job.id
        status, body = _http("POST", abort_url, {})
        assert status == 401 and "access token" in body["error"]["message"]
        status, body = _http("POST", abort_url, {}, headers={"Authorization": "Bearer wrong"})
        assert status == 401
        assert service.store.get(job.id).state == JobState.RUNNING
        # Reading needs no token.
        assert _http("GET", server.url + "/jobs/%s.json" % job.id)[0] == 200

        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(server.url + "/jobs/" + job.id)
        page.locator("[data-action=abort]").click()
        expect(page.locator(".error-message")).to_contain_text("access token")
        page.screenshot(path=artifact_path("error-401.png"))
        assert service.store.get(job.id).state == JobState.RUNNING

        expect(page.locator("h1")).to_have_text("Log in required")
        page.locator("main [data-action=login]").click()
        page.locator("input[name=token]").fill("not it")
        page.locator("form button", has_text="Log in").click()
        expect(page.locator(".field-error")).to_have_text("Wrong token.")
        page.screenshot(path=artifact_path("login.png"))
        page.locator("input[name=token]").fill(token)
        page.locator("form button", has_text="Log in").click()
        page.wait_for_url("**/jobs/%s" % job.id)
        expect(page.locator("header button", has_text="Log out")).to_be_visible()

        page.locator("[data-action=abort]").click()
        page.wait_for_url("**/jobs/%s" % job.id)
        expect(page.locator("[data-job-live] [data-role=badge]")).to_have_text("aborted", timeout=30_000)
        assert service.store.get(job.id).state == JobState.ABORTED
    finally:
        server.stop()


def test_home_rows_update_live_with_one_batched_poll(live_server, page):
    service = _service(live_server)
    jobs = [service.submit("check", "row %d" % i, {"steps": 3, "interval_s": 0.5}) for i in range(3)]
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(live_server.url + "/?tab=check")
    page.evaluate("window.sameLoad = true")
    badges = [page.locator("tr[data-job-id='%s'] [data-role=badge]" % j.id) for j in jobs]
    live = [j.id for j, b in zip(jobs, badges) if b.text_content().strip() != "done"]
    assert live, "all jobs finished before the page loaded"
    for badge in badges:
        expect(badge).to_have_text("done", timeout=60_000)
    assert page.evaluate("window.sameLoad") is True, "the home page reloaded instead of updating its rows"
    assert not [u for u in requests if "/events" in u], "the home page opened an event stream per row"
    polls = [u for u in requests if "/jobs/status.json?ids=" in u]
    assert polls and all(job_id in polls[0] for job_id in live), (live, polls)


def test_many_open_job_pages_leave_the_server_and_browser_responsive(live_server, page):
    """Live job pages must not each hold a connection: browsers allow six per host, waitress 8 threads."""
    service = _service(live_server)
    jobs = [service.submit("check", "tab %d" % i, {"steps": 600, "interval_s": 0.2}) for i in range(8)]
    tabs = []
    for job in jobs:
        tab = page.context.new_page()
        tab.goto(live_server.url + "/jobs/" + job.id, timeout=20_000)
        tabs.append(tab)
    page.goto(live_server.url + "/?tab=check", timeout=20_000)
    expect(page.locator("tr[data-job-id]")).to_have_count(len(jobs))
    assert _http("GET", live_server.url + "/index.json")[0] == 200
    # ...and the open pages still follow their job.
    service.abort(jobs[-1].id)
    expect(tabs[-1].locator("[data-job-live] [data-role=badge]")).to_have_text("aborted", timeout=30_000)
