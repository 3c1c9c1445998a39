"""The pre-flight check of a layout dataset: the ordinary folder check on the layout's pairs.

Layouts whose labels are converted (COCO JSON, SBD .mat) are converted into a temporary
folder first, so the check decodes exactly what creation will store; the folder is removed
afterwards whatever happens.
"""

import shutil
import tempfile

from ..check import check_folders
from . import prepare


def check_dataset(params, settings=None, on_progress=None, should_stop=None, **kw):
    """`check_folders` for any params; for a layout with converted labels, convert into a temporary folder first."""
    if not params.get("layout"):
        return check_folders(params, settings, on_progress=on_progress, should_stop=should_stop, **kw)
    tmp = tempfile.mkdtemp(prefix="digits-seg-layout-check-")
    try:
        prepared = prepare(tmp, params, log=lambda t: None, on_progress=on_progress, should_stop=should_stop)
        rest = (lambda f, m: on_progress(0.2 + 0.8 * f, m)) if on_progress and prepared is not params else on_progress
        report = check_folders(prepared, settings, on_progress=rest, should_stop=should_stop, **kw)
        report.summary["layout"] = {"name": params["layout"], "root": params["layout_root"],
                                    "options": params.get("layout_options") or {}}
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
