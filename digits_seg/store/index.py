"""Read a model store: an http(s) base URL or a local folder with `master.json` and one folder per model.

The layout is DIGITS' (`master.json` = `{"msg": ..., "children": [folder, ...]}`; each
folder has `info.json`, optional `aux.json` and `license.txt`); when `master.json` is
missing we fall back to the HTTP directory listing (or the folder's sub-folders), as DIGITS
did. Our entries add a richer `manifest.json`, preferred when present. Small index files
are read with a size limit and a timeout so a hostile or dead store cannot hang or flood
the reader.
"""

import html.parser
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from ..errors import NotFoundError, ValidationError
from . import manifest as mf

DEFAULT_TIMEOUT_S = 5.0
"""Per-request timeout when reading store index files, in seconds."""

DEFAULT_DEADLINE_S = 30.0
"""Longest time spent listing one store before the remaining entries are skipped, in seconds."""

MAX_INDEX_BYTES = 1024 * 1024
"""Largest index file (master.json, info.json, manifest.json, labels) read, in bytes."""

MAX_CHILDREN = 1000
"""Most entries read from one store."""


class StoreError(ValidationError):
    """A store could not be read (unreachable, malformed index); the message says which and why."""


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s), never to file:// or other schemes."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise StoreError("refusing redirect from %s to %r: only http(s) redirects are followed"
                             % (req.full_url, newurl))
        host, before = urllib.parse.urlsplit(newurl).hostname, urllib.parse.urlsplit(req.full_url).hostname
        if host != before:
            from .origin import is_internal_host  # origin.py imports this module

            if is_internal_host(host):
                raise StoreError("refusing redirect from %s to an internal address (%s); a store may redirect only "
                                 "to public addresses or its own host" % (req.full_url, host))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def http_opener():
    """An urllib opener that follows only http(s) redirects and ignores proxies' file handlers."""
    return urllib.request.build_opener(_HttpOnlyRedirects())


def is_http(url):
    return urllib.parse.urlsplit(url).scheme.lower() in ("http", "https")


def normalize_store_url(url):
    """Return an http(s) URL ending in '/' or an absolute folder path; raise for anything else."""
    url = (url or "").strip()
    if not url:
        raise ValidationError("empty store URL; give an http(s) URL or a folder", field="store")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return url if url.endswith("/") else url + "/"
    if scheme == "file":
        url = urllib.request.url2pathname(urllib.parse.urlsplit(url).path)
    elif scheme and len(scheme) > 1:
        raise ValidationError("store %r: unsupported scheme %r; use http(s):// or a folder path"
                              % (url, scheme), field="store")
    return os.path.abspath(os.path.expanduser(url))


def join(store, *parts):
    """URL or path of `parts` inside `store` (parts are already checked plain names)."""
    if is_http(store):
        return store + "/".join(urllib.parse.quote(p) for p in parts)
    return os.path.join(store, *parts)


def _reason(exc):
    if isinstance(exc, urllib.error.HTTPError):
        return "HTTP %d %s" % (exc.code, exc.reason)
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or exc.__class__.__name__


