"""The store page says how an entry's model must be fed (BGR minus the FCN authors' mean) before it is imported."""

from digits_seg.store.index import bundled_store
from digits_seg.web.app import create_app
from tests.conftest import wait_for


def test_store_page_shows_each_entrys_input_preprocessing(settings):
    client = create_app(settings).test_client()
    wait_for(lambda: any(s["url"] == bundled_store() and s["status"] == "reachable"
                         for s in client.get("/store.json").get_json()["stores"]), timeout=30, message="bundled store")
    html = client.get("/store").get_data(as_text=True)
    row = html[html.index('value="fcn-alexnet-voc"') - 4000:html.index('value="fcn-alexnet-voc"')]
    cell = row[row.rindex('data-label="input"'):]
    # the authors' input (manifest preprocess), shown only on the pretrained page after import before
    assert '<div class="muted small" data-role="preprocess">BGR, mean pixel [104.0, 116.7, 122.7], scale 1</div>' in cell
