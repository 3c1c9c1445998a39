"""Home page paging per tab and the batched status endpoint the home page polls (real app, no Redis)."""

import html.parser

import pytest

from digits_seg.config import load_settings
from digits_seg.web.app import create_app
from digits_seg.web.home import HOME_PAGE_SIZE

EXTRA = 7
"""Jobs beyond two full pages, so the model tab has pages of 50, 50 and 7."""


class HomePage(html.parser.HTMLParser):
    """The parts of the home page under test: active tab, rows and pager links per panel."""

    def __init__(self, text):
        super().__init__()
        self.active_tab, self.tabs = None, {}
        self.rows, self.links, self.visible = {}, {}, set()
        self._panel = None
        self._tab = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "button" and a.get("role") == "tab":
            self._tab = a["data-tab"]
            if "active" in a.get("class", "").split():
                self.active_tab = a["data-tab"]
        elif tag == "section" and "data-panel" in a:
            self._panel = a["data-panel"]
            self.rows[self._panel], self.links[self._panel] = [], {}
            if "hidden" not in a:
                self.visible.add(self._panel)
        elif tag == "tr" and "data-job-id" in a and self._panel:
            self.rows[self._panel].append(a["data-job-id"])
        elif tag == "a" and a.get("rel") in ("next", "prev") and self._panel:
            self.links[self._panel][a["rel"]] = a["href"]

    def handle_data(self, data):
        if self._tab and data.strip().isdigit():
            self.tabs[self._tab] = int(data.strip())
            self._tab = None


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """(app, store, model ids newest first, dataset ids): 2 pages + 7 models, 3 datasets (read-only)."""
    jobs_dir = tmp_path_factory.mktemp("home") / "jobs"
    app = create_app(load_settings({"jobs_dir": str(jobs_dir)}, environ={}))
    store = app.extensions["digits_seg"].store
    for i in range(2 * HOME_PAGE_SIZE + EXTRA):
        store.create("model", "model %d" % i, {"i": i})
    for i in range(3):
        store.create("dataset", "dataset %d" % i, {"i": i})
    models = [j.id for j in store.list(kind="model")]
    datasets = [j.id for j in store.list(kind="dataset")]
    return app, store, models, datasets


def get_page(app, query=""):
    r = app.test_client().get("/" + query)
    assert r.status_code == 200
    return HomePage(r.get_data(as_text=True))


def test_tabs_page_newest_first_and_cover_every_job(home):
    app, store, models, datasets = home
    first = get_page(app, "?tab=model")
    assert first.active_tab == "model" and first.visible == {"model"}
    assert first.tabs["model"] == len(models) and first.tabs["dataset"] == 3
    assert first.rows["model"] == models[:HOME_PAGE_SIZE]
    assert first.rows["dataset"] == datasets  # other tabs show their first page
    assert "prev" not in first.links["model"]

    seen, page, query = [], first, "?tab=model"
    while True:
        seen += page.rows["model"]
        if "next" not in page.links["model"]:
            break
        query = page.links["model"]["next"].lstrip("/")
        page = get_page(app, query)
    assert seen == models
    assert page.rows["model"] == models[-EXTRA:]
    assert get_page(app, query).links["model"]["prev"].endswith("page=2")
    assert get_page(app).links["dataset"] == {}  # one page: no pager


@pytest.mark.parametrize("query, tab, rows", [
    ("", "dataset", slice(0, HOME_PAGE_SIZE)),
    ("?tab=model&page=99", "model", slice(2 * HOME_PAGE_SIZE, None)),
    ("?tab=model&page=-4", "model", slice(0, HOME_PAGE_SIZE)),
    ("?tab=model&page=two", "model", slice(0, HOME_PAGE_SIZE)),
    ("?tab=<script>&page=2", "dataset", slice(0, HOME_PAGE_SIZE)),
])
def test_out_of_range_requests_land_on_a_real_page(home, query, tab, rows):
    app, store, models, datasets = home
    page = get_page(app, query)
    assert page.active_tab == tab and page.visible == {tab}
    assert page.rows["model"] == (models[rows] if tab == "model" else models[:HOME_PAGE_SIZE])


def test_json_twin_lists_every_job(home):
    app, store, models, datasets = home
    data = app.test_client().get("/index.json?tab=model&page=2").get_json()
    assert [d["id"] for d in data["models"]] == models
    assert [d["id"] for d in data["datasets"]] == datasets
    few = app.test_client().get("/index.json?limit=3").get_json()
    assert [d["id"] for d in few["models"]] == models[:3] and [d["id"] for d in few["datasets"]] == datasets[:3]
    store.set_state(models[5], "running")
    running = app.test_client().get("/index.json?state=running").get_json()
    assert [d["id"] for d in running["models"]] == [models[5]] and running["datasets"] == []


def test_status_of_many_jobs_in_one_request(home):
    app, store, models, datasets = home
    unknown = "20000101-000000-abcd"
    r = app.test_client().get("/jobs/status.json?ids=%s,%s,%s,not-an-id" % (models[0], datasets[1], unknown))
    assert r.status_code == 200
    jobs = r.get_json()["jobs"]
    assert jobs[models[0]]["state"] == "queued" and jobs[models[0]]["kind"] == "model"
    assert jobs[datasets[1]]["name"] == store.get(datasets[1]).name
    assert jobs[unknown] is None and jobs["not-an-id"] is None
    assert app.test_client().get("/jobs/status.json").get_json() == {"jobs": {}}
    # The batch route must not shadow a job's own JSON twin.
    assert app.test_client().get("/jobs/%s.json" % models[0]).get_json()["id"] == models[0]


def test_jobs_made_in_the_same_second_list_newest_first(tmp_path):
    import time

    from digits_seg.jobs.store import JobStore

    store = JobStore(str(tmp_path / "jobs"))
    made = []
    for i in range(6):
        made.append(store.create("model", "sweep %d" % i, {}).id)
        time.sleep(0.003)  # `created` has millisecond resolution
    if len({m[:15] for m in made}) == len(made):
        pytest.skip("every job got its own second; nothing to tie-break")
    assert [j.id for j in store.list()] == made[::-1]
