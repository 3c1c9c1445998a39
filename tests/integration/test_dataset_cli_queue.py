"""`digits-seg dataset create` without --now queues a job that a real worker runs."""

import argparse
import json
import os

from digits_seg.cli import main
from digits_seg.commands.follow import report_queued
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


def test_cli_wait_follows_the_job_to_its_end(settings, start_worker, capsys):
    root = os.path.join(settings.data_roots[0], "city")
    synthcity.generate(root, 6, size=(24, 16), seed=3)
    worker = start_worker()
    common = ["dataset", "create", "--jobs-dir", settings.jobs_dir, "--redis-url", settings.redis_url,
              "--images", root + "/images", "--labels", root + "/labels", "--classes", root + "/classes.txt",
              "--val-pct", "20", "--json"]
    code = main(common + ["--name", "waited-city", "--wait"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    final = json.loads(captured.out.strip().splitlines()[-1])
    assert final["state"] == "done" and final["train"] + final["val"] == 6  # it returned only at the end
    assert "Started dataset job 'waited-city'" in captured.err and "pairs in" in captured.err  # the log, live
    store = JobStore(settings.jobs_dir)
    # what creation would refuse is refused at submit, with the check's report, and nothing is queued
    with open(os.path.join(root, "bad-classes.txt"), "w") as f:
        f.write("only\ntwo\n")  # labels use 10 classes: values >= 2 are refused
    jobs_before = len(store.list())
    code = main(common[:-5] + ["--classes", root + "/bad-classes.txt", "--val-pct", "20", "--json", "--wait",
                               "--name", "refused-city"])
    captured = capsys.readouterr()
    assert code != 0 and "number of classes" in captured.err and len(store.list()) == jobs_before
    # a job that fails in the worker makes --wait fail too, with the reason: its labels vanish once queued
    worker.stop()
    code = main(common + ["--name", "failing-city"])
    job_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["id"]
    os.rename(os.path.join(root, "labels"), os.path.join(root, "labels-moved"))
    start_worker()
    code = report_queued(store, store.get(job_id), argparse.Namespace(wait=True, json=True), "dataset")
    captured = capsys.readouterr()
    assert code == 1 and "ended error" in captured.err and "label folder" in captured.err


def test_cli_train_wait_follows_the_model_job(settings, start_worker, capsys):
    root = os.path.join(settings.data_roots[0], "city")
    synthcity.generate(root, 6, size=(32, 24), seed=4)
    start_worker()
    base = ["--jobs-dir", settings.jobs_dir, "--redis-url", settings.redis_url]
    assert main(["dataset", "create"] + base + ["--images", root + "/images", "--labels", root + "/labels",
                                              "--classes", root + "/classes.txt", "--wait", "--json"]) == 0
    ds = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["id"]
    code = main(["train"] + base + ["--dataset", ds, "--network", "tiny-fcn", "--epochs", "1", "--batch-size", "2",
                                    "--device", "cpu", "--wait", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [made] = json.loads(captured.out.strip().splitlines()[-1])
    assert made["state"] == "done" and "Started model job" in captured.err
