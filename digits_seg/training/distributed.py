"""Single-node DistributedDataParallel: N training processes on the worker's machine.

    launch(...)                         in the RQ work horse (never touches CUDA: it forked)
      ├─ spawns N processes (start method "spawn": each one initialises CUDA itself)
      │     rank r: init_process_group(nccl on cuda:r | gloo on CPU) → trainer.train(..., ddp=Rank)
      ├─ relays rank 0's log lines / progress to the job's callbacks (a multiprocessing queue)
      ├─ turns should_stop() into a shared event; ranks agree on it every iteration (all-reduce)
      └─ returns rank 0's summary, or raises the first rank's error (JobAborted, ValidationError)

Devices: `gpus:N` runs rank r on cuda:r with NCCL; `cpus:N` runs the very same code on the
CPU with gloo (for machines without GPUs and so that CI can test this path). Batch size is
per process (as Caffe's multi-GPU was): the effective batch is N × batch × iter_size, and an
epoch (one pass over the data) takes N times fewer iterations.

Only rank 0 writes job files (metrics.jsonl, snapshots, best.h5, previews, log, progress);
every rank computes the same validation metrics because the confusion matrix, loss and pixel
counts are summed over ranks, and each validation image is seen by exactly one rank.
"""

import os
import queue as queue_module
import time
import traceback
import uuid

from ..errors import DigitsSegError, JobAborted, ValidationError

ERROR_GRACE_S = 15
"""Seconds the other ranks get to stop by themselves after one rank failed, before they are killed."""


def parse_device(device):
    """(backend, world_size) for a 'gpus:N[@host]' / 'cpus:N' device; None for single-process devices."""
    kind, _, rest = (device or "").partition(":")
    if kind not in ("gpus", "cpus"):
        return None
    return ("nccl" if kind == "gpus" else "gloo"), int(rest.partition("@")[0])


class Rank:
    """What a training process knows about its place in the group (passed to trainer.train as `ddp`)."""

    def __init__(self, rank, world_size, backend, stop_event):
        self.rank, self.world_size, self.backend = rank, world_size, backend
        self.main = rank == 0
        self.stop_event = stop_event
        self.parent = os.getppid()

    def device(self):
        import torch

        if self.backend == "nccl":
            return torch.device("cuda", self.rank)
        return torch.device("cpu")

    def wrap(self, net):
        """`net` wrapped in DistributedDataParallel (broadcasts rank 0's weights, averages gradients)."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.rank] if self.backend == "nccl" else None
        return DistributedDataParallel(net, device_ids=ids)

    def sync_buffers(self, net):
        """Give every rank rank 0's buffers (BatchNorm running statistics drift apart between the
        forward passes' broadcasts), so all ranks validate the very weights rank 0 snapshots."""
        import torch.distributed as dist

        for buf in net.buffers():
            dist.broadcast(buf, 0)

    def sum_(self, tensor):
        """Sum `tensor` over ranks in place (and return it)."""
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any_stop(self, device):
        """True on every rank when any rank was asked to stop (or lost its parent): one all-reduce."""
        import torch

        local = self.stop_event.is_set() or os.getppid() != self.parent
        flag = torch.tensor([1.0 if local else 0.0], device=device)
        return bool(self.sum_(flag).item() > 0)


