"""`create_app(settings)`: the Flask app, built per call (no module-level app)."""

import errno
import importlib
import importlib.util
import os
import secrets

from flask import Flask, jsonify, render_template, request

from ..config import load_settings, repo_root
from ..errors import DigitsSegError
from ..jobs.service import JobService
from ..space import disk_full_message
from ..jobs.store import JobStore
from . import edge, helpers, security, streams

FEATURE_BLUEPRINTS = ("datasets", "models", "compare", "inference", "store", "evaluation")
"""Blueprint modules in digits_seg/web/ registered when present (each exposes `bp`)."""


def create_app(settings=None, conn=None):
    """Build the app for `settings` (defaults from the environment)."""
    settings = settings or load_settings()
    root = repo_root()
    app = Flask("digits_seg", template_folder=os.path.join(root, "templates"),
                static_folder=os.path.join(root, "static"), static_url_path="/static")
    app.response_class = edge.SafeResponse
    app.config.update(
        SECRET_KEY=settings.secret_key or _persistent_secret(settings.jobs_dir),
        MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        JSON_SORT_KEYS=False,
    )
    store = JobStore(settings.jobs_dir)
    app.extensions["digits_seg"] = helpers.AppState(settings=settings, store=store,
                                                    service=JobService(settings, conn=conn, store=store))

    app.extensions["digits_seg"].extras["logins"] = security.Logins(settings.auth_token, settings.login_attempts)
    app.extensions["digits_seg"].extras["event_streams"] = streams.StreamLimiter(
        settings.max_event_streams, settings.max_event_streams_per_client)
    app.before_request(lambda: security.check_request(settings))
    app.after_request(edge.add_security_headers)
    app.json.sort_keys = False
    app.register_blueprint(security.bp)
    from . import assets, home, jobs

    app.register_blueprint(home.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(assets.bp)
    for name in FEATURE_BLUEPRINTS:
        module_name = "digits_seg.web." + name
        if importlib.util.find_spec(module_name) is not None:
            module = importlib.import_module(module_name)
            app.register_blueprint(module.bp)
            if hasattr(module, "init_app"):
                module.init_app(app)

    _register_error_handlers(app)
    app.jinja_env.globals.update(csrf_token=security.csrf_token, format_eta=helpers.format_eta,
                                 format_time=helpers.format_time, age=helpers.age, job_url=helpers.job_url,
                                 has_endpoint=lambda e: e in app.view_functions,
                                 auth_required=bool(settings.auth_token), delete_refusal=jobs.delete_refusal,
                                 logged_in=security.logged_in)
    app.add_template_filter(helpers.ticks, "ticks")
    app.add_template_filter(helpers.thousands, "thousands")
    return app


def _persistent_secret(jobs_dir):
    """A random key kept in the jobs dir so sessions survive restarts and are shared by threads."""
    os.makedirs(jobs_dir, exist_ok=True)
    path = os.path.join(jobs_dir, ".secret_key")
    try:
        with open(path) as f:
            key = f.read().strip()
            if key:
                return key
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def _register_error_handlers(app):
    """One error shape: HTML page or `{"error": {"message", "field", "errors"}}` with the 4xx/5xx code.

    `errors` lists every field problem (`{"field", "label", "message"}`) of a ValidationError;
    `message`/`field` are the first of them, so clients reading only those still work.
    """
    settings = app.extensions["digits_seg"].settings

    def respond(status, message, field=None, errors=()):
        message = edge.scrub_paths(edge.clean_text(str(message)), settings)
        # each field problem is shown too: scrub it like the message, or it shows what the message hides
        errors = [dict(e, message=edge.scrub_paths(edge.clean_text(str(e["message"])), settings))
                  if isinstance(e, dict) and "message" in e else e for e in errors]
        if helpers.wants_json():
            body = {"error": {"message": message, "field": field, "errors": list(errors)}}
            return jsonify(body), status
        return render_template("error.html", status=status, message=message, field=field, errors=list(errors)), status

    @app.errorhandler(DigitsSegError)
    def domain_error(exc):
        return respond(exc.status, exc.message, exc.field, getattr(exc, "errors", ()))

    @app.errorhandler(404)
    def not_found(exc):
        return respond(404, "Nothing here: %s" % request.path)

    @app.errorhandler(405)
    def method_not_allowed(exc):
        return respond(405, "%s is not allowed on %s" % (request.method, request.path))

    @app.errorhandler(413)
    def too_large(exc):
        return respond(413, "The upload is too large (limit %d MiB; setting DIGITS_SEG_MAX_UPLOAD_MB)."
                       % (app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)))

    @app.errorhandler(400)
    def bad_request(exc):
        return respond(400, getattr(exc, "description", None) or "Bad request")

    @app.errorhandler(Exception)
    def internal(exc):
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return respond(exc.code or 500, exc.description or exc.name)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return respond(507, disk_full_message(settings.jobs_dir))
        app.logger.exception("internal error on %s", request.path)
        return respond(500, "Internal error (%s). The server log has the details." % type(exc).__name__)
