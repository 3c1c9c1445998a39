"""`digits-seg` command line: parses arguments and calls library functions (see commands/)."""

import argparse
import importlib
import os
import sys

from . import __version__
from .commands import COMMAND_MODULES
from .commands.options import Parser, add_setting
from .config import SETTINGS, load_settings
from .errors import DigitsSegError


def build_parser():
    parser = Parser(
        prog="digits-seg",
        description="DIGITS-style training server for semantic segmentation. "
                    "Settings come from DIGITS_SEG_* environment variables or the flags below.")
    parser.add_argument("--version", action="version", version="digits-seg " + __version__)
    # `--jobs-dir`/`--redis-url`, for the sub-commands that use the job queue (others leave them out).
    common = argparse.ArgumentParser(add_help=False)
    add_setting(common, "jobs_dir")
    add_setting(common, "redis_url")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module("digits_seg.commands." + name)
        module.register(subparsers, common)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name, None) is not None}
    try:
        settings = load_settings(overrides)
        return args.func(args, settings) or 0
    except DigitsSegError as exc:
        errors = getattr(exc, "errors", None) or []
        for line in [e["message"] for e in errors] if len(errors) > 1 else [exc.message]:
            print("error: %s" % line, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`digits-seg jobs list | head`): stop quietly, as other Unix tools do.
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
