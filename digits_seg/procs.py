"""Child processes that end with the process that started them (Linux), even if it is SIGKILLed."""

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1
"""prctl option: the signal the kernel sends a child when the thread that forked it exits."""


def set_parent_death_signal(sig, parent_pid):
    """In a child: have the kernel send `sig` to this process when its parent dies (Linux).

    `parent_pid` is the parent the caller expects: if it is already gone (it died before this
    call), the signal is sent now. No-op where prctl does not exist.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


def die_with_parent(sig=signal.SIGTERM):
    """A Popen `preexec_fn` making the child receive `sig` when its parent dies.

    `serve` runs its Redis and workers in their own sessions (a terminal's Ctrl-C must
    not hit them before `serve` stops them in order), so without this a `serve` killed
    outright (OOM killer, SIGKILL) would leave them running, holding the queue. No-op
    where prctl does not exist. The kernel tracks the forking *thread*: start children
    from a thread that lives as long as the process (the main or monitor thread).
    """
    parent = os.getpid()

    def preexec():
        set_parent_death_signal(sig, parent)

    return preexec
