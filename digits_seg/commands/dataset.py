"""`dataset create` (queued or `--now` in-process, with `--check`) and `demo-data` sub-commands."""

import json
import os
import shutil
import sys

from .follow import add_wait_argument, report_queued


def register(subparsers, common):
    """Add `dataset` and `demo-data` to the `digits-seg` parser."""
    p = subparsers.add_parser("dataset", help="create a segmentation dataset from image/label folders")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("create", parents=[common], help="pair, check and convert folders into LMDBs (a dataset job)")
    c.add_argument("--images", default=None, help="folder of input images (searched recursively)")
    c.add_argument("--labels", default=None, help="folder of label images, paired with images by file name")
    add_layout_arguments(c)
    c.add_argument("--name", default=None, help="dataset name (default: the images folder's parent name)")
    v = c.add_mutually_exclusive_group()
    v.add_argument("--val-pct", type=float, default=None, help="percent of pairs held out for validation (default 10)")
    v.add_argument("--val-images", default=None, help="separate validation image folder (needs --val-labels)")
    c.add_argument("--val-labels", default=None, help="separate validation label folder")
    c.add_argument("--seed", type=int, default=0, help="seed of the random validation split")
    c.add_argument("--label-suffix", default="auto",
                   help="label name = image name + this suffix, e.g. _L or _mask ('auto' detects it, '' for none)")
    c.add_argument("--classes", dest="classes_file", default=None, help="class-names file, line i = class i")
    c.add_argument("--colormap", dest="colormap_file", default=None,
                   help="colour-map file: `R G B [name]` per class line, or a CSV with name,r,g,b columns")
    c.add_argument("--colormap-source", choices=["labels", "file", "default"], default=None,
                   help="where class colours come from: palette PNG labels, --colormap, or the PASCAL VOC palette")
    c.add_argument("--color-tolerance", type=int, default=0,
                   help="map RGB label colours within this many levels per channel to the nearest colour-map entry")
    c.add_argument("--binary", choices=["auto", "yes", "no"], default="auto",
                   help="treat 0/255 greyscale masks as classes 0/1 (auto detects them)")
    c.add_argument("--channels", choices=["rgb", "gray", "keep"], default="rgb", help="image channel conversion")
    c.add_argument("--encoding", choices=["png", "jpeg", "raw"], default="png",
                   help="how converted images are stored (unchanged PNG/JPEG files keep their bytes)")
    c.add_argument("--resize", default=None, help="resize to WxH (labels use nearest neighbour); default: native sizes")
    c.add_argument("--resize-mode", choices=["squash", "crop", "fill", "half_crop"], default="squash")
    c.add_argument("--skip-bad", action="store_true", help="skip bad pairs (each is logged) instead of refusing")
    c.add_argument("--now", action="store_true", help="run in this process with a progress bar instead of queueing")
    add_wait_argument(c)
    c.add_argument("--check", action="store_true", help="only check the folders and print the report; write nothing")
    c.add_argument("--json", action="store_true", help="print the check report / job as JSON")
    c.set_defaults(func=cmd_create)

    d = subparsers.add_parser("demo-data", parents=[common], help="render a SynthCity urban-scene dataset")
    d.add_argument("dir", help="output folder (images/, labels/, classes.txt)")
    d.add_argument("--count", type=int, default=200)
    d.add_argument("--size", default="256x192", help="WxH")
    d.add_argument("--seed", type=int, default=0)
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


def _local_settings(args, settings):
    """The CLI runs as the user: let it read the folders it was given even outside the data roots."""
    paths = [getattr(args, k) for k in ("images", "labels", "val_images", "val_labels", "classes_file", "colormap_file")]
    if getattr(args, "root", None):
        paths.append(os.path.join(args.root, "."))
    extra = tuple(os.path.dirname(os.path.realpath(p)) for p in paths if p)
    return settings.replace(data_roots=tuple(settings.resolved_data_roots) + extra)


