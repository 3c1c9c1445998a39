"""Every route of `app.url_map`, enumerated: a new route cannot skip the token, CSRF or the no-writing-GET rule.

- with a token set, every state-changing method answers 401 without it, and 403 for a
  logged-in browser form without the CSRF token;
- every GET needs the token too (reads are protected by default), except the login page
  and static assets;
- no GET changes the jobs dir, including the downloads that used to convert
  (`.caffemodel`) or export (TorchScript/ONNX) into the model folder;
- a login is revocable: logout, or a new token, ends it; wrong tokens are throttled.
"""

import re
import shutil

import pytest

from digits_seg.config import load_settings
from digits_seg.web.app import create_app
from tests.reliability.conftest import disk_state, fabricate_extras

TOKEN = "s3cret-token"
PUBLIC_ENDPOINTS = ("auth.login", "static", "assets.plotly_js")
"""The only endpoints answered without the token: the login page and the assets it needs."""
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
API = {"X-Requested-With": "digits-seg"}
"""What API clients add to a form post (no CSRF token); a cross-site page cannot send it."""


@pytest.fixture(scope="module")
def jobs(tiny_trained, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("routes") / "jobs")
    shutil.copytree(tiny_trained["jobs"], path)
    ids = dict(fabricate_extras(path), model=tiny_trained["model"], dataset=tiny_trained["dataset"])
    return path, ids


def _app(jobs_dir, token=TOKEN, **extra):
    settings = load_settings(dict({"jobs_dir": jobs_dir, "auth_token": token, "redis_url": "redis://127.0.0.1:9/0",
                                   "secret_key": "k"}, **extra), environ={})
    return create_app(settings)


def _url(rule, ids):
    """A URL for `rule` with plausible arguments (a job of the blueprint's kind where there is one)."""
    kind = {"models": "model", "datasets": "dataset", "inference": "inference", "store": "pretrained"}.get(
        rule.endpoint.split(".")[0], "model")
    if rule.endpoint.startswith("inference.") and rule.endpoint in ("inference.test_one", "inference.infer_post",
                                                                     "inference.infer_json", "inference.export"):
        kind = "model"
    values = {"job_id": ids[kind], "check_id": "0" * 16, "token": "x", "kind": "mask", "name": "labels.txt",
              "fmt": "torchscript", "path": "val_previews/x.png", "relpath": "images/0.png", "split": "train",
              "index": 0, "filename": "app.css"}
    url = rule.rule
    for arg in rule.arguments:
        url = re.sub(r"<(?:[^:<>]+:)?%s>" % arg, str(values.get(arg, "x")), url)
    return url


def _rules(app):
    return [r for r in app.url_map.iter_rules()]


def test_every_state_changing_route_needs_token_and_csrf(jobs):
    jobs_dir, ids = jobs
    app = _app(jobs_dir)
    anonymous, browser = app.test_client(), app.test_client()
    assert browser.post("/login", data={"token": TOKEN}).status_code == 403  # no CSRF token: refused
    assert browser.post("/login", data={"token": TOKEN}, headers=API).status_code == 302
    checked = 0
    for rule in _rules(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in sorted(rule.methods - set(SAFE_METHODS)):
            url = _url(rule, ids)
            r = anonymous.open(url, method=method, json={})
            assert r.status_code == 401, "%s %s (%s) answered %d without the token" % (method, url, rule.endpoint,
                                                                                     r.status_code)
            r = browser.open(url, method=method, data={"x": "1"})
            assert r.status_code == 403, "%s %s (%s) accepted a form without CSRF: %d" % (method, url, rule.endpoint,
                                                                                       r.status_code)
            checked += 1
    assert checked >= 25  # the 30 write routes of the probe, less aliases sharing a view


def test_every_read_needs_the_token(jobs):
    jobs_dir, ids = jobs
    client = _app(jobs_dir).test_client()
    for rule in _rules(app := _app(jobs_dir)):
        if "GET" not in rule.methods or rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = _url(rule, ids)
        r = client.get(url, headers={"Accept": "application/json"})
        assert r.status_code == 401, "GET %s (%s) answered %d without the token" % (url, rule.endpoint, r.status_code)
    assert app is not None
    # a browser is sent to the login page, and comes back after it
    r = client.get("/models/%s" % ids["model"], headers={"Accept": "text/html"})
    assert r.status_code == 302 and "/login?next=" in r.headers["Location"]
    # DIGITS_SEG_AUTH_READS=0: reads open again, writes still closed
    open_reads = _app(jobs_dir, auth_reads="0").test_client()
    assert open_reads.get("/index.json").status_code == 200
    assert open_reads.post("/jobs/%s/abort.json" % ids["model"], json={}).status_code == 401


def test_no_get_writes(jobs):
    jobs_dir, ids = jobs
    app = _app(jobs_dir)
    client = app.test_client()
    auth = {"Authorization": "Bearer " + TOKEN}
    before = disk_state(jobs_dir)
    urls = [_url(r, ids) for r in _rules(app) if "GET" in r.methods and r.endpoint != "jobs.events"]
    model = ids["model"]
    urls += ["/models/%s/download/best.caffemodel" % model, "/models/%s/download/best.h5" % model,
             "/models/%s/export/torchscript" % model]  # ONNX takes the same code path, 3x slower
    answers = {}
    for url in dict.fromkeys(urls):  # once each: an ONNX export takes seconds
        r = client.get(url, headers=auth)
        answers[url] = r.status_code
        r.close()
    assert answers["/models/%s/download/best.caffemodel" % model] == 200
    assert answers["/models/%s/export/torchscript" % model] == 200
    assert all(code < 500 for code in answers.values()), {u: c for u, c in answers.items() if c >= 500}
    after = disk_state(jobs_dir)
    assert after == before, "GET requests changed the jobs dir: %s" % sorted(set(after.items()) ^ set(before.items()))


def test_logins_are_revocable_and_wrong_tokens_throttled(jobs):
    jobs_dir, ids = jobs
    app = _app(jobs_dir, login_attempts="5")
    c = app.test_client()
    assert c.post("/login", data={"token": TOKEN}, headers=API).status_code == 302
    assert c.get("/index.json").status_code == 200
    cookie = c.get_cookie("session").value
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/").get_data(as_text=True)).group(1)
    assert c.post("/logout", data={"csrf_token": csrf}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", cookie)
    assert replay.get("/index.json").status_code == 401  # the copied cookie died with the logout

    # a restart with a new token ends every login made with the old one
    c2 = app.test_client()
    c2.post("/login", data={"token": TOKEN}, headers=API)
    cookie = c2.get_cookie("session").value
    restarted = _app(jobs_dir, token="a-new-token").test_client()
    restarted.set_cookie("session", cookie)
    assert restarted.get("/index.json").status_code == 401

    # wrong tokens: 5 answered 401, then 429 even for the right one, until the minute is over
    attacker = _app(jobs_dir, login_attempts="5").test_client()
    codes = [attacker.get("/index.json", headers={"Authorization": "Bearer guess%d" % i}).status_code
             for i in range(8)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    r = attacker.get("/index.json", headers={"Authorization": "Bearer " + TOKEN})
    assert r.status_code == 429 and "try again" in r.get_json()["error"]["message"]
