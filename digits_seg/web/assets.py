"""Third-party browser code served from installed Python packages (no CDN, no copies in the repo)."""

import os

from flask import Blueprint, abort, send_file

bp = Blueprint("assets", __name__)


def plotly_js_path():
    import plotly

    path = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
    return path if os.path.exists(path) else None


@bp.route("/vendor/plotly.min.js")
def plotly_js():
    path = plotly_js_path()
    if not path:
        abort(404)
    return send_file(path, mimetype="application/javascript", max_age=86400)
