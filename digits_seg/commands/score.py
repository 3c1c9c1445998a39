"""`digits-seg score`: score prediction masks you already have (from any tool) against ground-truth masks."""

import json
import os

from .options import add_setting


def register(subparsers, common):
    """Add `score` to the `digits-seg` parser."""
    p = subparsers.add_parser(
        "score", help="score prediction masks against label masks (FCN's four metrics)",
        description="Pairs PRED and LABELS masks by file name; each may be an index PNG (palette or greyscale, "
                    "pixel = class id) or a colour PNG (mapped through the colour map). Prints pixel accuracy, "
                    "mean accuracy, mean IoU and frequency-weighted IoU, per-class IoU/accuracy and the worst images.")
    p.add_argument("--pred", required=True, help="folder of prediction masks")
    p.add_argument("--labels", required=True, help="folder of ground-truth masks (same file names)")
    p.add_argument("--dataset", default=None, help="dataset job id or folder: its classes and colour map")
    p.add_argument("--classes", default=None, help="classes file: one name per line (instead of --dataset)")
    p.add_argument("--colormap", default=None, help="colour map file: `R G B` per class (for colour masks)")
    p.add_argument("--ignore", default="", help="comma-separated ground-truth class ids left out (255 always is), "
                                                "e.g. 11 for CamVid's void")
    p.add_argument("--json", action="store_true", help="print the scores as JSON (pixel_acc, mean_acc, mean_iou, "
                                                       "fw_iou, per_class_iou, ... as in metrics.jsonl)")
    add_setting(p, "jobs_dir")
    p.set_defaults(func=run_score)


def run_score(args, settings):
    from ..errors import ValidationError
    from ..inference.evaluation import evaluate_folders, format_report, load_classes, parse_ignore

    if args.dataset and (args.classes or args.colormap):
        raise ValidationError("give either --dataset or --classes/--colormap, not both", field="dataset")
    dataset_dir = None
    if args.dataset:
        dataset_dir = args.dataset if os.path.isdir(args.dataset) else os.path.join(settings.jobs_dir, args.dataset)
        if not os.path.isdir(dataset_dir):
            raise ValidationError("dataset %s not found (neither a folder nor a job in %s)"
                                  % (args.dataset, settings.jobs_dir), field="dataset")
    classes, colormap = load_classes(args.classes, args.colormap, dataset_dir)
    report = evaluate_folders(args.pred, args.labels, classes, colormap, parse_ignore(args.ignore))
    if args.json:
        agg = report["aggregate"]
        out = {k: agg[k] for k in ("pixel_acc", "mean_acc", "mean_iou", "fw_iou", "per_class_iou", "per_class_acc")}
        out.update({"classes": report["classes"], "count": report["count"], "ignore": report["ignore"],
                    "unscored_labels": report["unscored_labels"],
                    "confusion": report["confusion"], "images": report["images"]})
        print(json.dumps(out, indent=1))
    else:
        print(format_report(report))
    return 0
