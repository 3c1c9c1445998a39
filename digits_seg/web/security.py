"""CSRF protection for forms and the optional access token for writes (and, by default, reads).

A login is a random session id kept in this app's memory (`Logins`) and in the signed
cookie, bound to a fingerprint of the token: logging out forgets the id, and a restart or
a new token forgets them all, so an old cookie stops working. Wrong tokens are counted per
client address and refused with 429 beyond `login_attempts` a minute.
"""

import collections
import hashlib
import hmac
import secrets
import threading
import time

from flask import Blueprint, redirect, render_template, request, session, url_for

from ..errors import DigitsSegError, ValidationError
from . import edge

bp = Blueprint("auth", __name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
API_CLIENT_HEADER = "X-Requested-With"


class ForbiddenError(DigitsSegError):
    status = 403


class UnauthorizedError(DigitsSegError):
    status = 401


class TooManyAttemptsError(DigitsSegError):
    status = 429


PUBLIC_ENDPOINTS = ("auth.login", "static", "assets.plotly_js")
"""Endpoints answered without the token even when reads are protected (the login page and its assets).
Their posts (the login form) still need the CSRF token."""

ATTEMPT_WINDOW_S = 60.0
"""Window over which wrong tokens are counted, in seconds."""


class Logins:
    """The live login sessions and recent wrong tokens of one app (kept in AppState, not a global)."""

    def __init__(self, token, max_attempts):
        self.fingerprint = hashlib.sha256(("digits-seg login:" + (token or "")).encode()).hexdigest()[:16]
        self.max_attempts = max_attempts
        self._sids = set()
        self._failures = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def open(self):
        sid = secrets.token_urlsafe(24)
        with self._lock:
            self._sids.add(sid)
        return {"sid": sid, "fp": self.fingerprint}

    def valid(self, login):
        if not isinstance(login, dict) or login.get("fp") != self.fingerprint:
            return False
        with self._lock:
            return login.get("sid") in self._sids

    def close(self, login):
        if isinstance(login, dict):
            with self._lock:
                self._sids.discard(login.get("sid"))

    def throttle(self, client):
        """Raise TooManyAttemptsError while `client` is over its wrong-token budget."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            while failures and now - failures[0] > ATTEMPT_WINDOW_S:
                failures.popleft()
            if failures and len(failures) >= self.max_attempts:
                wait = int(ATTEMPT_WINDOW_S - (now - failures[0])) + 1
                raise TooManyAttemptsError("Too many wrong tokens from %s; try again in %d s (setting "
                                           "DIGITS_SEG_LOGIN_ATTEMPTS)." % (client, wait))

    def failed(self, client):
        with self._lock:
            self._failures[client].append(time.monotonic())
            if len(self._failures) > 10_000:  # forget the oldest clients rather than grow without bound
                self._failures.pop(next(iter(self._failures)))


def _logins():
    from .helpers import state

    return state().extras["logins"]


def logged_in():
    """True when this request carries a live login (templates show "Log out" for it)."""
    return _logins().valid(session.get("login"))


def csrf_token():
    """The session's CSRF token (created on first use); templates put it in every form."""
    token = session.get("csrf_token")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf_token"] = token
    return token


def check_request(settings):
    """Run before every request: edge checks, then the access token (writes; reads too by default), CSRF."""
    edge.check_host(settings)
    edge.check_strings(settings)
    public = request.endpoint in PUBLIC_ENDPOINTS
    safe = request.method in SAFE_METHODS
    if public and safe:
        return None
    bearer = _bearer_token()
    if settings.auth_token and not public and (not safe or settings.reads_need_token):
        logins = _logins()
        authorised = logins.valid(session.get("login"))
        if not authorised and bearer is not None:
            logins.throttle(request.remote_addr)
            authorised = hmac.compare_digest(bearer.encode(), settings.auth_token.encode())
            if not authorised:
                logins.failed(request.remote_addr)
        if not authorised:
            from .helpers import wants_json

            if safe and not wants_json() and bearer is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if bearer is not None:  # "requires an access token" would send a client that sent one looking elsewhere
                raise UnauthorizedError("The token sent in `Authorization: Bearer …` is not this server's access "
                                        "token (the value of --auth-token / DIGITS_SEG_AUTH_TOKEN on the server).")
            raise UnauthorizedError("This server requires an access token%s: log in at /login, or send the header "
                                    "`Authorization: Bearer <token>`." % ("" if settings.reads_need_token
                                                                           else " for changes"))
    if safe:
        return None
    # A cross-site page can post forms with the user's cookies, but cannot send JSON or
    # custom headers without a CORS preflight (which we never grant), so those are safe.
    if bearer or request.is_json or request.headers.get(API_CLIENT_HEADER):
        return None
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf_token", "")
    if not (sent and expected and hmac.compare_digest(sent, expected)):
        raise ForbiddenError("The form expired or came from another site (missing CSRF token). Reload the page "
                             "and submit again. API clients: send JSON, or the header "
                             "`X-Requested-With: digits-seg`.")
    return None


def _bearer_token():
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


@bp.route("/login", methods=["GET", "POST"])
def login():
    from .helpers import state

    settings = state().settings
    error = None
    if request.method == "POST":
        logins = _logins()
        logins.throttle(request.remote_addr)
        token = request.form.get("token", "")
        if settings.auth_token and hmac.compare_digest(token.encode(), settings.auth_token.encode()):
            logins.close(session.get("login"))
            session["login"] = logins.open()
            target = request.args.get("next") or url_for("home.index")
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("home.index")
            return redirect(target)
        logins.failed(request.remote_addr)
        error = ValidationError("Wrong token.", field="token")
    return render_template("auth/login.html", error=error, needs_token=bool(settings.auth_token)), (
        400 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    _logins().close(session.pop("login", None))
    return redirect(url_for("home.index"))
