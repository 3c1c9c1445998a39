"""Browser: the login form carries a CSRF token like every other write form, and refused forms keep their own URL.

One real `digits-seg serve` with an access token (reads open, so the forms show without a
login) and Debian chromium:
- logging in from the real form works; the same form posted from another site (a page of
  another origin, which cannot know the CSRF token) is refused with 403 and logs nobody in;
- the Test-many and Evaluate forms, refused by the server, show the error under the form at
  the form's own URL (docs/WEB.md: `data-form-url`), so reloading opens the form instead of
  posting the submission again.
"""

import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer

TOKEN = "correct-horse-battery"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LiveServer(tmp_path_factory.mktemp("forms"), env={"DIGITS_SEG_AUTH_TOKEN": TOKEN,
                                                             "DIGITS_SEG_AUTH_READS": "0"}, workers=0)
    yield srv
    srv.stop()


def _login(page, server):
    page.goto(server.url + "/login")
    page.locator("input[name=token]").fill(TOKEN)
    page.locator("form button", has_text="Log in").click()
    page.wait_for_url(server.url + "/")
    expect(page.locator("header button", has_text="Log out")).to_be_visible()


@pytest.mark.e2e
def test_login_needs_its_csrf_token(server, page, browser, artifact_path):
    assert page.goto(server.url + "/login").status == 200
    assert page.locator("form input[name=csrf_token]").count() == 1
    _login(page, server)

    # another site's page posting the right token to /login: refused, nobody logged in
    context = browser.new_context()
    attacker = context.new_page()
    try:
        attacker.set_content('<form method="post" action="%s/login"><input name="token" value="%s">'
                             '<button id="go">go</button></form>' % (server.url, TOKEN))
        with attacker.expect_navigation():
            attacker.locator("#go").click()
        assert attacker.url == server.url + "/login"
        expect(attacker.locator(".error-message")).to_contain_text("CSRF token")
        attacker.screenshot(path=artifact_path("login-cross-site.png"))
        attacker.goto(server.url + "/")
        expect(attacker.locator("header a", has_text="Log in")).to_be_visible()
    finally:
        context.close()

    # over plain HTTP, the same post without the token: 403, no session cookie handed out
    req = urllib.request.Request(server.url + "/login", data=b"token=" + TOKEN.encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 403


@pytest.mark.e2e
@pytest.mark.parametrize("form_url, form", [("/inference/new", "#infer-many-form"), ("/evaluations/new", "#evaluate-form")])
def test_refused_form_keeps_its_own_url(server, page, form_url, form):
    _login(page, server)
    page.goto(server.url + form_url)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.locator(form + " button[type=submit]").click()
    assert posted.value.status == 400
    expect(page.locator(form + " .field-error").first).to_be_visible()
    assert page.url == server.url + form_url  # not the POST URL
    methods = []
    page.on("request", lambda r: methods.append(r.method) if r.resource_type == "document" else None)
    page.reload()
    expect(page.locator(form)).to_be_visible()
    assert methods == ["GET"]  # reloading opened the form; nothing was posted again
