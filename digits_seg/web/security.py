"""CSRF protection for forms and the optional access token for every write."""

import hmac
import secrets

from flask import Blueprint, redirect, render_template, request, session, url_for

from ..errors import DigitsSegError, ValidationError

bp = Blueprint("auth", __name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
API_CLIENT_HEADER = "X-Requested-With"


class ForbiddenError(DigitsSegError):
    status = 403


class UnauthorizedError(DigitsSegError):
    status = 401


def csrf_token():
    """The session's CSRF token (created on first use); templates put it in every form."""
    token = session.get("csrf_token")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf_token"] = token
    return token


def check_request(settings):
    """Run before every request: enforce the access token and CSRF on writes."""
    if request.method in SAFE_METHODS or request.endpoint in ("auth.login", "static"):
        return
    bearer = _bearer_token()
    if settings.auth_token:
        authorised = (bearer and hmac.compare_digest(bearer, settings.auth_token)) or session.get("authorised")
        if not authorised:
            raise UnauthorizedError("This server requires an access token for changes: log in at /login, or "
                                    "send the header `Authorization: Bearer <token>`.")
    # A cross-site page can post forms with the user's cookies, but cannot send JSON or
    # custom headers without a CORS preflight (which we never grant), so those are safe.
    if bearer or request.is_json or request.headers.get(API_CLIENT_HEADER):
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf_token", "")
    if not (sent and expected and hmac.compare_digest(sent, expected)):
        raise ForbiddenError("The form expired or came from another site (missing CSRF token). Reload the page "
                             "and submit again. API clients: send JSON, or the header "
                             "`X-Requested-With: digits-seg`.")


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
        token = request.form.get("token", "")
        if settings.auth_token and hmac.compare_digest(token, settings.auth_token):
            session["authorised"] = True
            target = request.args.get("next") or url_for("home.index")
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("home.index")
            return redirect(target)
        error = ValidationError("Wrong token.", field="token")
    return render_template("auth/login.html", error=error, needs_token=bool(settings.auth_token)), (
        400 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    session.pop("authorised", None)
    return redirect(url_for("home.index"))
