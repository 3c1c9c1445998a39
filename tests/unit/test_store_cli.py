"""`digits-seg store list | publish | import --now` through the real CLI entry point."""

import json
import os

import numpy as np

from digits_seg.cli import main
from digits_seg.networks.weights import read_blobs, save_h5

NET = 'layer { name: "score" type: "Convolution" bottom: "data" top: "score" convolution_param { num_output: 2 kernel_size: 1 } }\n'


def _model_job(jobs):
    d = os.path.join(jobs, "20260101-000000-beef")
    os.makedirs(d)
    save_h5({"score": [np.full((2, 3, 1, 1), 2.0, np.float32), np.zeros(2, np.float32)]}, os.path.join(d, "best.h5"))
    with open(os.path.join(d, "network.prototxt"), "w") as f:
        f.write(NET)
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("bg\nfg\n")
    with open(os.path.join(d, "job.json"), "w") as f:
        json.dump({"id": "20260101-000000-beef", "kind": "model", "name": "CLI model", "params": {}}, f)
    return d


def test_publish_list_import_round_trip(tmp_path, capsys, monkeypatch):
    jobs = str(tmp_path / "jobs")
    _model_job(jobs)
    store = str(tmp_path / "store")
    assert main(["store", "publish", "20260101-000000-beef", "--to", store, "--jobs-dir", jobs,
                 "--license", "CC0-1.0"]) == 0
    assert "published CLI model as" in capsys.readouterr().out

    assert main(["store", "list", store, "--json"]) == 0
    (rec,) = json.loads(capsys.readouterr().out)
    assert rec["status"] == "reachable" and rec["models"][0]["license"] == "CC0-1.0"
    assert main(["store", "list", "--timeout", "10"]) == 0  # the bundled store: metrics worded as on its page
    assert "val mIoU 0.677, val pixel accuracy 0.991" in capsys.readouterr().out

    monkeypatch.setenv("DIGITS_SEG_STORE_URLS", store)
    assert main(["store", "import", store, "cli-model", "--now", "--json", "--jobs-dir", jobs]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["num_classes"] == 2 and out["has_weights"]
    np.testing.assert_array_equal(read_blobs(os.path.join(out["dir"], "weights.h5"))["score"][0],
                                  np.full((2, 3, 1, 1), 2.0))
    with open(os.path.join(out["dir"], "job.json")) as f:
        assert json.load(f)["status_history"][-1]["state"] == "done"


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["store", "publish", "no-such-job", "--to", str(tmp_path / "s"), "--jobs-dir", str(tmp_path)]) == 2
    assert "no job 'no-such-job'" in capsys.readouterr().err
    assert main(["store", "import", "http://elsewhere.example/", "x", "--now", "--jobs-dir", str(tmp_path)]) == 2
    assert "not configured" in capsys.readouterr().err
    assert main(["store", "list", str(tmp_path / "missing"), "--timeout", "10"]) == 1
    assert "unreachable: store folder" in capsys.readouterr().out
