"""Serve a store folder over HTTP for a team (`digits-seg store serve DIR --port N`).

A read-only static file server: GET/HEAD only, directory listings (the fallback index when
`master.json` is missing), single-range `Range: bytes=N-[M]` requests so interrupted
downloads resume, and no file outside the folder (paths are resolved and checked, symlinks
included). Threaded, so one slow client does not block the others.
"""

import http.server
import os
import re
import threading

DEFAULT_PORT = 5080
"""Port `digits-seg store serve` listens on when none is given."""

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class StoreRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Static files of one folder with Range support; quiet unless `verbose`."""

    verbose = False
    server_version = "digits-seg-store"

    def log_message(self, fmt, *args):
        if self.verbose:
            super().log_message(fmt, *args)

    def translate_path(self, path):
        full = super().translate_path(path)
        root = os.path.realpath(self.directory)
        real = os.path.realpath(full)
        if real != root and not real.startswith(root + os.sep):
            # A symlink inside the store pointing outside it: refuse rather than leak files.
            return os.path.join(root, ".forbidden-outside-store")
        return full

    def send_head(self):
        path = self.translate_path(self.path)
        match = _RANGE.match(self.headers.get("Range", "").strip())
        if os.path.basename(path).startswith(".") and os.path.isfile(path):
            self.send_error(404, "File not found")
            return None
        if not match or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else size - 1
        if start >= size or end < start:
            self.send_response(416)
            self.send_header("Content-Range", "bytes */%d" % size)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        end = min(end, size - 1)
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._range_left = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        left = getattr(self, "_range_left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        while left > 0:
            chunk = source.read(min(64 * 1024, left))
            if not chunk:
                break
            outputfile.write(chunk)
            left -= len(chunk)
        self._range_left = None

    def end_headers(self):
        if not self.headers.get("Range"):
            self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def do_POST(self):
        self.send_error(405, "The store is read-only")

    do_PUT = do_DELETE = do_PATCH = do_POST


def make_server(directory, host="127.0.0.1", port=DEFAULT_PORT, verbose=False):
    """A ThreadingHTTPServer for `directory` (port 0 picks a free port: read `server.server_address`)."""
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        from ..errors import NotFoundError
        raise NotFoundError("store folder %s does not exist" % directory)

    class Handler(StoreRequestHandler):
        pass

    Handler.verbose = verbose

    def factory(*args, **kwargs):
        return Handler(*args, directory=directory, **kwargs)

    server = http.server.ThreadingHTTPServer((host, port), factory)
    server.daemon_threads = True
    return server


def serve(directory, host="127.0.0.1", port=DEFAULT_PORT, verbose=True):
    """Serve `directory` until interrupted (Ctrl-C)."""
    server = make_server(directory, host, port, verbose=verbose)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def serve_in_thread(directory, host="127.0.0.1", port=0):
    """Start a server in a daemon thread; return (server, base_url). Stop with `server.shutdown()`."""
    server = make_server(directory, host, port, verbose=False)
    thread = threading.Thread(target=server.serve_forever, name="store-server", daemon=True)
    thread.start()
    h, p = server.server_address[:2]
    return server, "http://%s:%d/" % (h, p)
