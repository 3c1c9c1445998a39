"""The edge of the app: every request is checked here once, before any view runs.

    before_request: allowed Host → readable path/query/form/JSON (no NUL, no lone surrogates,
                    JSON parses and nests at most MAX_JSON_DEPTH deep) → views see clean text
    after_request:  security headers (CSP, X-Frame-Options, nosniff, Referrer-Policy)

Views can then trust that a client string encodes as UTF-8 and holds no NUL, so nothing a
client sends can end up in job.json (or a file name) and break a page later.
"""

import re

from flask import Response, request
from werkzeug.exceptions import BadRequest

from ..errors import ValidationError

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays/objects accepted in a JSON body (deeper bodies are refused with 400)."""

BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
"""NUL and lone surrogates: neither can be written to job.json, a file name or an HTML page."""

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")
"""Content-Security-Policy of every response: only our own scripts run (pages have no inline code;
the JSON data blocks are `type=application/json`); inline styles stay allowed for plotly."""

SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


class SafeResponse(Response):
    """A response whose text body can never fail to encode: lone surrogates become U+FFFD.

    Names written by older versions (or by hand) may hold lone surrogates; pages show them
    as "�" instead of answering 500 for everyone.
    """

    def set_data(self, value):
        if isinstance(value, str):
            value = value.encode("utf-8", "replace")
        super().set_data(value)


def allowed_hosts(settings):
    """The Host header values accepted: the setting, else the bind address and localhost; None: any."""
    if settings.allowed_hosts:
        hosts = tuple(h.lower() for h in settings.allowed_hosts)
        return None if "*" in hosts else hosts
    if settings.host in ("0.0.0.0", "", "::"):
        return None  # bound to every interface: the names it is reached by are unknown
    return (settings.host.lower(),) + LOCAL_NAMES


def check_host(settings):
    """Refuse requests whose Host is not ours (DNS rebinding: a hostile name pointing at 127.0.0.1)."""
    hosts = allowed_hosts(settings)
    if hosts is None:
        return
    host = (request.host or "").lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name not in hosts and host not in hosts:
        raise ValidationError("Host %r is not served here (setting DIGITS_SEG_ALLOWED_HOSTS; allowed: %s)"
                              % (clean_text(host)[:100], ", ".join(hosts)), field="Host")


def clean_text(text):
    """`text` with NUL and lone surrogates replaced, for echoing it in an error message."""
    return BAD_CHARS.sub("\ufffd", text)


def _refuse_text(value, where):
    if isinstance(value, str) and BAD_CHARS.search(value):
        bad = BAD_CHARS.search(value).group()
        what = "a NUL byte" if bad == "\x00" else "an invalid character (a lone UTF-16 surrogate)"
        raise ValidationError("%s contains %s; remove it and send valid UTF-8 text" % (where, what),
                              field=where if where.isidentifier() else None)


def check_strings(settings):
    """Refuse NUL and lone surrogates in the path, query, form fields, file names and JSON body."""
    _refuse_text(request.path, "the URL")
    for key, value in request.args.items(multi=True):
        _refuse_text(key, "a query parameter name")
        _refuse_text(value, key)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.is_json:
        _check_json()
        return
    if request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        for key, value in request.form.items(multi=True):
            _refuse_text(key, "a form field name")
            _refuse_text(value, key)
        for key, f in request.files.items(multi=True):
            _refuse_text(f.filename or "", "the name of the uploaded file (%s)" % key)


def _check_json():
    if not request.get_data(cache=True).strip():
        return
    try:
        body = request.get_json(cache=True)
    except RecursionError:
        raise ValidationError("invalid JSON: nested more than %d levels deep" % MAX_JSON_DEPTH, field="body")
    except BadRequest as exc:
        cause = exc.__cause__ or exc.__context__
        raise ValidationError("invalid JSON in the request body: %s" % (cause or "cannot be parsed"), field="body")
    stack = [(body, "body", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValidationError("invalid JSON: nested more than %d levels deep" % MAX_JSON_DEPTH, field="body")
        if isinstance(value, str):
            _refuse_text(value, where)
        elif isinstance(value, dict):
            for k, v in value.items():
                _refuse_text(k, "a JSON key")
                stack.append((v, k, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, where, depth + 1) for v in value)


def add_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def scrub_paths(message, settings):
    """Replace the server's own folders in a message shown to a client with their setting names."""
    from ..config import repo_root

    for folder, label in ((settings.jobs_dir, "<jobs_dir>"), (repo_root(), "<install>")):
        if folder and folder in message:
            message = message.replace(folder.rstrip("/"), label)
    return message
