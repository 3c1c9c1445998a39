"""`network show FILE|NAME` (layer table, checks) and `network list` (standard networks)."""

import json
import os
import re
import sys

from ..errors import ValidationError
from .options import add_setting


def register(subparsers, common):
    """Add `network show` and `network list` to the `digits-seg` parser."""
    p = subparsers.add_parser("network", help="inspect Caffe network descriptions")
    sub = p.add_subparsers(dest="network_command", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("show", help="print the layer table (shapes, parameters, lr_mult) and problems")
    s.add_argument("file", help="a .prototxt file or a standard network name (see `network list`)")
    s.add_argument("--input", default=None,
                   help="input size CxHxW (e.g. 3x375x500 for a 500x375 image); default: the file's "
                        "input declaration, else an assumed 3x224x224 (said in the output, with the parameter "
                        "counts that depend on it)")
    add_setting(s, "jobs_dir")
    s.add_argument("--dataset", metavar="ID", default=None,
                   help="a dataset job: build at the size training on it uses (its training images, or --crop)")
    s.add_argument("--crop", type=int, default=None, metavar="PX", help="with --dataset: the training crop size")
    s.add_argument("--phase", choices=["train", "val", "deploy"], default=None,
                   help="phase whose layer table to print (default: deploy when it builds, else train)")
    s.add_argument("--classes", type=int, default=21, help="class count for a standard network")
    s.add_argument("--json", action="store_true", help="print the table as JSON")
    s.add_argument("--deploy-out", metavar="FILE",
                   help="write the deploy network (derived from a train/val file when needed) to FILE")
    s.set_defaults(func=cmd_show)
    ls = sub.add_parser("list", help="list the shipped standard networks")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    ls.set_defaults(func=cmd_list)


MAX_INPUT_SIDE = 16384
"""Largest --input height/width (the dataset's largest resize)."""


def parse_input_shape(text):
    """Parse 'CxHxW' into a (C, H, W) tuple; two numbers are refused ('3x64': channels or height?)."""
    m = re.fullmatch(r"\s*(\d+)[x×,](\d+)[x×,](\d+)\s*", text or "")
    if not m:
        hint = " (two numbers: give channels, height and width, e.g. 3x64x64)" if re.fullmatch(
            r"\s*\d+[x×,]\d+\s*", text or "") else ""
        raise ValidationError("--input must look like 3x375x500 (channels x height x width), got %r%s"
                              % (text, hint), field="input")
    c, h, w = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= c <= 64 and 1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE):
        raise ValidationError("--input %r is out of range: 1-64 channels, 1-%d pixels per side"
                              % (text, MAX_INPUT_SIDE), field="input")
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


def format_table(rows, note=""):
    """Render a layer table as aligned text with a total parameter line.

    Args:
        note: words after the total when it is not the network's own (an assumed input size); the
            counts that depend on the input are then marked (`input_size.MARKS`).
    """
    from ..networks.input_size import marks

    head = ("layer", "type", "bottoms -> tops", "output", "params", "lr_mult")
    lines = [head]
    for r in rows:
        mark = marks(r.get("input_dependent")) if note else ""
        lines.append((r["name"], r["type"], "%s -> %s" % (",".join(r["bottoms"]) or "-",
                                                          ",".join(r["tops"]) or "-"),
                      _fmt_shape(r["shapes"]), "{:,}".format(r["params"]) + mark if r["params"] else "",
                      ",".join("%g" % m for m in r["lr_mult"])))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    out.append("total parameters: {:,}".format(sum(r["params"] for r in rows)) + (" " + note if note else ""))
    return "\n".join(out)


def cmd_show(args, settings):
    """Show the phases a file supports, a layer table and every problem; follow a solver's nets."""
    shape = parse_input_shape(args.input) if args.input else None  # a typo is answered before torch loads
    from ..networks.analysis import analyse
    text, source = _load(args)
    origin, reason = "given", ""
    if args.dataset:
        if shape:
            raise ValidationError("give --input or --dataset, not both", field="input")
        shape, reason = _dataset_input(args, settings)
        origin = "dataset"
    # No size: the file's declaration, else an assumed one, which the output says.
    result = analyse(text, shape, source, input_origin=origin, input_reason=reason)
    if result.kind == "solver":
        return _show_solver(args, result, shape, origin, reason)
    return _show_network(args, result, shape)


