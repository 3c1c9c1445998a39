"""Per-app cache of store listings, refreshed in background threads.

DIGITS' store page fetched every store while the request waited, so one slow server made
the page hang. Here `snapshot()` returns at once with whatever is known (status
"checking" before the first answer), and `refresh()` starts one daemon thread per store
that is stale and not already being read. Each thread replaces only its own store's
record, under a lock, so readers always see complete listings.

Create one `StoreCache` per app (in `create_app`), never at import time.
"""

import threading
import time

from ..errors import DigitsSegError, NotFoundError
from . import index

DEFAULT_TTL_S = 300.0
"""How long a listing is fresh, in seconds, before `refresh()` reads the store again."""

DEFAULT_ERROR_TTL_S = 30.0
"""How long an "unreachable" result is kept before trying again, in seconds."""

REACHABLE = "reachable"
CHECKING = "checking"


class StoreCache:
    """Listings of every configured store; never blocks a caller on the network."""

    def __init__(self, settings, ttl_s=DEFAULT_TTL_S, error_ttl_s=DEFAULT_ERROR_TTL_S,
                 timeout_s=index.DEFAULT_TIMEOUT_S, stores=None):
        self.stores = list(stores) if stores is not None else index.configured_stores(settings)
        self.ttl_s = ttl_s
        self.error_ttl_s = error_ttl_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._records = {url: self._blank(url) for url in self.stores}
        self._threads = {}

    @staticmethod
    def _blank(url):
        return {"url": url, "status": CHECKING, "msg": None, "models": [], "warnings": [],
                "checked_at": None, "duration_s": None}

    def refresh(self, force=False):
        """Start a background read of every stale store (all of them with `force`); return at once."""
        now = time.time()
        with self._lock:
            for url in self.stores:
                rec = self._records[url]
                running = url in self._threads and self._threads[url].is_alive()
                if running:
                    continue
                ttl = self.ttl_s if rec["status"] == REACHABLE else self.error_ttl_s
                fresh = rec["checked_at"] is not None and now - rec["checked_at"] < ttl
                if fresh and not force:
                    continue
                t = threading.Thread(target=self._read, args=(url,), name="store-list", daemon=True)
                self._threads[url] = t
                t.start()

    def _read(self, url):
        started = time.monotonic()
        try:
            listing = index.list_store(url, timeout=self.timeout_s)
            update = {"status": REACHABLE, "msg": listing["msg"], "models": listing["models"],
                      "warnings": listing["warnings"]}
        except DigitsSegError as e:
            update = {"status": "unreachable: %s" % e.message, "models": [], "warnings": []}
        except Exception as e:  # a store must never take the app down; report what happened
            update = {"status": "unreachable: %s: %s" % (e.__class__.__name__, e), "models": [], "warnings": []}
        update["checked_at"] = time.time()
        update["duration_s"] = round(time.monotonic() - started, 3)
        with self._lock:
            rec = dict(self._records[url])
            if update["status"] != REACHABLE and rec["models"]:
                # Keep the last good listing visible, flagged by the status.
                update.pop("models")
            rec.update(update)
            self._records[url] = rec

    def snapshot(self):
        """[{url, status, msg, models, warnings, checked_at, duration_s}, ...] as known now; starts a refresh."""
        self.refresh()
        with self._lock:
            return [dict(self._records[url]) for url in self.stores]

    def wait(self, timeout_s):
        """Block until no read is running or `timeout_s` passed (CLI and tests); return snapshot()."""
        deadline = time.monotonic() + timeout_s
        self.refresh()
        for url in self.stores:
            t = self._threads.get(url)
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return [dict(self._records[url]) for url in self.stores]

    def models(self):
        """Every known model of every store, each with its `store` URL."""
        return [m for rec in self.snapshot() for m in rec["models"]]

    def find(self, store, model):
        """The cached entry `model` of `store`; NotFoundError when unknown."""
        store = index.normalize_store_url(store)
        with self._lock:
            rec = self._records.get(store)
            for m in (rec or {}).get("models", []):
                if m["folder"] == model:
                    return m
        raise NotFoundError("model %r is not in the listing of store %s (is the store reachable?)" % (model, store))
