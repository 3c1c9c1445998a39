"""`digits-seg demo-data` and `digits-seg dataset create --check / --now` through the real parser."""

import json
import os

from digits_seg.cli import main


def test_demo_data_then_check_then_create_now(tmp_path, capsys):
    data = tmp_path / "city"
    assert main(["demo-data", str(data), "--count", "6", "--size", "32x24", "--seed", "4"]) == 0
    assert len(os.listdir(data / "images")) == 6
    jobs = str(tmp_path / "jobs")
    args = ["dataset", "create", "--jobs-dir", jobs, "--images", str(data / "images"), "--labels", str(data / "labels"),
            "--classes", str(data / "classes.txt"), "--val-pct", "34"]
    assert main(args + ["--check"]) == 0
    out = capsys.readouterr().out
    assert "pairs: 4 train, 2 val" in out and "OK: no problems found" in out
    assert main(args + ["--now", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["train"] == 4 and result["val"] == 2
    job = json.load(open(os.path.join(result["dir"], "job.json")))
    assert job["kind"] == "dataset" and job["result"]["num_classes"] == 10
    assert os.path.exists(os.path.join(result["dir"], "dataset.json"))


def test_check_exit_code_on_problems(tmp_path, capsys):
    data = tmp_path / "city"
    main(["demo-data", str(data), "--count", "3", "--size", "16x16"])
    os.unlink(data / "labels" / "scene_00001.png")
    code = main(["dataset", "create", "--jobs-dir", str(tmp_path / "jobs"), "--images", str(data / "images"),
                 "--labels", str(data / "labels"), "--check"])
    out = capsys.readouterr().out
    assert code == 1 and "scene_00001.png" in out and "have no label" in out


def test_now_refuses_bad_labels_once_and_leaves_no_job(tmp_path, capsys):
    """`--now` runs no separate pre-flight pass (creation checks every pair itself); a refused creation
    names the file and leaves no job folder behind."""
    data = tmp_path / "city"
    main(["demo-data", str(data), "--count", "4", "--size", "16x16"])
    (data / "labels" / "scene_00002.png").write_text("<html>not found</html>")
    jobs = tmp_path / "jobs"
    code = main(["dataset", "create", "--jobs-dir", str(jobs), "--images", str(data / "images"),
                 "--labels", str(data / "labels"), "--now"])
    err = capsys.readouterr().err
    assert code != 0 and "scene_00002.png is not an image" in err and "<html>" in err
    assert not jobs.exists() or not [n for n in os.listdir(jobs) if not n.startswith(".")]


def test_progress_in_a_log_file_is_a_few_frames_not_one_per_update(tmp_path):
    """`dataset create --now 2> log`: on a terminal the bar redraws in place; in a file every redraw was one
    more frame (43 for 200 tiny pairs, thousands for a real dataset). Now: the first and the last."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    data = tmp_path / "city"
    main(["demo-data", str(data), "--count", "200", "--size", "8x8"])
    with open(tmp_path / "err.log", "w") as err:
        rc = subprocess.call([sys.executable, "-m", "digits_seg.cli", "dataset", "create", "--jobs-dir",
                              str(tmp_path / "jobs"), "--images", str(data / "images"), "--labels",
                              str(data / "labels"), "--now"], stdout=subprocess.DEVNULL, stderr=err, env=env,
                             timeout=120)
    log = (tmp_path / "err.log").read_text()
    assert rc == 0 and "200 pairs in" in log and "100%" in log
    assert log.count("%|") <= 3, log