def _show_network(args, result, shape, out=None):
    out = out or sys.stdout
    phase = args.phase or next((p for p in ("deploy", "train", "val") if result.phases.get(p)
                                and result.phases[p].ok), None)
    rows = result.table(phase) if phase else []
    note = result.params_note()
    if args.deploy_out and result.phases.get("deploy") and result.phases["deploy"].ok:
        _write_deploy(args, result, shape)
    if args.json:
        json.dump(dict(result.to_dict(), table_phase=phase, layers=rows,
                       total_params=sum(r["params"] for r in rows) if rows else None, total_params_note=note,
                       problems=[p.text() for p in result.problems],
                       problem_details=[p.to_dict() for p in result.problems]), out, indent=1)
        out.write("\n")
    else:
        if result.phases:
            print("%s%s: phases" % (result.source, " (%s)" % result.name if result.name else ""), file=out)
            for name, v in result.phases.items():
                print("  %-7s %s" % (name, ("yes, " + v.how) if v.ok else "no: " + v.error), file=out)
        if rows:
            print(result.input.text(), file=out)
            print("layer table, phase %s:" % phase, file=out)
            print(format_table(rows, note), file=out)
        if args.deploy_out and result.phases.get("deploy") and result.phases["deploy"].ok:
            print("deploy network written to %s" % args.deploy_out, file=out)
        elif args.deploy_out:
            print("no deploy network: the deploy phase does not build", file=out)
        stream = out if result.ok else sys.stderr
        for p in result.problems:
            print(p.text(), file=stream)
    if not result.ok:
        raise ValidationError("no phase of %s can be built (%d problem%s listed above)"
                              % (result.source, len(result.errors()), "" if len(result.errors()) == 1 else "s"),
                              field="file")
    return 0


def _dataset_input(args, settings):
    """The (C, H, W) training on `--dataset` builds at (its images or `--crop`), and words saying so."""
    from ..datasets.info import DatasetInfo
    from ..jobs.store import JobStore
    from ..training.net_input import training_input

    store = JobStore(settings.jobs_dir)
    job = store.get(args.dataset)
    if job.kind != "dataset":
        raise ValidationError("--dataset %s is a %s job, not a dataset" % (args.dataset, job.kind), field="dataset")
    info = DatasetInfo.load(store.job_dir(job.id)) if job.state.value == "done" else None
    shape, words = training_input(info, args.crop)
    return shape, ("dataset %s: %s" % (job.id, words)) if shape else words


def _write_deploy(args, result, shape):
    """Write the deploy network; refuse when its Input would state an assumed size that parameter counts need."""
    from ..fsutil import write_bytes_atomic
    from ..networks.analysis import deploy_prototxt
    from ..networks.input_size import SIZE

    sized = [n for n, what in result.dependent.items() if SIZE in what]
    if result.input.assumed and sized:
        raise ValidationError("--deploy-out: not written: its Input layer would state the assumed size %s, and "
                              "%s would be sized for it (%s); give the real size with --input CxHxW"
                              % ("×".join(str(d) for d in result.input.shape), ", ".join(sized), result.input.reason),
                              field="input")
    dshape = shape or tuple(result.phases["deploy"].net.input_shapes["data"][1:])
    write_bytes_atomic(args.deploy_out, deploy_prototxt(result.message, dshape, result.source).encode("utf-8"))


def _show_solver(args, result, shape, origin="given", reason=""):
    from ..training.solver_file import solver_settings
    msg = result.solver
    settings_list = solver_settings(msg)
    base = os.path.dirname(os.path.abspath(args.file))
    nets, problems = [], []
    for fld in ("net", "train_net", "test_net"):
        for value in msg.get_all(fld):
            path = os.path.join(base, str(value))
            nets.append((fld, str(value), path, os.path.exists(path)))
            if not os.path.exists(path):
                problems.append("warning: %s: `%s: \"%s\"` (line %s) is not at %s; put the network file there "
                                "to check it, or give it to `network show` directly"
                                % (result.source, fld, value, msg.line_of(fld), path))
    if args.json:
        json.dump({"source": result.source, "kind": "solver", "solver": settings_list,
                   "nets": [{"field": f, "value": v, "path": p, "exists": e} for f, v, p, e in nets],
                   "problems": problems}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    print("%s: a solver file" % result.source)
    for item in settings_list:
        print("  %-18s %s" % (item["field"], item["value"]))
    for p in problems:
        print(p)
    for fld, value, path, exists in nets:
        if not exists:
            continue
        print("\n%s: %s" % (fld, path))
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        from ..networks.analysis import analyse
        sub = analyse(text, shape, path, input_origin=origin, input_reason=reason)
        try:
            _show_network(args, sub, shape)
        except ValidationError as exc:
            print("error: %s" % exc.message)
    return 0


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
