"""safe_extract: hostile archives are refused before anything is written; good ones extract whole."""

import io
import os
import tarfile
import zipfile

import pytest

from digits_seg.errors import ValidationError
from digits_seg.safe_extract import extract_archive


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return str(path)


def _tar(path, members, mode="w:gz"):
    with tarfile.open(path, mode) as tf:
        for m in members:
            tf.addfile(*m)
    return str(path)


def _file_member(name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def _left_behind(tmp_path, dest):
    """Everything in tmp_path except the archives: must be empty after a refused extraction."""
    return [n for n in os.listdir(tmp_path) if not n.endswith((".zip", ".tar.gz", ".tar"))]


def test_zip_extracts_files_and_folders(tmp_path):
    arc = _zip(tmp_path / "a.zip", [("model/info.json", b"{}"), ("model/w.h5", b"x" * 100), ("top.txt", b"t")])
    files = extract_archive(arc, str(tmp_path / "out"))
    assert files == ["model/info.json", "model/w.h5", "top.txt"]
    assert (tmp_path / "out" / "model" / "w.h5").read_bytes() == b"x" * 100


def test_tar_gz_extracts(tmp_path):
    arc = _tar(tmp_path / "a.tar.gz", [_file_member("info.json", b'{"name": "m"}')])
    assert extract_archive(arc, str(tmp_path / "out")) == ["info.json"]
    assert (tmp_path / "out" / "info.json").read_bytes() == b'{"name": "m"}'


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt", "C:/evil.txt", "a\\..\\..\\evil"])
def test_zip_slip_names_rejected_and_nothing_written(tmp_path, name):
    arc = _zip(tmp_path / "slip.zip", [("ok.txt", b"fine"), (name, b"pwned")])
    with pytest.raises(ValidationError) as e:
        extract_archive(arc, str(tmp_path / "out"))
    assert "slip.zip" in e.value.message
    assert _left_behind(tmp_path, "out") == []
    assert not (tmp_path.parent / "evil.txt").exists()


def test_tar_symlink_rejected(tmp_path):
    link = tarfile.TarInfo("data")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc"
    arc = _tar(tmp_path / "link.tar.gz", [(link,), _file_member("data/passwd", b"x")])
    with pytest.raises(ValidationError, match="link"):
        extract_archive(arc, str(tmp_path / "out"))
    assert _left_behind(tmp_path, "out") == []


def test_tar_hardlink_and_device_rejected(tmp_path):
    hard = tarfile.TarInfo("h")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "../../x"
    with pytest.raises(ValidationError, match="link"):
        extract_archive(_tar(tmp_path / "h.tar.gz", [(hard,)]), str(tmp_path / "o1"))
    dev = tarfile.TarInfo("dev")
    dev.type = tarfile.CHRTYPE
    with pytest.raises(ValidationError, match="special file"):
        extract_archive(_tar(tmp_path / "d.tar.gz", [(dev,)]), str(tmp_path / "o2"))


def test_zip_symlink_rejected(tmp_path):
    path = tmp_path / "l.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ValidationError, match="symbolic link"):
        extract_archive(str(path), str(tmp_path / "out"))


def test_size_limit_counts_uncompressed_bytes(tmp_path):
    # 2 MiB of zeros compresses to a few KiB: the limit must apply to the expanded size.
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (2 * 1024 * 1024))
    assert os.path.getsize(path) < 100_000
    with pytest.raises(ValidationError, match="expands to more than"):
        extract_archive(str(path), str(tmp_path / "out"), max_bytes=1024 * 1024, max_ratio=10 ** 6)
    assert _left_behind(tmp_path, "out") == []


def test_file_count_limit(tmp_path):
    arc = _zip(tmp_path / "many.zip", [("f%d" % i, b"") for i in range(11)])
    with pytest.raises(ValidationError, match="more than 10 members"):
        extract_archive(arc, str(tmp_path / "out"), max_files=10)


def test_file_and_folder_with_same_name_rejected(tmp_path):
    arc = _zip(tmp_path / "clash.zip", [("a", b"file"), ("a/b", b"inside")])
    with pytest.raises(ValidationError, match="same name"):
        extract_archive(arc, str(tmp_path / "out"))
    assert _left_behind(tmp_path, "out") == []


def test_not_an_archive_and_existing_dest(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not an archive at all")
    with pytest.raises(ValidationError, match="not a zip or tar"):
        extract_archive(str(junk), str(tmp_path / "out"))
    arc = _zip(tmp_path / "a.zip", [("x", b"1")])
    (tmp_path / "exists").mkdir()
    with pytest.raises(ValidationError, match="already exists"):
        extract_archive(arc, str(tmp_path / "exists"))


def test_truncated_archive_reports_damage(tmp_path):
    arc = _tar(tmp_path / "t.tar.gz", [_file_member("a.bin", os.urandom(50_000))])
    data = open(arc, "rb").read()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValidationError, match="damaged or truncated"):
        extract_archive(str(cut), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
