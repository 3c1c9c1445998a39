"""Download one store file (http(s) or local) with a size limit, sha256 check and resume.

The bytes go to a sibling temp file that is renamed to the destination only after the
size and hash are verified, so a failed or aborted download leaves nothing behind. A
connection that drops mid-way is resumed with an HTTP Range request (when the server
honours it; otherwise the download restarts from zero) up to `retries` times.
"""

import hashlib
import http.client
import os
import shutil
import socket
import urllib.error
import urllib.request

from ..errors import JobAborted, ValidationError
from .index import StoreError, http_opener, is_http

CHUNK = 256 * 1024
"""Read size, in bytes."""

DEFAULT_TIMEOUT_S = 30.0
"""Socket timeout for one read, in seconds."""

DEFAULT_RETRIES = 3
"""How many times a dropped connection is resumed before giving up."""


class DownloadError(ValidationError):
    """A download failed (unreachable, too large, hash mismatch); nothing was kept."""


def _open_http(url, offset, timeout):
    req = urllib.request.Request(url, headers={"User-Agent": "digits-seg"})
    if offset:
        req.add_header("Range", "bytes=%d-" % offset)
    try:
        resp = http_opener().open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if 300 <= e.code < 400:
            raise DownloadError("%s: refusing redirect to %r: only http(s) redirects are followed"
                                % (url, e.headers.get("Location")))
        raise DownloadError("%s: HTTP %d %s" % (url, e.code, e.reason))
    except StoreError as e:
        raise DownloadError(e.message)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        if isinstance(reason, socket.gaierror):
            raise DownloadError("%s: the host cannot be found (%s). This file needs internet access from the "
                                "server; download it elsewhere and upload it as a pretrained model instead."
                                % (url, reason))
        raise DownloadError("%s: %s" % (url, reason))
    resumed = bool(offset) and resp.status == 206 and (
        resp.headers.get("Content-Range", "").startswith("bytes %d-" % offset))
    length = resp.headers.get("Content-Length")
    remaining = int(length) if length and length.isdigit() else None
    return resp, resumed, remaining


