"""Ordered parallel map over pairs with a small process pool (in-process for small inputs)."""

import contextlib
import multiprocessing

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
    # spawn: safe inside threaded parents (web server, RQ) and never inherits CUDA state.
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(workers)
    try:
        yield pool.imap(fn, tasks, chunksize=2)
        pool.close()
    finally:
        pool.terminate()
        pool.join()
