"""DistributedDataParallel training without a GPU: device `cpus:2` runs the `gpus:N` code path with gloo.

Two spawned processes train tiny-fcn on SynthCity (40 images, 64×64); the checks are the
ones a multi-GPU job must pass: curves and snapshots written once (by rank 0), validation
summed over ranks so that it equals a single-process evaluation of the same weights,
abort of every rank, and resume from the last snapshot, through a real RQ worker.
"""

import contextlib
import os
import shutil

import numpy as np
import pytest

from digits_seg.config import load_settings
from digits_seg.datasets.info import DatasetInfo
from digits_seg.errors import ValidationError
from digits_seg.jobs.job import JobState
from digits_seg.jobs.queue import advertise_worker, connect, queue_for_device
from digits_seg.jobs.store import JobStore
from digits_seg.training.distributed import parse_device, shard
from digits_seg.training.metrics_log import read_metrics
from digits_seg.training.params import validate_params
from digits_seg.training.snapshots import list_snapshots
from digits_seg.training.trainer import train
from tests.conftest import synthcity_dataset, wait_for


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthcity_ddp"))
    settings = load_settings({"jobs_dir": root, "data_roots": [root]}, environ={})
    return synthcity_dataset(settings, os.path.join(root, "src"), os.path.join(root, "dataset"), 40, (64, 64), seed=3)


def make_params(dataset_dir, **over):
    raw = dict(network="tiny-fcn", network_kind="standard", device="cpus:2", epochs=2, batch_size=4, base_lr=0.001,
               solver_type="Adam", lr_policy="fixed", loader_workers=1, log_interval=2, seed=5, hflip=True,
               crop_size=48, mean_subtraction="none", val_previews=2)
    raw.update(over)
    return validate_params(raw, None, DatasetInfo.load(dataset_dir))


def run(job_dir, params, dataset_dir, should_stop=lambda: False, resume=False):
    logs, progress = [], []
    result = train(job_dir, params, on_progress=lambda f, m: progress.append(f), should_stop=should_stop,
                   log=logs.append, dataset_dir=dataset_dir, resume=resume)
    return result, logs, progress


def single_process_confusion(job_dir, dataset_dir, snapshot):
    """The validation confusion matrix of `snapshot`'s weights, computed in this process over the whole split."""
    import torch

    from digits_seg.networks.compiler import compile_net
    from digits_seg.networks.weights import load_weights
    from digits_seg.training.augment import to_input
    from digits_seg.training.loader import make_loader, open_split
    from digits_seg.training.loss import segmentation_loss
    from digits_seg.training.validation import run_validation

    with open(os.path.join(job_dir, "network.prototxt")) as f:
        net = compile_net(f.read(), phase="train", include_loss=False, input_shape=(3, 64, 64))
    load_weights(net, snapshot)
    loader, _ = make_loader(open_split(dataset_dir, "val"), batch_size=4, shuffle=False, transform=None, seed=0,
                            workers=0, pin_memory=False)
    res, _ = run_validation(net, loader, device=torch.device("cpu"), num_classes=10, ignore_label=255,
                            loss_fn=lambda s, t: segmentation_loss(s, t, ignore_label=255),
                            prepare=lambda im: to_input(im, None), autocast=contextlib.nullcontext)
    return np.array(res["confusion"])


def counted_val_pixels(dataset_dir, num_classes=10):
    from digits_seg.training.loader import open_split

    db = open_split(dataset_dir, "val")
    return sum(int(((np.asarray(db[i][1]) != 255) & (np.asarray(db[i][1]) < num_classes)).sum())
               for i in range(len(db)))


def test_device_grammar_queue_and_sharding():
    assert validate_params({"network": "tiny-fcn", "device": "gpu", "num_gpus": 4})["device"] == "gpus:4"
    p = validate_params({"network": "tiny-fcn", "device": "gpus:8@node3"})
    assert (p["device"], p["num_gpus"]) == ("gpus:8@node3", 8)
    assert validate_params({"network": "tiny-fcn", "device": "gpu:1@h"})["device"] == "gpu:1@h"
    with pytest.raises(ValidationError):
        validate_params({"network": "tiny-fcn", "device": "cpu", "num_gpus": 2})
    with pytest.raises(ValidationError):
        validate_params({"network": "tiny-fcn", "device": "gpus:2", "num_gpus": 3})
    assert parse_device("gpus:4@h") == ("nccl", 4) and parse_device("cpus:2") == ("gloo", 2)
    assert parse_device("gpu:0") is None
    assert queue_for_device("gpus:4@h") == "gpu.h.all" and queue_for_device("gpus:2") == "gpu.all"
    assert queue_for_device("cpus:2") == "cpu" and queue_for_device("gpu:1@h") == "gpu.h.1"
    # Validation shards cover every index once; training shards are padded to equal length.
    parts = [shard(range(7), r, 3, pad=False) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(7))
    padded = [shard(range(7), r, 3, pad=True) for r in range(3)]
    assert [len(p) for p in padded] == [3, 3, 3] and set(sum(padded, [])) == set(range(7))


