"""Progress bars of the CLI: tqdm on a terminal; a line now and then when stderr is a file.

On a terminal a bar redraws itself in place. Redirected (`2> log`, a CI log, `nohup`), every
redraw would be one more line-sized frame in the file: a dataset of 10k pairs wrote thousands.
There the bar draws at most every `LOG_INTERVAL_S` seconds, plus its first and last state.
"""

import sys

LOG_INTERVAL_S = 30.0
"""Seconds between frames when stderr is not a terminal."""

FRACTION_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
"""Bars driven by a fraction 0..1 (jobs report fractions, not counts)."""


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def bar(iterable=None, file=None, **kwargs):
    """A tqdm bar on `file` (default: the current stderr), throttled when that is not a terminal."""
    from tqdm import tqdm

    file = file or sys.stderr
    if not _is_terminal(file):
        kwargs.setdefault("mininterval", LOG_INTERVAL_S)
        kwargs.setdefault("ascii", True)
    return tqdm(iterable, file=file, **kwargs)


def fraction_bar(desc, file=None, **kwargs):
    """A bar for a task that reports fractions: `show(bar, fraction, message)` moves it."""
    return bar(total=1000, desc=desc, file=file, bar_format=FRACTION_FORMAT, **kwargs)


def show(progress, fraction, message=""):
    """Move a `fraction_bar` to `fraction` with `message`; draws only when its interval allows."""
    progress.n = int(1000 * max(0.0, min(1.0, fraction)))
    progress.set_postfix_str(message, refresh=False)
    progress.update(0)


def say(progress, text, file=None):
    """Print a line above the bar: on a terminal the bar is redrawn under it; in a file the line is written
    alone (tqdm would write the bar again after every line)."""
    file = file or sys.stderr
    if _is_terminal(file):
        progress.write(text, file=file)
    else:
        print(text, file=file, flush=True)
