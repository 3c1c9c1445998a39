"""The ordered worker pool creation runs on: order, per-worker accumulators, failures, back-pressure."""

import os
import signal
import time

import pytest

from digits_seg.datasets import pool
from digits_seg.datasets.pool import CHUNK, WINDOW_PER_WORKER, WorkerFailed, ordered_map


class Count:
    """An accumulator: how many tasks this worker ran, and in which process."""

    def __init__(self):
        self.n, self.pid = 0, os.getpid()

    def finish(self):
        return {"n": self.n, "pid": self.pid}


def square(task, shared, acc):
    acc.n += 1
    return task * task + shared


def fail_at_13(task, shared, acc):
    if task == 13:
        raise ValueError("pair 13 is cursed")
    return task


def die_at_40(task, shared, acc):
    if task == 40:
        os._exit(3)
    return task


def killed_at_40(task, shared, acc):
    if task == 40:
        os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's out-of-memory killer does
    return task


def log_and_return(task, shared, acc):
    with open(shared, "a") as f:
        f.write("%d\n" % task)
    return task


def test_results_come_in_order_and_every_worker_hands_back_its_accumulator():
    tasks = list(range(200))
    with ordered_map(square, tasks, workers=2, shared=1, make_accumulator=Count) as m:
        out = list(m)
    assert out == [t * t + 1 for t in tasks]
    assert len(m.finals) == 2 and sum(f["n"] for f in m.finals) == 200
    assert os.getpid() not in {f["pid"] for f in m.finals}


def test_small_inputs_run_in_process_with_one_accumulator():
    n = pool.MIN_POOL_ITEMS - 1
    with ordered_map(square, list(range(n)), workers=2, shared=0, make_accumulator=Count) as m:
        assert list(m) == [i * i for i in range(n)]
    assert m.finals == [{"n": n, "pid": os.getpid()}]


def test_an_exception_in_a_worker_names_itself():
    with pytest.raises(WorkerFailed, match="ValueError: pair 13 is cursed"):
        with ordered_map(fail_at_13, list(range(100)), workers=2) as m:
            list(m)


def test_a_worker_that_dies_is_an_error_not_a_hang():
    with pytest.raises(WorkerFailed, match="stopped unexpectedly"):
        with ordered_map(die_at_40, list(range(100)), workers=2) as m:
            list(m)


def test_a_killed_worker_says_so():
    with pytest.raises(WorkerFailed, match="killed by SIGKILL: the system probably ran out of memory"):
        with ordered_map(killed_at_40, list(range(100)), workers=2) as m:
            list(m)


def test_workers_stay_a_bounded_window_ahead_of_a_slow_consumer(tmp_path):
    logfile = str(tmp_path / "ran.txt")
    with ordered_map(log_and_return, list(range(2000)), workers=2, shared=logfile) as m:
        it = iter(m)
        assert next(it) == 0
        time.sleep(1.0)  # plenty for 2 workers to run all 2000 trivial tasks if nothing held them back
        with open(logfile) as f:
            ran = len(f.read().split())
        procs = list(m._procs)
    # one chunk being consumed plus the window of credits, each up to CHUNK tasks
    assert ran <= (WINDOW_PER_WORKER * 2 + 1) * CHUNK
    assert all(not p.is_alive() for p in procs)  # leaving early stopped the workers


def test_the_spawn_path_works_when_the_parent_has_threads():
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        with ordered_map(square, list(range(40)), workers=2, shared=0, make_accumulator=Count) as m:
            assert list(m) == [i * i for i in range(40)]
    finally:
        stop.set()
        t.join()
    assert sum(f["n"] for f in m.finals) == 40


def pid_of(task, shared, acc):
    time.sleep(0.01)
    return os.getpid()


def _alive(pid):
    """Running (not gone, not a zombie waiting for a reaper)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_workers_die_with_a_parent_killed_outright():
    """SIGKILL of a dataset job's process (OOM killer, a dead work horse) must not leave its
    workers waiting for credits forever."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = ("import sys, time; sys.path.insert(0, %r)\n"
              "from tests.unit.test_dataset_pool import pid_of\n"
              "from digits_seg.datasets.pool import ordered_map\n"
              "with ordered_map(pid_of, list(range(400)), workers=2) as m:\n"
              "    seen = set()\n"
              "    for pid in m:\n"
              "        seen.add(pid)\n"
              "        if len(seen) == 2:\n"
              "            print(' '.join(map(str, seen)), flush=True)\n"
              "            time.sleep(120)\n" % root)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        proc.kill()
        proc.wait(10)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "pool workers outlived their killed parent"
    finally:
        proc.kill()