def _check_size(done, max_bytes, url):
    if done > max_bytes:
        raise DownloadError("%s is larger than the download limit of %d MiB "
                            "(DIGITS_SEG_MAX_DOWNLOAD_MB); raise the limit if you trust this file"
                            % (url, max_bytes // 2 ** 20))


HASHES = ("sha256", "sha1", "md5")
"""Digests computed while downloading; a store may publish any of them (sha256 preferred)."""


class _Hasher:
    """All of HASHES over the same bytes, so whatever checksum a store publishes can be verified."""

    def __init__(self):
        self.h = {name: hashlib.new(name) for name in HASHES}

    def update(self, chunk):
        for h in self.h.values():
            h.update(chunk)

    def digests(self):
        return {name: h.hexdigest() for name, h in self.h.items()}


def verify(url, result, expected):
    """Raise DownloadError when a digest in `expected` ({algo: hex}) differs from `result`.

    `sha256_prefix` is checked against the start of the sha256 (PyTorch hub's file-name hashes).
    """
    for algo, want in (expected or {}).items():
        if want and algo == "sha256_prefix":
            if not result.get("sha256", "").startswith(want.lower()):
                raise DownloadError("%s: sha256 %s does not start with %s, the hash prefix its publisher put in the "
                                    "file name; the download is corrupt or the file was replaced; nothing was kept"
                                    % (url, result.get("sha256"), want))
        elif want and result.get(algo) != want.lower():
            raise DownloadError("%s: %s mismatch (expected %s, got %s); the download is corrupt "
                                "or the file was replaced on the store; nothing was kept"
                                % (url, algo, want, result.get(algo)))


def download(url, dest, *, max_bytes, sha256=None, hashes=None, size=None, on_progress=None, should_stop=None,
             timeout=DEFAULT_TIMEOUT_S, retries=DEFAULT_RETRIES, log=None):
    """Fetch `url` (http(s) URL or local path) into `dest`; return {"size", "sha256", "sha1", "md5", "resumed"}.

    Args:
        max_bytes: refuse files larger than this, in bytes (checked before and while reading).
        sha256: expected lowercase hex digest, or None to only record it.
        hashes: other expected digests, {"sha1": hex, "md5": hex} (sha256 may be given here too).
        size: expected size in bytes, or None.
        on_progress: `on_progress(done_bytes, total_bytes_or_None)`.
        should_stop: polled per chunk; when true, JobAborted is raised and nothing is kept.
    """
    if size is not None and size > max_bytes:
        _check_size(size, max_bytes, url)
    tmp = dest + ".part"
    try:
        if is_http(url):
            result = _download_http(url, tmp, max_bytes, size, on_progress, should_stop, timeout, retries, log)
        else:
            result = _copy_local(url, tmp, max_bytes, on_progress, should_stop)
        if size is not None and result["size"] != size:
            raise DownloadError("%s: got %d bytes, the store says %d; the file on the store is "
                                "incomplete or was replaced" % (url, result["size"], size))
        verify(url, result, dict(hashes or {}, **({"sha256": sha256} if sha256 else {})))
        os.replace(tmp, dest)
        return result
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _copy_local(path, tmp, max_bytes, on_progress, should_stop):
    if not os.path.isfile(path):
        raise DownloadError("%s does not exist" % path)
    total = os.path.getsize(path)
    _check_size(total, max_bytes, path)
    h = _Hasher()
    done = 0
    with open(path, "rb") as src, open(tmp, "wb") as out:
        done = _copy_stream(src, out, h, done, total, max_bytes, path, on_progress, should_stop)
    return dict(h.digests(), size=done, resumed=0)


def _copy_stream(src, out, h, done, total, max_bytes, name, on_progress, should_stop):
    """Copy `src` to `out` in chunks, hashing and enforcing the size limit; return the byte count."""
    while True:
        if should_stop is not None and should_stop():
            raise JobAborted()
        chunk = src.read(CHUNK)
        if not chunk:
            return done
        done += len(chunk)
        _check_size(done, max_bytes, name)
        h.update(chunk)
        out.write(chunk)
        if on_progress:
            on_progress(done, total)


def _download_http(url, tmp, max_bytes, size, on_progress, should_stop, timeout, retries, log):
    h = _Hasher()
    done = 0
    total = size
    resumed = 0
    attempt = 0
    with open(tmp, "wb") as out:
        while True:
            resp, ok_resume, remaining = _open_http(url, done, timeout)
            if done and not ok_resume:
                # The server ignored the Range header: start again from byte 0.
                if log:
                    log("%s: server does not support resuming; restarting the download" % url)
                out.seek(0)
                out.truncate()
                h = _Hasher()
                done = 0
            elif done:
                resumed += 1
                if log:
                    log("%s: resuming at byte %d" % (url, done))
            if remaining is not None:
                total = done + remaining
                _check_size(total, max_bytes, url)
            try:
                with resp:
                    done = _copy_stream(resp, out, h, done, total, max_bytes, url, on_progress, should_stop)
                if total is not None and done < total:
                    raise ConnectionError("connection closed after %d of %d bytes" % (done, total))
                return dict(h.digests(), size=done, resumed=resumed)
            except (OSError, http.client.HTTPException) as e:
                done = out.tell()  # bytes written (and hashed) before the connection broke
                attempt += 1
                if attempt > retries:
                    raise DownloadError("%s: connection failed after %d retries (%s); try the import again"
                                        % (url, retries, e or e.__class__.__name__))
                if log:
                    log("%s: %s; retrying (%d/%d)" % (url, e or e.__class__.__name__, attempt, retries))


def copy_file(src, dst):
    """Copy a file to `dst` via a temp name (used for files that are already local and verified)."""
    tmp = dst + ".part"
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
