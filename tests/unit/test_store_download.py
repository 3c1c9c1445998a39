"""store.download on local files: limits, checksums, abort; nothing is kept on failure."""

import hashlib
import os

import pytest

from digits_seg.errors import JobAborted
from digits_seg.store.download import DownloadError, download


@pytest.fixture
def blob(tmp_path):
    data = os.urandom(300_000)
    path = tmp_path / "src.bin"
    path.write_bytes(data)
    return str(path), data


def test_copy_verifies_every_published_hash(tmp_path, blob):
    src, data = blob
    dest = str(tmp_path / "out.bin")
    seen = []
    r = download(src, dest, max_bytes=10 ** 6, sha256=hashlib.sha256(data).hexdigest(),
                 hashes={"md5": hashlib.md5(data).hexdigest()}, size=len(data),
                 on_progress=lambda d, t: seen.append((d, t)))
    assert open(dest, "rb").read() == data
    assert r["sha1"] == hashlib.sha1(data).hexdigest() and r["size"] == len(data)
    assert seen[-1] == (len(data), len(data)) and len(seen) >= 2


@pytest.mark.parametrize("kw, message", [
    ({"sha256": "0" * 64}, "sha256 mismatch"),
    ({"hashes": {"sha1": "0" * 40}}, "sha1 mismatch"),
    ({"size": 5}, "the store says 5"),
    ({"max_bytes": 1000}, "larger than the download limit"),
])
def test_failures_keep_nothing(tmp_path, blob, kw, message):
    src, _ = blob
    kw.setdefault("max_bytes", 10 ** 6)
    with pytest.raises(DownloadError, match=message):
        download(src, str(tmp_path / "out.bin"), **kw)
    assert sorted(os.listdir(tmp_path)) == ["src.bin"]


def test_abort_keeps_nothing(tmp_path, blob):
    src, _ = blob
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(JobAborted):
        download(src, str(tmp_path / "out.bin"), max_bytes=10 ** 6, should_stop=stop)
    assert sorted(os.listdir(tmp_path)) == ["src.bin"]


def test_missing_source(tmp_path):
    with pytest.raises(DownloadError, match="does not exist"):
        download(str(tmp_path / "nope"), str(tmp_path / "out"), max_bytes=10)


def test_unknown_host_says_internet_is_needed():
    from digits_seg.store.download import DownloadError, _open_http

    with pytest.raises(DownloadError, match="needs internet access"):
        _open_http("http://no-such-host.invalid/weights.caffemodel", 0, 5)
