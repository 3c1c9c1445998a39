"""Ordered parallel map over pairs with a few worker processes, each keeping its own accumulator.

Why not `multiprocessing.Pool`: creation needs (1) results in task order, with bounded memory
when the consumer falls behind, and (2) statistics over sampled images (the mean image) that
are cheapest to add up in the worker that already holds the decoded pixels. A Pool can give
(1) only with an unbounded result buffer and cannot return per-worker state at all, so
sampled arrays had to travel through its pipe or be decoded a second time in the parent.

Here workers claim chunks of consecutive tasks from a shared counter (dynamic balancing), but
only while they hold a credit: the parent returns one credit per chunk it has consumed, so at
most `WINDOW_PER_WORKER × workers` chunks are ever done but unconsumed. Each worker answers on
its own pipe; at the end it sends its accumulator, which the parent collects in `finals`.
"""

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import traceback

from ..procs import set_parent_death_signal

DEFAULT_WORKERS = 2
"""Decode/validate processes; the machines this targets have 2 cores."""

MIN_POOL_ITEMS = 32
"""Below this many items the pool's start-up cost outweighs its gain: work in-process."""

CHUNK = 8
"""Tasks per message: fewer, larger messages cost less IPC per task."""

WINDOW_PER_WORKER = 3
"""Chunks a worker may be ahead of the consumer (bounds memory when the parent is slow)."""


class WorkerFailed(RuntimeError):
    """A worker process raised or died; the message names what happened."""


class OrderedMap:
    """Iterate `fn(task, shared, accumulator)` over `tasks` in order; then `finals` holds each accumulator.

    `shared` is plain data given to every call (sent once per worker, not once per task);
    `make_accumulator()` (picklable) builds one accumulator per worker (or one in-process),
    which `fn` may update; at the end `finals` gets each one's `finish()` (or the accumulator
    itself), and an accumulator left early is `close()`d when it has that method.
    """

    def __init__(self, fn, tasks, workers=DEFAULT_WORKERS, shared=None, make_accumulator=None):
        self.fn, self.tasks, self.shared = fn, tasks, shared
        self.make_accumulator = make_accumulator or _no_accumulator
        self.workers = workers if workers > 1 and len(tasks) >= MIN_POOL_ITEMS else 0
        self.finals = []
        self._procs = []
        self._readers = []

    def __iter__(self):
        if not self.workers:
            return self._in_process()
        return self._pooled()

    def _in_process(self):
        acc = self.make_accumulator()
        try:
            for t in self.tasks:
                yield self.fn(t, self.shared, acc)
            self.finals.append(_finish(acc))
        finally:
            if hasattr(acc, "close"):  # left early: release what the accumulator holds
                acc.close()

    def _pooled(self):
        # fork is cheapest and needs no `__main__` guard, but forking a threaded process (web server,
        # a task with a heartbeat thread) can copy a held lock into the child: spawn there.
        ctx = multiprocessing.get_context("fork" if threading.active_count() == 1 else "spawn")
        nchunks = (len(self.tasks) + CHUNK - 1) // CHUNK
        counter = ctx.Value("l", 0)
        credits = ctx.Semaphore(WINDOW_PER_WORKER * self.workers)
        readers = {}
        for _ in range(self.workers):
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_worker, daemon=True,
                            args=(self.fn, self.tasks, self.shared, self.make_accumulator, counter, credits, w,
                                  os.getpid()))
            p.start()
            w.close()
            self._procs.append(p)
            self._readers.append(r)
            readers[r] = p
        pending, live = {}, dict(readers)
        for c in range(nchunks):
            while c not in pending:
                self._receive(live, pending)
            credits.release()
            yield from pending.pop(c)
        while live:
            self._receive(live, pending)

    def _receive(self, live, pending):
        """Wait for one message from any live worker; a worker that died silently is an error."""
        sentinels = {p.sentinel: (r, p) for r, p in live.items()}
        ready = multiprocessing.connection.wait(list(live) + list(sentinels))
        for obj in ready:
            if obj in live:
                try:
                    kind, a, b = obj.recv()
                except EOFError:
                    kind, a, b = "died", None, None
                if kind == "chunk":
                    pending[a] = b
                elif kind == "done":
                    self.finals.append(a)
                    del live[obj]
                elif kind == "error":
                    raise WorkerFailed("a dataset worker failed: %s\n%s" % (a, b))
                else:
                    proc = live[obj]
                    proc.join(1)
                    raise WorkerFailed(_died(proc))
                return
        for s in ready:  # a process ended but its pipe had nothing more to say
            r, p = sentinels[s]
            if r in live and not r.poll():
                p.join(1)
                raise WorkerFailed(_died(p))

    def close(self):
        for p in self._procs:
            if p.is_alive():
                p.terminate()
        for p in self._procs:
            p.join()
        for r in self._readers:
            r.close()
        self._procs, self._readers = [], []


def _died(proc):
    """Why a worker ended without a word: killed by a signal (SIGKILL: usually out of memory) or crashed."""
    code = proc.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals.__members__.values() else str(-code)
        hint = ": the system probably ran out of memory" if -code == signal.SIGKILL else ""
        return "a dataset worker process was killed by %s%s" % (name, hint)
    return ("a dataset worker process stopped unexpectedly (exit code %s) before it could report an error; "
            "its output is in the worker's log" % code)


def _no_accumulator():
    return None


def _finish(acc):
    """What a worker hands back at the end: `acc.finish()` when it has one, else `acc` itself."""
    return acc.finish() if hasattr(acc, "finish") else acc


def _worker(fn, tasks, shared, make_accumulator, counter, credits, out, parent_pid):
    # A parent killed outright (OOM killer, SIGKILL of a job's work horse) would leave this
    # process waiting for credits forever: have the kernel kill it with its parent instead.
    set_parent_death_signal(signal.SIGKILL, parent_pid)
    try:
        acc = make_accumulator()
        n = len(tasks)
        while True:
            credits.acquire()
            with counter.get_lock():
                c = counter.value
                counter.value += 1
            if c * CHUNK >= n:
                credits.release()  # let the other workers see the end too
                break
            out.send(("chunk", c, [fn(t, shared, acc) for t in tasks[c * CHUNK:(c + 1) * CHUNK]]))
        out.send(("done", _finish(acc), None))
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent, which re-raises
        try:
            out.send(("error", "%s: %s" % (type(e).__name__, e), traceback.format_exc()))
        except Exception:
            pass
    finally:
        out.close()


@contextlib.contextmanager
def ordered_map(fn, tasks, workers=DEFAULT_WORKERS, shared=None, make_accumulator=None):
    """An `OrderedMap` whose workers are stopped when the caller leaves (also early, on errors)."""
    m = OrderedMap(fn, tasks, workers, shared, make_accumulator)
    try:
        yield m
    finally:
        m.close()