def read_bytes(store, *parts, timeout=DEFAULT_TIMEOUT_S, limit=MAX_INDEX_BYTES):
    """Read a small file of a store; NotFoundError when absent, StoreError when unreadable."""
    where = join(store, *parts)
    if not is_http(store):
        if not os.path.isfile(where):
            raise NotFoundError("%s does not exist" % where)
        if os.path.getsize(where) > limit:
            raise StoreError("%s is larger than %d KiB; not a store index file" % (where, limit // 1024))
        with open(where, "rb") as f:
            return f.read()
    try:
        with http_opener().open(where, timeout=timeout) as resp:
            data = resp.read(limit + 1)
    except urllib.error.HTTPError as e:
        if e.code in (403, 404, 410):
            raise NotFoundError("%s: HTTP %d" % (where, e.code))
        raise StoreError("%s: %s" % (where, _reason(e)))
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise StoreError("%s: %s" % (where, _reason(e)))
    if len(data) > limit:
        raise StoreError("%s is larger than %d KiB; not a store index file" % (where, limit // 1024))
    return data


def read_json(store, *parts, timeout=DEFAULT_TIMEOUT_S):
    """Read and decode a small JSON file of a store."""
    data = read_bytes(store, *parts, timeout=timeout)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise StoreError("%s is not valid JSON (%s); fix the file on the store" % (join(store, *parts), e))


class _LinkParser(html.parser.HTMLParser):
    """Collect `href`s of a directory-listing page that name direct sub-folders."""

    def __init__(self):
        super().__init__()
        self.children = []

    def handle_starttag(self, tag, attrs):
        if tag != "a":
            return
        href = dict(attrs).get("href") or ""
        if not href.endswith("/") or "?" in href or "#" in href or href.startswith(("/", "..", ".")):
            return
        if urllib.parse.urlsplit(href).scheme:
            return
        name = urllib.parse.unquote(href[:-1])
        if mf.safe_file_name(name) and name not in self.children:
            self.children.append(name)


def _children(store, timeout):
    """Return (msg, folder names) from master.json, else from the directory listing."""
    try:
        master = read_json(store, "master.json", timeout=timeout)
    except NotFoundError:
        master = None
    if master is not None:
        if not isinstance(master, dict) or not isinstance(master.get("children"), list):
            raise StoreError("%s: master.json must be {\"msg\": ..., \"children\": [folder, ...]}"
                             % join(store, "master.json"))
        names = [c for c in master["children"] if mf.safe_file_name(c)]
        msg = master.get("msg") if isinstance(master.get("msg"), str) else None
        return msg, names[:MAX_CHILDREN]
    if is_http(store):
        try:
            page = read_bytes(store, timeout=timeout)
        except NotFoundError:
            raise StoreError("%s has no master.json and no directory listing" % store)
        parser = _LinkParser()
        parser.feed(page.decode("utf-8", "replace"))
        return None, parser.children[:MAX_CHILDREN]
    if not os.path.isdir(store):
        raise StoreError("store folder %s does not exist" % store)
    names = sorted(n for n in os.listdir(store) if mf.safe_file_name(n) and os.path.isdir(os.path.join(store, n)))
    return None, names[:MAX_CHILDREN]


def read_entry(store, folder, timeout=DEFAULT_TIMEOUT_S):
    """Read one entry folder of `store` and return its entry dict (see manifest.py)."""
    if not mf.safe_file_name(folder):
        raise ValidationError("model %r is not a plain folder name of the store" % (folder,), field="model")
    try:
        entry = mf.from_manifest(read_json(store, folder, "manifest.json", timeout=timeout), folder)
    except NotFoundError:
        try:
            info = read_json(store, folder, "info.json", timeout=timeout)
        except NotFoundError:
            raise NotFoundError("%s has neither manifest.json nor info.json" % join(store, folder))
        try:
            aux = read_json(store, folder, "aux.json", timeout=timeout)
        except (NotFoundError, StoreError):
            aux = None
        entry = mf.from_digits_info(info, folder, aux)
        labels = [f for f in entry["files"] if f["role"] == "labels"]
        if labels:
            try:
                text = read_bytes(store, folder, labels[0]["name"], timeout=timeout).decode("utf-8", "replace")
                mf.apply_labels(entry, text)
            except (NotFoundError, StoreError) as e:
                entry["warnings"].append("labels file unreadable: %s" % e.message)
    for f in entry["files"]:
        f["location"] = f["url"] or join(store, folder, f["name"])
    entry["store"] = store
    return entry


def list_store(store, timeout=DEFAULT_TIMEOUT_S, deadline_s=DEFAULT_DEADLINE_S):
    """List every entry of `store`; raise StoreError when the store itself is unreachable.

    Returns {"url", "msg", "models": [entry, ...], "warnings": [...]}; an entry that
    cannot be read is reported in `warnings`, not fatal.
    """
    store = normalize_store_url(store)
    started = time.monotonic()
    msg, names = _children(store, timeout)
    models, warnings = [], []
    for i, name in enumerate(names):
        if time.monotonic() - started > deadline_s:
            warnings.append("listing stopped after %.0f s; %d entries skipped" % (deadline_s, len(names) - i))
            break
        try:
            models.append(read_entry(store, name, timeout=timeout))
        except (NotFoundError, StoreError, ValidationError) as e:
            warnings.append("%s: %s" % (name, e.message))
    return {"url": store, "msg": msg, "models": models, "warnings": warnings}


def bundled_store():
    """The folder of the bundled store (`model_store/` in the project)."""
    from ..config import repo_root

    return os.path.join(repo_root(), "model_store")


def configured_stores(settings):
    """The bundled store followed by `settings.store_urls`, normalized and without duplicates."""
    out = [bundled_store()]
    for url in settings.store_urls:
        norm = normalize_store_url(url)
        if norm not in out:
            out.append(norm)
    return out
