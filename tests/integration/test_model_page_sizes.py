"""Snapshot sizes on the model and compare pages use the store's wording, with the exact bytes in the title."""

import os
import re

from digits_seg.jobs.store import JobStore
from tests.conftest import synthcity_dataset_job, train_tiny_model


def test_snapshot_sizes_are_worded_like_the_store(settings, client):
    src = os.path.join(settings.resolved_data_roots[0], "src")
    ds = synthcity_dataset_job(settings, src, 6, (32, 32), seed=4)
    store = JobStore(settings.jobs_dir)
    model, other = (train_tiny_model(store, ds, epochs=1, name=n) for n in ("a", "b"))
    best = os.path.getsize(os.path.join(settings.jobs_dir, model, "best.h5"))
    assert 1024 < best < 1024 ** 2  # tiny-fcn: tens of KiB, shown as "0.05 MiB" / "0.1 MiB" before
    want = "%.1f KiB" % (best / 1024)
    html = client.get("/models/%s" % model).get_data(as_text=True)
    table = html[html.index('id="snapshot-table"'):]
    cells = re.findall(r'<td data-role="size" title="(\d+) bytes">([^<]*)</td>', table[:table.index("</table>")])
    assert (str(best), want) in cells and not any("MiB" in text for _, text in cells)
    snaps = client.get("/models/%s.json" % model).get_json()["model"]["snapshots"]
    assert {s["name"]: s["size_text"] for s in snaps}["best.h5"] == want
    compare = client.get("/models/compare?ids=%s,%s" % (model, other)).get_data(as_text=True)
    assert '<td data-role="size" title="%d bytes">%s</td>' % (best, want) in compare
