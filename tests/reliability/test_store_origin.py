"""A store's manifest cannot make the worker fetch internal URLs (server-side request forgery).

Two real HTTP servers on loopback: the store, and an "internal service" on another port.
A manifest file URL pointing at the internal service without a checksum is refused before
any request reaches it; with a checksum it is fetched (the content is fixed in advance).
"""

import hashlib
import http.server
import json
import os
import threading

import pytest

from digits_seg.config import load_settings
from digits_seg.errors import ValidationError
from digits_seg.store.importer import import_model

SECRET = b"internal admin page: do not leak\n"


class _Recorder(http.server.SimpleHTTPRequestHandler):
    hits = None

    def log_message(self, *args):
        pass

    redirect_to = None

    def do_GET(self):
        self.hits.append(self.path)
        if self.redirect_to and self.path.endswith("/moved.caffemodel"):
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.end_headers()
            return
        super().do_GET()


def _serve(folder, hits, redirect_to=None):
    handler = type("H", (_Recorder,), {"hits": hits, "redirect_to": redirect_to})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **k: handler(*a, directory=folder, **k))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def servers(tmp_path):
    internal_dir, store_dir = tmp_path / "internal", tmp_path / "store"
    (internal_dir).mkdir()
    (internal_dir / "secret").write_bytes(SECRET)
    (store_dir / "m").mkdir(parents=True)
    internal_hits, store_hits = [], []
    internal = _serve(str(internal_dir), internal_hits)
    secret_url = "http://localhost:%d/secret" % internal.server_port
    store = _serve(str(store_dir), store_hits, redirect_to=secret_url)
    yield {"store_dir": store_dir, "internal_hits": internal_hits, "store_hits": store_hits,
           "store_url": "http://127.0.0.1:%d/" % store.server_port, "secret_url": secret_url}
    internal.shutdown()
    store.shutdown()


def _manifest(servers, **file_extra):
    manifest = {"name": "m", "framework": "caffe", "files": [
        dict({"role": "weights", "name": "weights.caffemodel", "url": servers["secret_url"]}, **file_extra)]}
    (servers["store_dir"] / "m" / "manifest.json").write_text(json.dumps(manifest))


def _import(servers, tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    settings = load_settings({"jobs_dir": str(tmp_path)}, environ={})
    return import_model(str(job_dir), {"source": "store", "store": servers["store_url"], "model": "m"},
                        on_progress=lambda *a: None, should_stop=lambda: False, log=lambda t: None, settings=settings)


def test_foreign_file_without_checksum_is_never_fetched(servers, tmp_path):
    _manifest(servers)
    with pytest.raises(ValidationError, match="not from the store itself"):
        _import(servers, tmp_path)
    assert servers["internal_hits"] == []
    assert os.listdir(tmp_path / "job") == []


def test_internal_address_refused_even_with_checksum_unless_the_store_is_there(servers, tmp_path):
    # localhost is the store's host too (127.0.0.1) only by address, not by name: refused
    _manifest(servers, sha256=hashlib.sha256(SECRET).hexdigest())
    with pytest.raises(ValidationError, match="internal address"):
        _import(servers, tmp_path)
    assert servers["internal_hits"] == []


def test_store_file_redirecting_to_an_internal_address_is_refused(servers, tmp_path):
    """A file on the store's own origin (no checksum needed) that redirects to an internal service."""
    manifest = {"name": "m", "framework": "caffe", "files": [
        {"role": "weights", "name": "moved.caffemodel", "url": servers["store_url"] + "m/moved.caffemodel"}]}
    (servers["store_dir"] / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValidationError, match="internal address"):
        _import(servers, tmp_path)
    assert "/m/moved.caffemodel" in servers["store_hits"] and servers["internal_hits"] == []


def test_internal_hosts():
    from digits_seg.store.origin import is_internal_host

    assert is_internal_host("127.0.0.1") and is_internal_host("10.1.2.3") and is_internal_host("169.254.169.254")
    assert is_internal_host("::1") and not is_internal_host("8.8.8.8")
