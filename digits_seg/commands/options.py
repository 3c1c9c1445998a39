"""CLI options made from declarations: a job kind's fields (`declare.specs`) and the server settings (`config.SETTINGS`).

Every option gets its declared help, what it accepts and its default, so `--help`, the
form and the README say the same thing (a test compares them).
"""

import argparse

from ..config import SETTINGS_BY_NAME
from ..declare import specs

METAVARS = {"int": "N", "float": "X", "list": "X[,X...]", "choice": None, "bool": None}


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default (unless its help already says it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (action.option_strings and action.nargs != 0 and action.default not in (None, argparse.SUPPRESS)
                and "default" not in text.lower()):
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose sub-commands (made with `add_subparsers`) all use `HelpFormatter`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def declared_help(spec):
    """`--help` text of a declared field: its help, what it accepts, its default."""
    parts = [spec.help.rstrip(".") + "."]
    allowed = spec.allowed or spec.range_text
    if allowed and spec.kind != "bool":
        parts.append("Allowed: %s." % allowed)
    if spec.kind == "bool":
        parts.append("Default: %s." % ("on; this flag turns it off" if spec.default else "off"))
    else:
        parts.append("Default: %s." % spec.shown_default)
    return " ".join(parts).replace("%", "%%")


def add_declared(parser, model, skip=(), required=()):
    """Add one option per declared field of `model` that has a CLI flag (dest = the field name, default None)."""
    for spec in specs(model):
        if spec.name in skip or not spec.flag:
            continue
        if spec.kind == "bool":
            parser.add_argument(spec.flag, dest=spec.name, action="store_const", const=not spec.default,
                                default=None, help=declared_help(spec))
            continue
        metavar = METAVARS.get(spec.kind, spec.name.upper())
        if spec.kind == "choice":
            metavar = "{%s}" % ",".join(spec.choices)
        parser.add_argument(spec.flag, dest=spec.name, default=None, metavar=metavar,
                            required=spec.name in required, help=declared_help(spec))


def declared_values(args, model):
    """The parsed options of `model`'s fields that were given (None = not given)."""
    return {s.name: getattr(args, s.name) for s in specs(model) if getattr(args, s.name, None) is not None}


def setting_help(name):
    """`--help` text of a server setting (config.SETTINGS)."""
    s = SETTINGS_BY_NAME[name]
    return ("%s (env %s; default: %s)" % (s.help, s.env, s.default if s.default else "empty")).replace("%", "%%")


def add_setting(parser, name):
    """The flag of one server setting, e.g. `--max-upload-mb` (default None: the environment or the default)."""
    s = SETTINGS_BY_NAME[name]
    parser.add_argument(s.flag, dest=name, default=None, metavar=name.upper(), help=setting_help(name))
