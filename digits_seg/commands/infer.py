"""`digits-seg infer` (predict images in-process) and `digits-seg export` (ONNX / TorchScript)."""

import json
import os

from ..errors import NotFoundError, ValidationError
from ..inference.export import DEFAULT_OPSET, EXPORTERS
from ..inference.geometry import FIT_HELP, FIT_MODES
from ..inference.onnx_backend import BACKENDS
from .options import add_setting


def register(subparsers, common):
    """Add `infer` and `export` to the `digits-seg` parser."""
    p = subparsers.add_parser(
        "infer",
        help="predict masks for images with a trained model (here, not in a worker)",
        description="Writes, per image: <stem>_mask.png (palette PNG of class ids with the dataset's colours), "
                    "<stem>_color.png and <stem>_overlay.png, plus summary.json with per-class pixel counts.")
    p.add_argument("--model", required=True, help="model job id (in the jobs dir) or a model folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--snapshot", default="best", help="best (default), latest, or an iteration number")
    p.add_argument("--fit", choices=FIT_MODES, default="auto", help=FIT_HELP + " Default: %(default)s.")
    p.add_argument("--tile", type=int, default=None,
                   help="sliding-window tile size in pixels (overrides --fit); 0 = whole image at once")
    p.add_argument("--stride", type=int, default=None, help="sliding-window step in pixels (default: 2/3 of the tile)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity, 0..1")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N. Default: %(default)s.")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="auto: ONNX Runtime on the CPU when the snapshot's verified graph is cached (training writes "
                        "it), else PyTorch; onnxruntime: export the graph now if missing; torch: always PyTorch. "
                        "Default: %(default)s.")
    p.add_argument("--keep", default="", help="comma-separated class names or ids: also write <stem>_cutout.png "
                                               "(RGBA keeping only these classes)")
    add_setting(p, "jobs_dir")
    p.set_defaults(func=run_infer)

    e = subparsers.add_parser("export", help="export a model snapshot to ONNX or TorchScript",
                              description="The exported graph takes float32 N×C×H×W RGB pixels 0..255 (any H, W) "
                                          "and returns N×K×H×W class scores; the mean subtraction is inside.")
    e.add_argument("--model", required=True, help="model job id or folder")
    e.add_argument("--format", choices=("onnx", "torchscript"), default="onnx", help="export format")
    e.add_argument("--out", required=True, help="output file (.onnx or .pt)")
    e.add_argument("--snapshot", default="best", help="best (default), latest, or an iteration number")
    add_setting(e, "jobs_dir")
    e.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (>= 17). Default: %(default)s.")
    e.add_argument("--exporter", choices=EXPORTERS, default="auto",
                   help="auto: PyTorch's recommended (dynamo) exporter, falling back to the TorchScript-based one when "
                        "its graph fails verification; or force one. Default: %(default)s.")
    e.set_defaults(func=run_export)


def resolve_model_dir(model, settings):
    """Return the folder of a model given its job id or a path."""
    if os.path.isdir(model):
        path = os.path.abspath(model)
    else:
        path = os.path.join(settings.jobs_dir, model)
    if not os.path.isfile(os.path.join(path, "network.prototxt")):
        raise NotFoundError("no model %r: neither a model folder nor a job in %s with a network.prototxt"
                            % (model, settings.jobs_dir), field="model")
    return path


def _collect(paths):
    from ..inference.sources import IMAGE_EXTENSIONS, list_images

    files = []
    for p in paths:
        if os.path.isdir(p):
            files.extend(list_images(p))
        elif os.path.isfile(p):
            files.append(p)
        else:
            raise NotFoundError("%s does not exist" % p, field="images")
    if not files:
        raise ValidationError("no images (%s) found in %s" % (", ".join(IMAGE_EXTENSIONS), ", ".join(paths)),
                              field="images")
    return files


def _keep_ids(keep, classes):
    ids = []
    for token in [t.strip() for t in keep.split(",") if t.strip()]:
        if token.isdigit():
            ids.append(int(token))
        elif token in classes:
            ids.append(classes.index(token))
        else:
            raise ValidationError("unknown class %r for --keep. Available: %s" % (token, ", ".join(classes)),
                                  field="keep")
    return ids


def run_infer(args, settings):
    """Predict each image and write mask / colour / overlay PNGs and summary.json into --out."""
    from .bars import bar

    from ..fsutil import write_json_atomic
    from ..inference import visualize as vz
    from ..inference.image_input import check_file, check_range
    from ..inference.predictor import Predictor
    from ..inference.sources import read_image

    model_dir = resolve_model_dir(args.model, settings)
    files = _collect(args.images)
    limit = settings.max_job_image_pixels
    for path in files:  # every size from its header first: a refusal leaves nothing half-written in --out
        check_file(path, limit)
    predictor = Predictor.from_model_dir(model_dir, snapshot=args.snapshot, device=args.device, backend=args.backend)
    for path in files:  # 16-bit values beyond the model's range, also before anything is written
        check_range(path, predictor.preprocess.significant_bits)
    keep = _keep_ids(args.keep, predictor.classes) if args.keep else None
    os.makedirs(args.out, exist_ok=True)
    summary, used = [], set()
    for path in bar(files, desc="infer", unit="img"):
        stem = os.path.splitext(os.path.basename(path))[0]
        base, n = stem, 1
        while base in used:  # same stem in two folders: do not overwrite
            n += 1
            base = "%s_%d" % (stem, n)
        used.add(base)
        image = read_image(path, limit, bits=predictor.preprocess.significant_bits)
        mask, fit = predictor.run(image, fit=args.fit, tile=args.tile, stride=args.stride)
        out = os.path.join(args.out, base)
        vz.save_palette_png(mask, predictor.colormap, out + "_mask.png")
        vz.save_png(vz.colorize(mask, predictor.colormap), out + "_color.png")
        vz.save_png(vz.overlay(image, mask, predictor.colormap, alpha=args.alpha), out + "_overlay.png")
        if keep is not None:
            vz.save_png(vz.cutout(image, mask, keep), out + "_cutout.png")
        hist = vz.class_histogram(mask, predictor.classes, predictor.colormap)
        summary.append({"image": path, "mask": base + "_mask.png", "width": int(mask.shape[1]),
                        "height": int(mask.shape[0]), "fit": fit.describe(),
                        "classes": [r for r in hist["classes"] if r["pixels"]]})
    write_json_atomic(os.path.join(args.out, "summary.json"),
                      {"model": model_dir, "weights": os.path.basename(predictor.weights_path),
                       "engine": predictor.engine,
                       "classes": predictor.classes, "colormap": predictor.colormap, "images": summary})
    print("%d mask(s) written to %s" % (len(summary), args.out))
    return 0


def run_export(args, settings):
    """Export the chosen snapshot and print the verification report as JSON."""
    from ..inference.export import export_onnx, export_torchscript

    model_dir = resolve_model_dir(args.model, settings)
    if args.format == "onnx":
        report = export_onnx(model_dir, args.out, snapshot=args.snapshot, opset=args.opset, exporter=args.exporter)
    else:
        report = export_torchscript(model_dir, args.out, snapshot=args.snapshot)
    print(json.dumps(report, indent=2))
    return 0
