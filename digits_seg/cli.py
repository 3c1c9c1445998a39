"""`digits-seg` command line: parses arguments and calls library functions (see commands/)."""

import argparse
import importlib
import sys

from . import __version__
from .commands import COMMAND_MODULES
from .config import SETTINGS, load_settings
from .errors import DigitsSegError


def build_parser():
    parser = argparse.ArgumentParser(
        prog="digits-seg",
        description="DIGITS-style training server for semantic segmentation. "
                    "Settings come from DIGITS_SEG_* environment variables or the flags below.")
    parser.add_argument("--version", action="version", version="digits-seg " + __version__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--jobs-dir", dest="jobs_dir", default=None, help=_help("jobs_dir"))
    common.add_argument("--redis-url", dest="redis_url", default=None, help=_help("redis_url"))
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module("digits_seg.commands." + name)
        module.register(subparsers, common)
    return parser


def _help(name):
    s = next(s for s in SETTINGS if s.name == name)
    return "%s (env %s; default %r)" % (s.help, s.env, s.default)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name, None) is not None}
    try:
        settings = load_settings(overrides)
        return args.func(args, settings) or 0
    except DigitsSegError as exc:
        print("error: %s" % exc.message, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
