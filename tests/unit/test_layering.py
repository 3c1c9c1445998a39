"""Dependencies point one way (DESIGN.md): no domain module imports `jobs`, `web`, flask or rq.

The source is scanned with `ast` (relative imports resolved against the module's package), so a
lazy import inside a function counts as much as one at the top of the file.
"""

import ast
import os

import pytest

import digits_seg

PACKAGE_DIR = os.path.dirname(digits_seg.__file__)

DOMAIN = ["datasets", "networks", "training", "inference", "store"]
"""Domain packages: run in-process (tests, CLI --now) and know nothing of the queue or the web."""

BELOW_DOMAIN = ["config.py", "errors.py", "fsutil.py", "procs.py", "safe_extract.py", "uploads.py",
                "gpus.py"]
"""Package-root modules the domain uses: the same rule holds for them."""

FORBIDDEN = ("digits_seg.jobs", "digits_seg.web", "flask", "rq")


def _modules():
    for pkg in DOMAIN:
        for root, _dirs, files in os.walk(os.path.join(PACKAGE_DIR, pkg)):
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.join(root, name)
    for name in BELOW_DOMAIN:
        yield os.path.join(PACKAGE_DIR, name)


def _dotted(path, package_dir):
    rel = os.path.relpath(path, os.path.dirname(package_dir))[:-3].split(os.sep)
    return rel[:-1] if rel[-1] == "__init__" else rel


def imported_names(path, package_dir=PACKAGE_DIR):
    """Every absolute module name `path` imports (relative imports resolved)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    module = _dotted(path, package_dir)
    package = module if path.endswith("__init__.py") else module[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names.append(target)
                if not node.module:  # `from .. import jobs`
                    names.extend(target + "." + alias.name for alias in node.names)
            else:
                names.append(node.module)
    return names


def _forbidden(name):
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_domain_never_imports_jobs_web_flask_or_rq():
    offenders = []
    for path in _modules():
        for name in imported_names(path):
            if _forbidden(name):
                offenders.append("%s imports %s" % (os.path.relpath(path, PACKAGE_DIR), name))
    assert not offenders, "domain code must not depend on the queue or the web:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source, expected", [
    ("from ..jobs.uploads import adopt_stage\n", "digits_seg.jobs.uploads"),
    ("from .. import web\n", "digits_seg.web"),
    ("def f():\n    import rq\n", "rq"),
    ("from flask import request\n", "flask"),
])
def test_scanner_sees_each_kind_of_import(tmp_path, source, expected):
    # A scanner that missed relative or lazy imports would let the rule above pass vacuously.
    pkg = tmp_path / "digits_seg" / "datasets"
    pkg.mkdir(parents=True)
    path = pkg / "probe.py"
    path.write_text(source)
    names = imported_names(str(path), package_dir=str(tmp_path / "digits_seg"))
    assert expected in names and _forbidden(expected)
