"""`digits-seg dataset create` without --now queues a job that a real worker runs."""

import json
import os

from digits_seg.cli import main
from digits_seg.datasets import synthcity
from digits_seg.jobs.store import JobStore

from ..conftest import wait_for


def test_cli_create_goes_through_the_queue(settings, start_worker, capsys):
    root = os.path.join(settings.data_roots[0], "city")
    synthcity.generate(root, 5, size=(24, 16), seed=2)
    code = main(["dataset", "create", "--jobs-dir", settings.jobs_dir, "--redis-url", settings.redis_url,
                 "--images", root + "/images", "--labels", root + "/labels", "--classes", root + "/classes.txt",
                 "--val-pct", "20", "--name", "queued-city", "--json"])
    assert code == 0
    job_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["id"]
    store = JobStore(settings.jobs_dir)
    assert store.get(job_id).state.value == "queued"
    start_worker()
    wait_for(lambda: store.get(job_id).state.value in ("done", "error"), 90, message="queued dataset job")
    job = store.get(job_id)
    assert job.state.value == "done", job.error
    assert job.result["train"] == 4 and job.result["val"] == 1
    assert os.path.exists(os.path.join(store.job_dir(job_id), "dataset.json"))
