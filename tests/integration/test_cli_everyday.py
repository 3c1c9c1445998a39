"""The real `digits-seg` command in a subprocess: what a shell user meets (issue 14, "Command line")."""

import os
import re
import socket
import subprocess
import sys

from digits_seg.datasets import synthcity
from digits_seg.jobs.queue import advertise_worker, connect
from digits_seg.jobs.store import JobStore

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")


def run(args, cwd=None, shell_tail=""):
    """Run `digits-seg ARGS` (stdout a pipe, as in `$(...)`); `shell_tail` pipes it on, e.g. '| true'."""
    env = dict(os.environ, PYTHONPATH=REPO)
    cmd = [sys.executable, "-m", "digits_seg.cli"] + list(args)
    if shell_tail:
        cmd = ["bash", "-c", " ".join("'%s'" % a for a in cmd) + " " + shell_tail + "; echo \"rc=${PIPESTATUS[0]}\""]
    return subprocess.run(cmd, cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=120)


def test_piped_commands_print_the_job_id_alone_and_warn_about_devices(settings, tmp_path):
    root = tmp_path / "work"
    synthcity.generate(str(root / "city"), 4, size=(24, 16), seed=2)
    queue = ["--jobs-dir", settings.jobs_dir, "--redis-url", settings.redis_url]
    # relative paths resolve against the current directory (not the first data root), --classes too
    made = run(["dataset", "create"] + queue + ["--images", "city/images", "--labels", "city/labels",
                                                "--classes", "city/classes.txt", "--val-pct", "25"], cwd=str(root))
    assert made.returncode == 0, made.stderr
    dataset_id = made.stdout.strip()
    assert ID.match(dataset_id) and "queued dataset job %s" % dataset_id in made.stderr
    params = JobStore(settings.jobs_dir).get(dataset_id).params
    assert params["classes_file"] == str(root / "city" / "classes.txt")

    host = socket.gethostname()
    advertise_worker(connect(settings.redis_url), host + ".cpu.9", {"name": host + ".cpu.9", "host": host, "gpu": None})
    trained = run(["train"] + queue + ["--dataset", dataset_id, "--network", "tiny-fcn", "--device", "gpu"])
    assert trained.returncode == 0, trained.stderr
    assert ID.match(trained.stdout.strip()) and "queued model job" in trained.stderr
    assert "warning: No GPU worker is running" in trained.stderr


def test_refusals_are_clear_and_leave_nothing_behind(settings, tmp_path):
    jobs = ["--jobs-dir", settings.jobs_dir, "--redis-url", settings.redis_url]
    missing = run(["dataset", "create"] + jobs + ["--images", "nope/images", "--labels", "nope/labels", "--now"],
                  cwd=str(tmp_path))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "%s does not exist" % "nope/images" in missing.stderr and "is not a folder" not in missing.stderr
    assert "nope/labels does not exist" in missing.stderr  # every problem at once
    synthcity.generate(str(tmp_path / "city"), 3, size=(24, 16), seed=4)
    os.remove(sorted((tmp_path / "city" / "labels").iterdir())[0])
    unpaired = run(["dataset", "create"] + jobs + ["--images", "city/images", "--labels", "city/labels", "--now"],
                   cwd=str(tmp_path))
    assert unpaired.returncode == 2 and "have no label with the same name" in unpaired.stderr, unpaired.stderr
    assert not [n for n in os.listdir(settings.jobs_dir) if not n.startswith(".")]  # no job left in error

    count = run(["demo-data", str(tmp_path / "demo"), "--count", "-5"])
    assert count.returncode == 2 and "--count must be between 1 and" in count.stderr
    assert not (tmp_path / "demo").exists()
    shape = run(["network", "show", "tiny-fcn", "--input", "3x64"])
    assert shape.returncode == 2 and "give channels, height and width" in shape.stderr


def test_a_closed_pipe_ends_jobs_list_quietly(settings):
    store = JobStore(settings.jobs_dir)
    for i in range(3):
        store.create("check", "job %d" % i, {})
    out = run(["jobs", "list", "--jobs-dir", settings.jobs_dir, "--redis-url", settings.redis_url],
              shell_tail="| true")  # the reader is gone before the first line is written
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr
    assert out.stdout.strip() in ("rc=141", "rc=0")
