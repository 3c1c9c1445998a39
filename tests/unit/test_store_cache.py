"""StoreCache: background listing per store, freshness, last good listing kept when a store goes away."""

import os
import shutil

from digits_seg.config import load_settings
from digits_seg.store.cache import REACHABLE, StoreCache
from digits_seg.store.publish import add_entry

NET = b'layer { name: "s" type: "Convolution" bottom: "data" top: "s" convolution_param { num_output: 2 } }\n'


def _store(folder, *ids):
    for i in ids:
        add_entry(folder, i, {"name": i.upper()}, {"network.prototxt": ("network", NET)})
    return folder


def test_lists_every_configured_store_with_bundled_first(tmp_path):
    a = _store(str(tmp_path / "a"), "one")
    settings = load_settings({"store_urls": "%s,%s,%s" % (a, a, tmp_path / "missing")}, environ={})
    cache = StoreCache(settings)
    assert len(cache.snapshot()) == 3  # duplicates removed; returns without waiting
    records = cache.wait(30)
    assert [r["url"] for r in records][1:] == [a, str(tmp_path / "missing")]
    assert records[0]["url"].endswith("model_store") and records[0]["status"] == REACHABLE
    assert records[1]["status"] == REACHABLE and [m["name"] for m in records[1]["models"]] == ["ONE"]
    assert records[2]["status"].startswith("unreachable: store folder") and records[2]["models"] == []
    assert {m["folder"] for m in cache.models()} >= {"one", "unet"}


def test_fresh_listings_are_not_reread_until_forced(tmp_path):
    a = _store(str(tmp_path / "a"), "one")
    cache = StoreCache(load_settings({}, environ={}), stores=[a])
    cache.wait(30)
    _store(a, "two")
    assert [m["folder"] for m in cache.wait(30)[0]["models"]] == ["one"]  # still fresh (ttl 300 s)
    cache.refresh(force=True)
    assert [m["folder"] for m in cache.wait(30)[0]["models"]] == ["one", "two"]


def test_store_that_disappears_keeps_its_last_listing_flagged(tmp_path):
    a = _store(str(tmp_path / "a"), "one")
    cache = StoreCache(load_settings({}, environ={}), stores=[a], error_ttl_s=0)
    cache.wait(30)
    shutil.rmtree(a)
    cache.refresh(force=True)
    (rec,) = cache.wait(30)
    assert rec["status"].startswith("unreachable:") and [m["folder"] for m in rec["models"]] == ["one"]
    os.makedirs(a)
    _store(a, "three")
    cache.refresh(force=True)
    (rec,) = cache.wait(30)
    assert rec["status"] == REACHABLE and [m["folder"] for m in rec["models"]] == ["three"]
