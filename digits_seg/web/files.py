"""One way to serve a file of a job folder: resolve the path, confine it, then send it.

Every file route goes through `send_job_file`: the client's relative path is normalised
(no `..`, no absolute path, no NUL, no link leading out), must lie inside one of the
allowed entries of the job folder, and must be a regular file. So
`previews/val_previews/../job.json` is a 404, not job.json.
"""

import os

from flask import send_file

from ..errors import NotFoundError


def resolve(base, relpath, allowed):
    """The real path of `relpath` under `base` when it lies in one of `allowed` (names or folders), else 404.

    Args:
        allowed: top-level names inside `base`; a name matches itself and anything under it.
    """
    rel = str(relpath).replace("\\", "/")
    parts = rel.split("/")
    if "\x00" in rel or rel.startswith("/") or any(p in ("..", "") for p in parts):
        raise NotFoundError("no file %r here" % rel)
    root = os.path.realpath(base)
    path = os.path.realpath(os.path.join(root, *parts))
    inside = [os.path.join(root, a) for a in allowed]
    if not any(path == a or path.startswith(a + os.sep) for a in inside) or not os.path.isfile(path):
        raise NotFoundError("no file %r here" % rel)
    return path


def send_job_file(base, relpath, allowed, as_attachment=False, download_name=None, mimetype=None):
    """Send `relpath` of the folder `base` (see `resolve`), never cached (job files change)."""
    path = resolve(base, relpath, allowed)
    return send_file(path, as_attachment=as_attachment, download_name=download_name or os.path.basename(path),
                     mimetype=mimetype, max_age=0)
