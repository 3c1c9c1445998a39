"""The Content-Security-Policy must not break our pages: charts (plotly), the LR preview and the
viewer still render in a real browser, and the browser reports no CSP violation."""

import shutil

import pytest

from tests.conftest import LiveServer


@pytest.fixture
def strict_page(browser):
    """A page that enforces the CSP (the shared `page` fixture bypasses it for Playwright's own eval)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.mark.slow
def test_pages_work_under_the_csp(tiny_trained, tmp_path, strict_page):
    page = strict_page
    jobs = str(tmp_path / "jobs")
    shutil.copytree(tiny_trained["jobs"], jobs)
    server = LiveServer(tmp_path, env={"DIGITS_SEG_JOBS_DIR": jobs, "DIGITS_SEG_WORKERS": "0"})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto(server.url + "/models/%s" % tiny_trained["model"])
        page.locator("#chart-loss .main-svg").first.wait_for(timeout=20000)
        page.goto(server.url + "/models/new")
        page.locator("#lr-preview .main-svg").first.wait_for(timeout=20000)
        page.goto(server.url + "/models/%s/infer" % tiny_trained["model"])
        page.goto(server.url + "/")
        assert page.locator("table, .tabs").count() > 0
    finally:
        server.stop()
    assert violations == []
