"""Caps on live-update (SSE) streams: each open stream holds one web server thread.

Eight open `/jobs/<id>/events` streams used to take every thread and stall the server
for everyone. `StreamLimiter` admits at most `total` streams at once and `per_client`
per client address; a stream it refuses answers 503 at once (the page then polls the
JSON twin), and every admitted stream closes itself after a short lifetime (the browser
reconnects), so a thread is never held for long.
"""

import collections
import threading

from ..errors import DigitsSegError


class TooManyStreamsError(DigitsSegError):
    """Every stream slot (in total or for this client) is taken; poll instead."""

    status = 503


class StreamLimiter:
    """Counts open streams in total and per client (one per app, kept in AppState)."""

    def __init__(self, total, per_client):
        self.total, self.per_client = max(0, total), max(0, per_client)
        self._open = collections.Counter()
        self._lock = threading.Lock()

    def acquire(self, client):
        """Take a slot for `client` or raise TooManyStreamsError; pair with `release`."""
        with self._lock:
            if sum(self._open.values()) >= self.total:
                raise TooManyStreamsError("%d live-update streams are open (setting DIGITS_SEG_MAX_EVENT_STREAMS); "
                                          "the page polls instead" % self.total)
            if self._open[client] >= self.per_client:
                raise TooManyStreamsError("this client already has %d live-update streams open (setting "
                                          "DIGITS_SEG_MAX_EVENT_STREAMS_PER_CLIENT); the page polls instead"
                                          % self.per_client)
            self._open[client] += 1

    def release(self, client):
        with self._lock:
            self._open[client] -= 1
            if self._open[client] <= 0:
                del self._open[client]

    def count(self):
        with self._lock:
            return sum(self._open.values())