def test_two_processes_train_validate_snapshot(dataset_dir, tmp_path):
    job = str(tmp_path)
    result, logs, progress = run(job, make_params(dataset_dir), dataset_dir)
    # 32 train images over 2 ranks, batch 4 per rank → 4 iterations per epoch.
    assert result["iterations"] == 8 and progress[-1] == 1.0
    assert any("DistributedDataParallel: 2 processes, backend gloo" in line for line in logs)
    assert sum("Network compiled" in line for line in logs) == 1  # rank 0 alone logs
    train_pts, val_pts = read_metrics(job, "train"), read_metrics(job, "val")
    assert [r["iteration"] for r in train_pts] == [2, 4, 6, 8]  # written once, not once per rank
    assert [r["iteration"] for r in val_pts] == [4, 8]
    snaps = list_snapshots(job)
    assert [s["iteration"] for s in snaps] == [4, 8] and [s["epoch"] for s in snaps] == [1, 2]
    assert os.path.exists(os.path.join(job, "best.h5"))
    assert sorted(os.listdir(os.path.join(job, "val_previews", "epoch_2"))) == ["0.png", "2.png"]
    assert not [n for n in os.listdir(job) if n.startswith(".ddp_rendezvous")]
    # Each validation pixel counted exactly once over both ranks...
    conf = np.array(val_pts[-1]["confusion"])
    assert conf.sum() == counted_val_pixels(dataset_dir) == 8 * 64 * 64
    # ...and the summed matrix is what one process computes with the same weights. CPU
    # convolutions over different batch groupings may round differently, so a pixel whose
    # two best scores tie could flip: allow 0.1% of the pixels, not more.
    single = single_process_confusion(job, dataset_dir, snaps[-1]["path"])
    assert single.sum() == conf.sum()
    assert np.abs(single - conf).sum() <= 2 * 0.001 * conf.sum()


def finished_dataset(settings, dataset_dir):
    """The module's dataset as a finished dataset job of `settings`' job store."""
    store = JobStore(settings.jobs_dir)
    ds = store.create("dataset", "synth", {})
    store.set_state(ds.id, JobState.RUNNING)
    shutil.copytree(dataset_dir, store.job_dir(ds.id), dirs_exist_ok=True)
    store.set_state(ds.id, JobState.DONE)
    return ds.id


def test_real_worker_relays_progress_aborts_all_ranks_and_resumes(settings, client, start_worker, dataset_dir):
    """Through RQ: the work horse spawns the ranks, relays rank 0's log/progress, and abort reaches every rank."""
    r = client.post("/models.json", json={"dataset_id": finished_dataset(settings, dataset_dir), "network": "tiny-fcn",
                                          "epochs": 100, "batch_size": 4, "crop_size": 48, "device": "cpus:2",
                                          "loader_workers": 0, "seed": 1, "log_interval": 2, "val_previews": 0})
    assert r.status_code == 201, r.get_json()
    job_id = r.get_json()["id"]
    store = JobStore(settings.jobs_dir)
    job_dir = store.job_dir(job_id)
    assert store.get(job_id).queue == "cpu"
    start_worker()
    wait_for(lambda: list_snapshots(job_dir), 120, message="a first snapshot")
    assert store.get(job_id).progress["fraction"] > 0  # rank 0's progress reached job.json
    client.post("/jobs/%s/abort.json" % job_id, json={})
    wait_for(lambda: store.get(job_id).state == JobState.ABORTED, 60, message="the abort")
    log = store.read_log(job_id)[0]
    assert "DistributedDataParallel: 2 processes, backend gloo" in log and log.count("Network compiled") == 1
    kept = list_snapshots(job_dir)
    assert kept and kept[-1]["iteration"] < 400  # stopped long before the end, snapshots kept
    before = kept[-1]["iteration"]

    assert client.post("/jobs/%s/resume.json" % job_id, json={}).status_code == 200
    wait_for(lambda: max(s["iteration"] for s in list_snapshots(job_dir)) > before, 120,
             message="a snapshot after the resume")
    client.post("/jobs/%s/abort.json" % job_id, json={})
    wait_for(lambda: store.get(job_id).state == JobState.ABORTED, 60, message="the second abort")
    assert "Resumed from snapshot_iter_%d.h5" % before in store.read_log(job_id)[0]
    its = [p["iteration"] for p in read_metrics(job_dir, "train")]
    assert its == sorted(set(its)) and its[-1] > before, "iterations restarted or repeated after resume"
    assert not [n for n in os.listdir(job_dir) if n.startswith(".ddp_rendezvous")]


def test_form_lists_a_machine_of_an_all_gpus_worker_and_queues_its_job(settings, client, dataset_dir):
    # What `digits-seg worker --gpu all` advertises on a 4-GPU machine (jobs/worker.py).
    advertise_worker(connect(settings.redis_url), "node7.gpuall.1", {
        "name": "node7.gpuall.1", "host": "node7", "pid": 1, "gpu": "all", "gpu_count": 4,
        "gpu_name": "NVIDIA H100", "memory_mb": 81559, "busy_job": None})
    ds = finished_dataset(settings, dataset_dir)
    html = client.get("/models/new?dataset=%s" % ds).get_data(as_text=True)
    assert 'value="gpus:4@node7"' in html and "all 4 GPUs of node7" in html
    assert "gpu:all" not in html  # not listed as a single GPU
    r = client.post("/models.json", json={"dataset_id": ds, "network": "tiny-fcn", "epochs": 1,
                                          "device": "gpus:4@node7"})
    assert r.status_code == 201, r.get_json()
    job = client.get(r.get_json()["url"] + ".json").get_json()
    assert job["params"]["device"] == "gpus:4@node7" and job["params"]["num_gpus"] == 4
    assert job["queue"] == "gpu.node7.all"
