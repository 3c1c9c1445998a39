"""Extract untrusted zip/tar archives without letting them write outside the destination.

Archives come from users (dataset uploads, DIGITS model archives) and from model stores,
so every member is checked before anything is written: no absolute paths, no `..`
components, no device files, no links at all (a link is the classic way to escape a
folder on a later write), and limits on the total uncompressed size and the member
count (zip bombs). Extraction goes to a sibling temp folder that is renamed to `dest`
only when everything succeeded, so a half-extracted folder never looks complete.
"""

import os
import shutil
import stat
import tarfile
import zipfile
import zlib

from .errors import ValidationError
from .fsutil import temp_path_for

DEFAULT_MAX_BYTES = 4 * 1024 ** 3
"""Largest total uncompressed size accepted, in bytes."""

DEFAULT_MAX_FILES = 100_000
"""Largest number of members accepted."""

DEFAULT_MAX_RATIO = 200
"""Largest uncompressed/compressed size of a zip member (images barely compress; bombs do 1000x)."""

RATIO_FLOOR_BYTES = 1024 ** 2
"""Members smaller than this (uncompressed) are not ratio-checked: tiny text files compress well."""

CHUNK = 1024 * 1024
"""Copy buffer, in bytes."""


def archive_kind(path):
    """Return "zip" or "tar" (sniffed from the content, not the name), or raise ValidationError."""
    if os.path.getsize(path) == 0:
        raise ValidationError("%s is empty (0 bytes); choose the archive again" % os.path.basename(path))
    if zipfile.is_zipfile(path):
        return "zip"
    with open(path, "rb") as f:
        head = f.read(4)
    if head in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip whose end (the central directory) is missing
        raise ValidationError("%s is a truncated or damaged zip archive (its end is missing; was the upload or "
                              "download interrupted?); re-create or re-upload it" % os.path.basename(path))
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    raise ValidationError(
        "%s is not a zip or tar archive (.zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz are accepted)"
        % os.path.basename(path))


def _clean_member_name(name, archive):
    """Return the member's relative path split into parts, or raise if it could escape."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ValidationError("archive %s contains an absolute path %r; re-create it with relative paths"
                              % (archive, name))
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValidationError("archive %s contains a path with '..' (%r), which could write outside "
                              "the destination folder; re-create it without '..'" % (archive, name))
    if any("\x00" in p for p in parts):
        raise ValidationError("archive %s contains a member name with a NUL byte" % archive)
    return parts


def _plan_zip(zf, archive, max_ratio=DEFAULT_MAX_RATIO):
    """Yield (parts, is_dir, size, member) for each zip member after checking it."""
    for info in zf.infolist():
        parts = _clean_member_name(info.filename, archive)
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > max_ratio * max(1, info.compress_size):
            raise ValidationError("archive %s member %r expands %d times (%d MiB from %d KiB): a zip bomb? At most "
                                  "%dx is accepted (setting DIGITS_SEG_MAX_ZIP_RATIO)"
                                  % (archive, info.filename, info.file_size // max(1, info.compress_size),
                                     info.file_size // 2 ** 20, info.compress_size // 1024, max_ratio))
        mode = (info.external_attr >> 16) & 0xFFFF
        if mode and stat.S_ISLNK(mode):
            raise ValidationError("archive %s contains a symbolic link %r; links are not accepted, "
                                  "store the file itself" % (archive, info.filename))
        if info.flag_bits & 0x1:
            raise ValidationError("archive %s member %r is encrypted; encrypted archives are not supported"
                                  % (archive, info.filename))
        if parts:
            yield parts, info.is_dir(), info.file_size, info


def _plan_tar(tf, archive):
    """Yield (parts, is_dir, size, member) for each tar member after checking it."""
    for member in tf:
        parts = _clean_member_name(member.name, archive)
        if member.issym() or member.islnk():
            raise ValidationError("archive %s contains a link %r -> %r; links are not accepted, store "
                                  "the file itself" % (archive, member.name, member.linkname))
        if not (member.isfile() or member.isdir()):
            raise ValidationError("archive %s member %r is a device, fifo or other special file; only "
                                  "regular files and folders are accepted" % (archive, member.name))
        if parts:
            yield parts, member.isdir(), member.size, member


def _check_limits(plan, archive, max_bytes, max_files):
    total = 0
    for count, (parts, is_dir, size, _member) in enumerate(plan, start=1):
        if count > max_files:
            raise ValidationError("archive %s has more than %d members; split it or raise the limit"
                                  % (archive, max_files))
        total += 0 if is_dir else size
        if total > max_bytes:
            raise ValidationError("archive %s expands to more than %d MiB; the limit is %d MiB"
                                  % (archive, total // 2 ** 20, max_bytes // 2 ** 20))
    return total


def _copy_limited(src, dst_path, budget, archive, name):
    """Copy a member stream to a new file, refusing to write more than `budget` bytes."""
    written = 0
    with open(dst_path, "xb") as out:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > budget:
                raise ValidationError("archive %s member %r is larger than its header says (or the "
                                      "archive exceeds its size limit); the archive is corrupt or hostile"
                                      % (archive, name))
            out.write(chunk)
    return written


def extract_archive(path, dest, max_bytes=DEFAULT_MAX_BYTES, max_files=DEFAULT_MAX_FILES, max_ratio=DEFAULT_MAX_RATIO):
    """Extract the zip or tar at `path` into the new folder `dest` safely; return the file list.

    Args:
        dest: must not exist yet; it appears (by rename) only after a complete extraction.
        max_bytes: limit on the total uncompressed size, in bytes.
        max_files: limit on the number of members (files and folders).
        max_ratio: limit on a zip member's uncompressed/compressed size (zip bombs).

    Returns a sorted list of extracted file paths relative to `dest` ("/"-separated).
    """
    archive = os.path.basename(path)
    if os.path.lexists(dest):
        raise ValidationError("cannot extract %s: %s already exists" % (archive, dest))
    kind = archive_kind(path)
    tmp = temp_path_for(dest)
    if os.path.lexists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    try:
        files = _extract_into(path, kind, tmp, archive, max_bytes, max_files, max_ratio)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


def _extract_into(path, kind, root, archive, max_bytes, max_files, max_ratio=DEFAULT_MAX_RATIO):
    opener = zipfile.ZipFile if kind == "zip" else tarfile.open
    try:
        with opener(path) as ar:
            plan = list(_plan_zip(ar, archive, max_ratio) if kind == "zip" else _plan_tar(ar, archive))
            _check_limits(plan, archive, max_bytes, max_files)
            budget = max_bytes
            files = []
            seen = set()
            for parts, is_dir, _size, member in plan:
                rel = "/".join(parts)
                target = os.path.join(root, *parts)
                if is_dir:
                    os.makedirs(target, exist_ok=True)
                    continue
                if rel in seen:
                    raise ValidationError("archive %s contains %r twice; remove the duplicate" % (archive, rel))
                seen.add(rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                src = ar.open(member) if kind == "zip" else ar.extractfile(member)
                with src:
                    budget -= _copy_limited(src, target, budget, archive, rel)
                files.append(rel)
    except (FileExistsError, NotADirectoryError) as e:
        raise ValidationError("archive %s has a file and a folder with the same name (%s); rename one"
                              % (archive, os.path.relpath(e.filename or root, root)))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as e:
        raise ValidationError("archive %s is damaged or truncated (%s); re-create or re-download it"
                              % (archive, e))
    return sorted(files)
