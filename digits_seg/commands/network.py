"""`network show FILE|NAME` (layer table, checks) and `network list` (standard networks)."""

import json
import os
import re
import sys

from ..errors import ValidationError


def register(subparsers, common):
    """Add `network show` and `network list` to the `digits-seg` parser."""
    p = subparsers.add_parser("network", help="inspect Caffe network descriptions")
    sub = p.add_subparsers(dest="network_command", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("show",
                       help="print the layer table (shapes, parameters, lr_mult) and problems")
    s.add_argument("file", help="a .prototxt file or a standard network name (see `network list`)")
    s.add_argument("--input", default="3x224x224",
                   help="input size CxHxW (e.g. 3x375x500 for a 500x375 image)")
    s.add_argument("--phase", choices=["train", "val", "deploy"], default="deploy",
                   help="which phase's layers to show (include/exclude rules)")
    s.add_argument("--classes", type=int, default=21, help="class count for a standard network")
    s.add_argument("--json", action="store_true", help="print the table as JSON")
    s.set_defaults(func=cmd_show)
    ls = sub.add_parser("list", help="list the shipped standard networks")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    ls.set_defaults(func=cmd_list)


def parse_input_shape(text):
    """Parse 'CxHxW' (or 'HxW', 3 channels) into a (C, H, W) tuple."""
    m = re.fullmatch(r"\s*(?:(\d+)[x×,])?(\d+)[x×,](\d+)\s*", text or "")
    if not m:
        raise ValidationError("--input must look like 3x375x500 (channels x height x width), "
                              "got %r" % text, field="input")
    c, h, w = int(m.group(1) or 3), int(m.group(2)), int(m.group(3))
    if min(c, h, w) < 1:
        raise ValidationError("--input sizes must be >= 1, got %r" % text, field="input")
    return c, h, w


def _load(args):
    from ..networks.standard import STANDARD_NETWORKS, standard_prototxt
    if not os.path.exists(args.file) and args.file in STANDARD_NETWORKS:
        return standard_prototxt(args.file, args.classes), args.file
    try:
        with open(args.file, encoding="utf-8") as fh:
            return fh.read(), args.file
    except OSError as exc:
        raise ValidationError("cannot read %s: %s (give a .prototxt path or one of %s)"
                              % (args.file, exc.strerror, ", ".join(STANDARD_NETWORKS)),
                              field="file")


def _fmt_shape(shapes):
    return ", ".join("×".join(str(d) for d in s) or "scalar" for s in shapes)


def format_table(rows):
    """Render a layer table as aligned text with a total parameter line."""
    head = ("layer", "type", "bottoms -> tops", "output", "params", "lr_mult")
    lines = [head]
    for r in rows:
        lines.append((r["name"], r["type"], "%s -> %s" % (",".join(r["bottoms"]) or "-",
                                                          ",".join(r["tops"]) or "-"),
                      _fmt_shape(r["shapes"]), "{:,}".format(r["params"]) if r["params"] else "",
                      ",".join("%g" % m for m in r["lr_mult"])))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    out.append("total parameters: {:,}".format(sum(r["params"] for r in rows)))
    return "\n".join(out)


def cmd_show(args, settings):
    from ..networks.shapes import check_network, layer_table
    text, source = _load(args)
    shape = parse_input_shape(args.input)
    rows = layer_table(text, phase=args.phase, input_shape=shape, source=source)
    problems = check_network(text, input_shape=shape, source=source)
    if args.json:
        json.dump({"layers": rows, "problems": problems}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(format_table(rows))
        for p in problems:
            print(p)
    return 1 if any(not p.startswith("warning:") for p in problems) else 0


def cmd_list(args, settings):
    from ..networks.standard import STANDARD_NETWORKS
    if args.json:
        json.dump({k: {"title": v.title, "description": v.description, "params_21": v.params_21,
                       "solver": v.solver} for k, v in STANDARD_NETWORKS.items()},
                  sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    for key, info in STANDARD_NETWORKS.items():
        print("%-12s %-32s %6.1f M params  %s" % (key, info.title, info.params_21 / 1e6,
                                                   info.description))
    return 0
