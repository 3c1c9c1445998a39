"""`dataset create` (queued or `--now` in-process, with `--check`) and `demo-data` sub-commands."""

import contextlib
import json
import os
import shutil
import sys

from ..datasets.params import PATH_FIELDS, DatasetParams
from .follow import add_quiet_argument, add_wait_argument, announce, report_queued
from .options import add_declared, declared_values

MAX_DEMO_COUNT = 100000
"""Most scenes `demo-data` renders in one call."""


def _count(text):
    import argparse

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--count takes a whole number of scenes, got %r" % text)
    if not 1 <= n <= MAX_DEMO_COUNT:
        raise argparse.ArgumentTypeError("--count must be between 1 and %d, got %d" % (MAX_DEMO_COUNT, n))
    return n


def register(subparsers, common):
    """Add `dataset` and `demo-data` to the `digits-seg` parser; `dataset create`'s options come from the declaration."""
    p = subparsers.add_parser("dataset", help="create a segmentation dataset from image/label folders")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("create", parents=[common], help="pair, check and convert folders into LMDBs (a dataset job)")
    add_declared(c, DatasetParams)
    add_layout_arguments(c)
    c.add_argument("--now", action="store_true", help="run in this process with a progress bar instead of queueing")
    add_wait_argument(c)
    c.add_argument("--check", action="store_true", help="only check the folders and print the report; write nothing")
    c.add_argument("--json", action="store_true", help="print the check report / job as JSON")
    add_quiet_argument(c)
    c.set_defaults(func=cmd_create)

    d = subparsers.add_parser("demo-data", help="render a SynthCity urban-scene dataset")
    d.add_argument("dir", help="output folder (images/, labels/, classes.txt)")
    d.add_argument("--count", type=_count, default=200, help="number of scenes (image + label pairs) to render")
    d.add_argument("--size", default="256x192", help="image size WxH")
    d.add_argument("--seed", type=int, default=0, help="random seed (same seed, same scenes)")
    d.add_argument("--format", choices=["png", "jpg"], default="png", help="image file format")
    d.set_defaults(func=cmd_demo_data)


def add_layout_arguments(c):
    """`--layout NAME --root DIR` (plus COCO `--categories`, VOC `--lists`): a public dataset in its published layout."""
    from ..datasets.layouts import CHOICES

    c.add_argument("--layout", choices=CHOICES, default=None,
                   help="a standard dataset layout under --root (auto: detect which); replaces --images/--labels")
    c.add_argument("--root", default=None, help="top folder of the standard layout (e.g. VOCdevkit, cityscapes)")
    c.add_argument("--categories", default=None, help="COCO: comma-separated category names or ids (default: all)")
    c.add_argument("--lists", choices=["voc", "aug"], default=None,
                   help="VOC: ImageSets/Segmentation lists (voc) or SBD-style train_aug.txt lists (aug)")


def _layout_params(args, settings):
    """Detect the layout, print what was found (stderr), return (params, detection)."""
    from ..datasets.layouts.params import layout_params
    from ..datasets.params import validate_params

    raw = {k: v for k, v in _raw(args).items() if k not in ("images", "labels")}
    raw.update(layout=args.layout, layout_root=os.path.abspath(args.root), categories=args.categories, lists=args.lists)
    params, det = layout_params(raw, settings, validate_params)
    for line in describe_detection(det.to_dict()):
        print(line, file=sys.stderr)
    return params, det


def describe_detection(d):
    """Lines telling what a detection found (the CLI's view of the form's "detected" panel)."""
    out = ["detected %s in %s" % (d["title"], d["root"])]
    out += ["  %s" % n for n in d["notes"]]
    out.append("  %d classes: %s" % (len(d["classes"]), ", ".join(c["name"] for c in d["classes"][:12])
                                     + (", ..." if len(d["classes"]) > 12 else "")))
    return out


def _raw(args):
    """The given options; every path is resolved against the current directory (as a shell user expects)."""
    raw = declared_values(args, DatasetParams)
    for key in PATH_FIELDS:
        if raw.get(key):
            raw[key] = os.path.abspath(os.path.expanduser(raw[key]))
    return raw


def _local_settings(raw, settings, root=None):
    """The CLI runs as the user: let it read the folders it was given even outside the data roots."""
    paths = [raw[k] for k in PATH_FIELDS if raw.get(k)] + ([os.path.join(root, ".")] if root else [])
    extra = tuple(os.path.dirname(os.path.realpath(p)) for p in paths)
    return settings.replace(data_roots=tuple(settings.resolved_data_roots) + extra)


