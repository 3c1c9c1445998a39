"""Web shell: JSON twins, error shape, CSRF, access token — real app, real HTTP requests via Flask."""

import re

import pytest

from digits_seg.config import load_settings
from digits_seg.jobs.store import JobStore
from digits_seg.web.app import create_app


@pytest.fixture
def plain_app(tmp_path):
    settings = load_settings({"jobs_dir": str(tmp_path / "jobs")}, environ={})
    return create_app(settings)


def csrf_from(html):
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_index_and_json_twin(plain_app):
    store = plain_app.extensions["digits_seg"].store
    job = store.create("dataset", "streets <b>", {"a": 1})
    c = plain_app.test_client()
    html = c.get("/").get_data(as_text=True)
    assert "streets &lt;b&gt;" in html and "<b>" not in html.split("streets")[1][:10]
    data = c.get("/index.json").get_json()
    assert [d["id"] for d in data["datasets"]] == [job.id]
    assert data["datasets"][0]["state"] == "queued"
    assert data["models"] == [] and data["pretrained_models"] == []


def test_job_json_and_log(plain_app):
    store = plain_app.extensions["digits_seg"].store
    job = store.create("check", "c", {"steps": 2})
    store.append_log(job.id, "hello log")
    c = plain_app.test_client()
    data = c.get("/jobs/%s.json" % job.id).get_json()
    assert data["id"] == job.id and data["params"] == {"steps": 2}
    assert "hello log" in data["log_tail"]
    assert [h["state"] for h in data["status_history"]] == ["queued"]
    r = c.get("/jobs/%s/log.txt?download=1" % job.id)
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    assert c.get("/jobs/%s/params.json" % job.id).get_json()["params"] == {"steps": 2}


def test_errors_have_one_shape(plain_app):
    c = plain_app.test_client()
    r = c.get("/jobs/20990101-000000-abcd.json")
    assert r.status_code == 404
    assert set(r.get_json()["error"]) == {"message", "field", "errors"}
    r = c.get("/jobs/../../etc/passwd.json")
    assert r.status_code == 404
    html = c.get("/jobs/20990101-000000-abcd").get_data(as_text=True)
    assert "Traceback" not in html and "no job with id" in html


def test_form_post_without_csrf_is_refused(plain_app):
    store = plain_app.extensions["digits_seg"].store
    job = store.create("dataset", "d", {})
    c = plain_app.test_client()
    r = c.post("/jobs/%s/delete" % job.id, data={})
    assert r.status_code == 403
    assert "CSRF" in r.get_data(as_text=True)
    assert store.get(job.id)  # nothing deleted
    token = csrf_from(c.get("/").get_data(as_text=True))
    r = c.post("/jobs/%s/delete" % job.id, data={"csrf_token": token})
    assert r.status_code == 302
    assert store.list() == []


def test_auth_token_required_for_writes(tmp_path):
    settings = load_settings({"jobs_dir": str(tmp_path / "jobs"), "auth_token": "s3cret", "auth_reads": "0"},
                             environ={})
    app = create_app(settings)
    store = app.extensions["digits_seg"].store
    job = store.create("dataset", "d", {})
    c = app.test_client()
    assert c.get("/index.json").status_code == 200  # reads stay open with DIGITS_SEG_AUTH_READS=0
    r = c.post("/jobs/%s/delete.json" % job.id, json={})
    assert r.status_code == 401 and "token" in r.get_json()["error"]["message"]
    r = c.post("/jobs/%s/delete.json" % job.id, json={}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = c.post("/jobs/%s/delete.json" % job.id, json={}, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200
    # browser: log in via the form, then a CSRF-protected form post works
    job2 = store.create("dataset", "d2", {})
    login_csrf = csrf_from(c.get("/login").get_data(as_text=True))
    assert c.post("/login", data={"token": "s3cret"}).status_code == 403  # the login form needs CSRF too
    assert c.post("/login", data={"token": "nope", "csrf_token": login_csrf}).status_code == 400
    assert c.post("/login", data={"token": "s3cret", "csrf_token": login_csrf}).status_code == 302
    token = csrf_from(c.get("/").get_data(as_text=True))
    assert c.post("/jobs/%s/delete" % job2.id, data={"csrf_token": token}).status_code == 302
    assert store.list() == []


def test_open_redirect_after_login_is_refused(tmp_path):
    settings = load_settings({"jobs_dir": str(tmp_path / "jobs"), "auth_token": "t"}, environ={})
    c = create_app(settings).test_client()
    r = c.post("/login?next=//evil.example/x", data={"token": "t"}, headers={"X-Requested-With": "digits-seg"})
    assert r.headers["Location"] == "/"


def test_plotly_served_from_package(plain_app):
    r = plain_app.test_client().get("/vendor/plotly.min.js")
    assert r.status_code == 200 and len(r.data) > 1_000_000


def test_job_store_lists_newest_first_and_updates_atomically(tmp_path):
    store = JobStore(str(tmp_path))
    a = store.create("dataset", "a", {})
    b = store.create("dataset", "b", {})
    ids = [j.id for j in store.list()]
    assert ids == [b.id, a.id]  # newest first, also within the same second
    store.update(a.id, lambda j: j.set_state("running"))
    assert store.get(a.id).state.value == "running"
    # a late progress write for a finished job is skipped, not applied
    store.update(a.id, lambda j: j.set_state("done"))
    store.update(a.id, lambda j: False if j.state.finished else j.set_state("running"))
    assert store.get(a.id).state.value == "done"
    leftovers = [n for n in __import__("os").listdir(store.job_dir(a.id)) if n.startswith(".tmp-")]
    assert leftovers == []


def test_settings_from_env_and_flags():
    s = load_settings({"port": "8080"}, environ={"DIGITS_SEG_PORT": "9000", "REDIS_URL": "redis://h:1/0",
                                                  "DIGITS_SEG_DATA_ROOTS": "/a:/b"})
    assert s.port == 8080 and s.redis_url == "redis://h:1/0" and s.data_roots == ("/a", "/b")
    with pytest.raises(Exception) as exc:
        load_settings(environ={"DIGITS_SEG_PORT": "abc"})
    assert "DIGITS_SEG_PORT" in str(exc.value)
