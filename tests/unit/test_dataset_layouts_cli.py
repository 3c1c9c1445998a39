"""`digits-seg dataset create --layout NAME --root DIR` through the real parser: detect, check, build, refuse."""

import json
import os

import pytest

from digits_seg.cli import main

from .. import layout_fixtures as F


@pytest.mark.parametrize("layout", ["voc", "cityscapes", "camvid-segnet", "ade20k", "coco"])
def test_layout_builds_from_its_top_folder(tmp_path, capsys, monkeypatch, layout):
    root = tmp_path / "data"
    F.MAKERS[layout](str(root))
    monkeypatch.chdir(tmp_path)  # --root relative to the current directory
    args = ["dataset", "create", "--jobs-dir", str(tmp_path / "jobs"), "--layout", "auto", "--root", "data"]
    assert main(args + ["--now", "--json"]) == 0
    out = capsys.readouterr()
    assert "detected " in out.err
    result = json.loads(out.out.strip().splitlines()[-1])
    assert result["train"] == 3 and result["val"] == (1 if layout == "coco" else 2)
    job = json.load(open(os.path.join(result["dir"], "job.json")))
    assert job["params"]["layout"] == layout and job["params"]["layout_root"].startswith(str(root))
    if layout != "coco":  # COCO's pixels are checked in test_dataset_layouts
        F.assert_labels_match(result["dir"], layout, str(root))


def test_check_coco_categories_and_refusals(tmp_path, capsys):
    root = tmp_path / "coco"
    F.make_coco(str(root))
    jobs = str(tmp_path / "jobs")
    base = ["dataset", "create", "--jobs-dir", jobs, "--layout", "coco", "--root", str(root)]
    assert main(base + ["--categories", "person", "--check"]) == 0
    out = capsys.readouterr().out
    assert "pairs: 3 train, 1 val" in out and "person" in out and "OK: no problems found" in out
    assert not os.path.exists(jobs) or not [n for n in os.listdir(jobs) if not n.startswith(".")]  # no job
    assert main(base + ["--images", str(root), "--check"]) != 0
    assert "leave out --images/--labels" in capsys.readouterr().err
    assert main(["dataset", "create", "--jobs-dir", jobs, "--layout", "cityscapes", "--root", str(root), "--check"]) != 0
    assert "not Cityscapes: looked for leftImg8bit/" in capsys.readouterr().err


def test_ignore_given_with_a_layout_is_refused(tmp_path, capsys):
    root = tmp_path / "camvid"
    F.MAKERS["camvid-segnet"](str(root))
    jobs = tmp_path / "jobs"
    assert main(["dataset", "create", "--jobs-dir", str(jobs), "--layout", "camvid-segnet", "--root", str(root),
                 "--ignore", "3", "--now"]) != 0
    err = capsys.readouterr().err
    assert "Ignore values (ignore_values, CLI --ignore) cannot be combined with a standard layout" in err
    assert not jobs.exists() or not [n for n in os.listdir(jobs) if not n.startswith(".")]