def cmd_create(args, settings):
    from ..datasets.create import preflight
    from ..datasets.layouts.checking import check_dataset
    from ..datasets.params import validate_params
    from ..errors import ValidationError

    raw = _raw(args)
    if bool(raw.get("val_images")) != bool(raw.get("val_labels")):
        raise ValidationError("give both --val-images and --val-labels, or neither", field="val_labels")
    local = _local_settings(raw, settings, args.root)
    if args.layout or args.root:
        if not (args.layout and args.root):
            raise ValidationError("give both --layout and --root (the dataset's top folder)", field="root")
        if args.images or args.labels:
            raise ValidationError("--layout takes the folders from the layout: leave out --images/--labels", field="images")
        params, _ = _layout_params(args, local)
    else:
        if not (args.images and args.labels):
            raise ValidationError("give --images and --labels (or --layout and --root for a standard dataset layout)",
                                  field="images")
        params = validate_params(raw, local)
    if args.check:
        with _check_bar() as on_progress:
            report = check_dataset(params, local, on_progress=on_progress)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            _print_check(report)
        return 0 if report.ok else 1
    if args.now:  # creation runs the same checks itself: no separate pre-flight pass over every pair
        return _run_now(params, settings, args)
    from ..datasets.layouts import stage_conversion
    from ..jobs.service import JobService

    params = stage_conversion(params, settings.jobs_dir)  # COCO / SBD .mat labels, adopted by the job
    try:
        with _check_bar() as on_progress:  # bad pairs are refused now, not by a job left in error
            preflight(params, on_progress=on_progress)
        service = JobService(settings)
        job = service.submit("dataset", params["name"], params)
    except BaseException:
        if params.get("upload_dir"):
            shutil.rmtree(params["upload_dir"], ignore_errors=True)
        raise
    return report_queued(service.store, job, args, "dataset")


@contextlib.contextmanager
def _check_bar():
    """A tqdm bar for the pre-flight check (every label is decoded: ~20 s per 10,000 pairs on 2 cores)."""
    from .bars import fraction_bar, show

    with fraction_bar("checking", leave=False) as progress:
        yield lambda fraction, message="": show(progress, fraction, message)


def _print_check(report):
    s = report.summary
    print("pairs: %d train, %d val; label suffix %r; sizes %s" % (s["pairs"]["train"], s["pairs"]["val"],
                                                                 s["label_suffix"], s["sizes"]))
    print("label modes %s; binary 0/255 mask: %s; %d classes (colours from %s)"
          % (s["label_modes"], "yes" if s["binary_mask"] else "no", s["num_classes"],
             (s.get("mapping") or {}).get("colors_from") or s["colormap_source"]))
    for c in s["classes"]:
        print("  %3d %-20s rgb%-16s %10d px in %d images" % (c["index"], c["name"], tuple(c["color"]), c["pixels"],
                                                              c["images"]))
    if s.get("ignore_pixels"):
        print("  255 (ignore)%32s %10d px (%.1f%% of all pixels)" % ("", s["ignore_pixels"],
                                                                   100 * s.get("ignore_share", 0)))
    if s.get("refused_pixels"):
        print("    – colours in no class%21s %10d px (%.1f%% of all pixels): refused, see below" % (
            "", s["refused_pixels"], 100 * s.get("refused_share", 0)))
    print("how labels are read:")
    for line in (s.get("mapping") or {}).get("text", []):
        print("  " + line)
    if s.get("sixteen_bit"):
        print("16-bit images: " + s["sixteen_bit"]["text"])
    for line in report.lines():
        print(line)
    print("OK: no problems found" if report.ok else "%d problem(s) found: nothing can be created until they are fixed "
          "(or use --skip-bad)" % len(report.errors))


def _run_now(params, settings, args):
    """Create the job folder and run `create_dataset` in this process, with a tqdm bar."""
    from ..datasets.create import create_dataset
    from ..errors import ValidationError
    from ..jobs.store import JobStore
    from .inprocess import run_now

    store = JobStore(settings.jobs_dir)
    job = store.create("dataset", params["name"], params)
    try:
        result = run_now(store, job, create_dataset, params, settings=settings)
    except ValidationError:  # refused input: nothing was built, so no job is left behind in error
        store.delete(job.id)
        raise
    if args.json:
        print(json.dumps({"id": job.id, "dir": store.job_dir(job.id), **result}))
    else:
        announce(job.id, "dataset %s ready: %d train, %d val pairs, %d classes → %s"
                 % (job.id, result["train"], result["val"], result["num_classes"], store.job_dir(job.id)), args)
    return 0


def cmd_demo_data(args, settings):
    from .bars import bar

    from ..datasets.params import parse_size
    from ..datasets.synthcity import generate

    size = parse_size(args.size, "size")
    with bar(total=args.count, desc="SynthCity", unit="img") as progress:
        generate(args.dir, args.count, size=tuple(size), seed=args.seed, image_format=args.format,
                        on_progress=lambda f: progress.update(1))
    print("wrote %d scenes (%dx%d, seed %d) to %s: images/, labels/ (palette PNG), classes.txt"
          % (args.count, size[0], size[1], args.seed, os.path.abspath(args.dir)))
    return 0