def shard(indices, rank, world_size, pad):
    """This rank's part of `indices` (strided, as DistributedSampler does).

    `pad` repeats the first indices so every rank gets as many (training: all ranks must take
    the same number of steps, or the gradient all-reduce would wait forever); without it the
    shards are disjoint and cover every index once (validation: every pixel counted once).
    """
    indices = list(indices)
    if pad and len(indices) % world_size:
        extra = world_size - len(indices) % world_size
        indices += (indices * (extra // max(1, len(indices)) + 1))[:extra]
    return indices[rank::world_size]


def _rank_main(rank, world_size, backend, init_file, stop_event, events, kwargs):
    """Entry point of one spawned training process; reports its outcome on `events`."""
    import torch
    import torch.distributed as dist

    def send(*msg):
        events.put(msg)

    try:
        if backend == "nccl":
            if torch.cuda.device_count() < world_size:
                raise ValidationError(
                    "This job asks for %d GPUs but the worker sees %d (CUDA_VISIBLE_DEVICES=%r): run it on a "
                    "worker started with `digits-seg worker --gpu all` on a machine with enough GPUs" % (
                        world_size, torch.cuda.device_count(), os.environ.get("CUDA_VISIBLE_DEVICES")),
                    field="device")
            torch.cuda.set_device(rank)
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        dist.init_process_group(backend, init_method="file://" + init_file, rank=rank, world_size=world_size)
        from .trainer import train

        ddp = Rank(rank, world_size, backend, stop_event)
        main = ddp.main
        result = train(on_progress=(lambda f, m="": send("progress", f, m)) if main else (lambda f, m="": None),
                       should_stop=lambda: False, log=(lambda text: send("log", text)) if main else (lambda t: None),
                       ddp=ddp, **kwargs)
        if main:
            send("done", result)
    except JobAborted:
        send("aborted", rank)
    except DigitsSegError as exc:
        send("error", rank, type(exc).__name__, str(exc), getattr(exc, "field", None), "")
    except BaseException as exc:  # reported to the parent, which raises it as the job's error
        send("error", rank, type(exc).__name__, "%s: %s" % (type(exc).__name__, exc), None, traceback.format_exc())
    finally:
        try:
            if dist.is_initialized():
                dist.destroy_process_group()
        except Exception:
            pass


def launch(job_dir, params, *, on_progress, should_stop, log, backend, world_size, **kwargs):
    """Run `trainer.train` in `world_size` spawned processes and return rank 0's summary."""
    import torch.multiprocessing as mp

    if backend == "nccl":
        from ..gpus import list_gpus

        visible = len(list_gpus())  # nvidia-smi: no CUDA context in this (forked) process
        if visible < world_size:
            raise ValidationError(
                "This job asks for %d GPUs (device %s) but this worker's machine shows %d to it: start a worker "
                "with `digits-seg worker --gpu all` on a machine with at least %d GPUs, or ask for fewer" % (
                    world_size, params.get("device"), visible, world_size), field="device")
    ctx = mp.get_context("spawn")
    stop_event, events = ctx.Event(), ctx.Queue()
    init_file = os.path.join(job_dir, ".ddp_rendezvous_%s" % uuid.uuid4().hex)
    args = dict(kwargs, job_dir=job_dir, params=params)
    log("DistributedDataParallel: %d processes, backend %s (batch %s per process)" % (
        world_size, backend, params.get("batch_size")))
    procs = [ctx.Process(target=_rank_main, args=(r, world_size, backend, init_file, stop_event, events, args),
                         name="train-rank%d" % r) for r in range(world_size)]
    for p in procs:
        p.start()
    outcome, failed_at = None, None
    try:
        while True:
            if should_stop():
                stop_event.set()
            try:
                msg = events.get(timeout=0.2)
            except queue_module.Empty:
                msg = None
            if msg is not None:
                kind = msg[0]
                if kind == "progress":
                    on_progress(msg[1], msg[2])
                elif kind == "log":
                    log(msg[1])
                elif outcome is None or (outcome[0] == "aborted" and kind == "error"):
                    outcome = msg
                    failed_at = failed_at or (time.time() if kind != "done" else None)
                continue
            if all(p.exitcode is not None for p in procs):
                break
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead and outcome is None:
                outcome = ("error", None, "RuntimeError", "training process %s died (exit code %s)" % (
                    dead[0].name, dead[0].exitcode), None, "")
                failed_at = time.time()
            if failed_at is not None and time.time() - failed_at > ERROR_GRACE_S:
                break  # the other ranks wait in a collective for the failed one: stop them
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        events.close()
        if os.path.exists(init_file):
            os.unlink(init_file)
    return _result(outcome)


def _result(outcome):
    if outcome is None:
        raise DigitsSegError("The training processes exited without a result", detail="")
    kind = outcome[0]
    if kind == "done":
        return outcome[1]
    if kind == "aborted":
        raise JobAborted()
    _, rank, name, message, field, tb = outcome
    where = "" if rank is None else " (training process rank %d)" % rank
    if name == "ValidationError":
        raise ValidationError(message, field=field)
    if name == "JobAborted":
        raise JobAborted()
    raise DigitsSegError(message + where, field=field, detail=tb)