def _raw(args):
    raw = {k: getattr(args, k) for k in ("images", "labels", "name", "val_images", "val_labels", "seed", "label_suffix",
                                          "classes_file", "colormap_file", "colormap_source", "color_tolerance",
                                          "binary", "channels", "encoding", "resize", "resize_mode", "skip_bad")}
    for key in ("images", "labels"):
        if raw.get(key):
            raw[key] = os.path.abspath(raw[key])
    if args.val_pct is not None:
        raw["val_pct"] = args.val_pct
    return {k: v for k, v in raw.items() if v is not None}


def cmd_create(args, settings):
    from ..datasets.layouts.checking import check_dataset
    from ..datasets.params import validate_params
    from ..errors import ValidationError

    if bool(args.val_images) != bool(args.val_labels):
        raise ValidationError("give both --val-images and --val-labels, or neither", field="val_labels")
    local = _local_settings(args, settings)
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
        params = validate_params(_raw(args), local)
    if args.check:
        report = check_dataset(params, local)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            _print_check(report)
        return 0 if report.ok else 1
    if args.now:
        return _run_now(params, settings, args)
    from ..datasets.create import preflight
    from ..datasets.layouts import stage_conversion
    from ..jobs.service import JobService

    params = stage_conversion(params, settings.jobs_dir)  # COCO / SBD .mat labels, adopted by the job
    try:
        preflight(params)  # missing labels, empty folders...: refused now rather than by the job
        service = JobService(settings)
        job = service.submit("dataset", params["name"], params)
    except BaseException:
        if params.get("upload_dir"):
            shutil.rmtree(params["upload_dir"], ignore_errors=True)
        raise
    return report_queued(service.store, job, args, "dataset")


def _print_check(report):
    s = report.summary
    print("pairs: %d train, %d val; label suffix %r; sizes %s" % (s["pairs"]["train"], s["pairs"]["val"],
                                                                 s["label_suffix"], s["sizes"]))
    print("label modes %s; binary 0/255 mask: %s; %d classes (colours from %s)"
          % (s["label_modes"], "yes" if s["binary_mask"] else "no", s["num_classes"], s["colormap_source"]))
    for c in s["classes"]:
        print("  %3d %-20s rgb%-16s %10d px in %d images" % (c["index"], c["name"], tuple(c["color"]), c["pixels"],
                                                              c["images"]))
    if s.get("ignore_pixels"):
        print("  255 (ignore)%28s %10d px" % ("", s["ignore_pixels"]))
    for line in report.lines():
        print(line)
    print("OK: no problems found" if report.ok else "%d problem(s) found: nothing can be created until they are fixed "
          "(or use --skip-bad)" % len(report.errors))


def _run_now(params, settings, args):
    """Create the job folder and run `create_dataset` in this process, with a tqdm bar."""
    from ..datasets.create import create_dataset
    from ..jobs.store import JobStore
    from .inprocess import run_now

    store = JobStore(settings.jobs_dir)
    job = store.create("dataset", params["name"], params)
    result = run_now(store, job, create_dataset, params, settings=settings)
    print(json.dumps({"id": job.id, "dir": store.job_dir(job.id), **result}) if args.json
          else "dataset %s ready: %d train, %d val pairs, %d classes → %s"
          % (job.id, result["train"], result["val"], result["num_classes"], store.job_dir(job.id)))
    return 0


def cmd_demo_data(args, settings):
    from tqdm import tqdm

    from ..datasets.params import parse_size
    from ..datasets.synthcity import generate

    size = parse_size(args.size, "size")
    with tqdm(total=args.count, desc="SynthCity", unit="img", file=sys.stderr) as bar:
        generate(args.dir, args.count, size=tuple(size), seed=args.seed, image_format=args.format,
                        on_progress=lambda f: bar.update(1))
    print("wrote %d scenes (%dx%d, seed %d) to %s: images/, labels/ (palette PNG), classes.txt"
          % (args.count, size[0], size[1], args.seed, os.path.abspath(args.dir)))
    return 0
