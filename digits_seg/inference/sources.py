"""Where "test many" images come from: validate the form, then yield (image, ground truth) items.

Sources (`params["source"]`):
- `folder`: a server folder under the data roots (recursive), with an optional label folder
  paired by relative path and stem (suffixes `_L`, `_mask`, `_label`, `_gt` tolerated);
- `paths`: a list of server image paths (the "uploaded list": one path per line);
- `upload`: files the web layer saved into `<job_dir>/inputs/` (images/ and labels/
  sub-folders give ground truth), or a zip it saved as `<job_dir>/inputs.zip`;
- `val`: the validation split of the model's dataset (ground truth from the LMDB).
"""

import os

import numpy as np
from PIL import Image

from ..errors import NotFoundError, ValidationError
from ..uploads import adopt_stage
from . import image_input
from .params import SOURCES, validate_params  # noqa: F401  (the form's declaration; re-exported for callers)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")
"""File name endings read as images."""

LABEL_SUFFIXES = ("", "_L", "_mask", "_label", "_labels", "_gt")
"""Label stem endings tried when pairing an image with its label file."""



def under_roots(path, settings, field):
    """Return the real path of `path` if it lies under one of the configured data roots, else raise."""
    if not path or not str(path).strip():
        raise ValidationError("enter a server path", field=field)
    real = os.path.realpath(os.path.expanduser(str(path).strip()))
    roots = settings.resolved_data_roots if settings is not None else (os.path.realpath(os.getcwd()),)
    for root in roots:
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return real
    raise ValidationError("%s is outside the data roots (%s); set DIGITS_SEG_DATA_ROOTS to allow it"
                          % (path, ", ".join(roots)), field=field)


def list_images(folder):
    """Return image files under `folder` (recursive), sorted by relative path."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                out.append(os.path.join(root, name))
    return out


def label_index(folder):
    """Map (relative dir, stem) of every image under `folder` to its path."""
    index = {}
    for path in list_images(folder):
        rel = os.path.relpath(path, folder)
        index[(os.path.dirname(rel), os.path.splitext(os.path.basename(rel))[0])] = path
    return index


def find_label(image_path, image_root, index):
    """Return the label file paired with an image (same relative stem, optional suffix) or None."""
    if not index:
        return None
    rel = os.path.relpath(image_path, image_root)
    key_dir, stem = os.path.dirname(rel), os.path.splitext(os.path.basename(rel))[0]
    for suffix in LABEL_SUFFIXES:
        hit = index.get((key_dir, stem + suffix)) or index.get(("", stem + suffix))
        if hit:
            return hit
    return None


def not_an_image(path, role="image"):
    """The error for a file Pillow cannot identify, saying what it holds (an LFS pointer, HTML, nothing...)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return ValidationError("cannot read %s %s: %s" % (role, path, e), field=role + "s")
    if not head:
        what = "it is empty"
    elif all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        what = "it is text starting with %r" % head.decode("ascii").strip()[:16]
    else:
        what = "not a format this server reads (PNG, JPEG, BMP, TIFF...)"
    return ValidationError("%s is not an image: %s; replace the file or remove it" % (path, what), field=role + "s")


def read_image(path, max_pixels=None, where=image_input.JOB, field="images", bits=16):
    """Return a uint8 H×W×3 (or H×W for greyscale) array of an image file (16-bit scaled as training was).

    Args:
        max_pixels: refuse images with more pixels (width × height, read from the header before
            decoding); None: Pillow's own decompression-bomb limit.
        where: `image_input.WEB` (Test one, in the web process) or `image_input.JOB` (worker, CLI):
            which setting the refusal names.
        bits: the model's significant bits of 16-bit greyscale (`Preprocess.significant_bits`).
    """
    try:
        return image_input.decode(path, path, max_pixels, where, field, bits)
    except Image.UnidentifiedImageError:
        raise not_an_image(path) from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValidationError("cannot read image %s: %s" % (path, e), field=field)


UNKNOWN_COLOUR_LIMIT = 0.5
"""Share of an RGB label's pixels in no class colour beyond which it is refused, not scored as all-ignore."""


def read_label(path, colormap, num_classes):
    """Return H×W uint8 class ids of a label file (palette/greyscale indices, RGB colours, 0/255 masks)."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("P", "L", "1"):
                arr = np.asarray(img.convert("L") if mode == "1" else img).astype(np.uint8)
                if mode == "1":
                    arr = (arr > 0).astype(np.uint8)
            elif mode.startswith("I"):
                arr = np.asarray(img).astype(np.int64)
                arr = np.where(arr > 255, 255, arr).astype(np.uint8)
            else:
                rgb = np.asarray(img.convert("RGB")).astype(np.int64)
                code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
                arr = np.full(code.shape, 255, np.uint8)
                for i, c in enumerate(colormap[:num_classes]):
                    arr[code == ((c[0] << 16) | (c[1] << 8) | c[2])] = i
                unknown = arr == 255
                if unknown.mean() > UNKNOWN_COLOUR_LIMIT:  # a photo, or labels of other classes: not scorable
                    colours, counts = np.unique(code[unknown], return_counts=True)
                    top = ", ".join("(%d,%d,%d)" % (c >> 16, (c >> 8) & 255, c & 255)
                                    for c in colours[np.argsort(-counts)[:3]])
                    raise ValidationError(
                        "label %s: %.0f%% of its pixels have colours in no class of the model (e.g. %s): is this "
                        "folder the ground truth, in this model's colours?" % (path, 100 * unknown.mean(), top),
                        field="labels")
    except Image.UnidentifiedImageError:
        raise not_an_image(path, "label") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValidationError("cannot read label %s: %s" % (path, e), field="labels")
    values = np.unique(arr)
    if num_classes == 2 and set(values.tolist()) <= {0, 255} and 255 in values:
        arr = (arr == 255).astype(np.uint8)  # a binary 0/255 mask: 255 is the object, not "ignore"
    return arr


def dataset_dir_of(model_dir):
    """Return the dataset folder a model was trained on (its job's `dataset_id`), or raise."""
    from ..fsutil import read_json

    job = os.path.join(model_dir, "job.json")
    params = read_json(job).get("params", {}) if os.path.isfile(job) else {}
    dataset = params.get("dataset") or params.get("dataset_id")
    if not dataset:
        raise ValidationError("model %s has no dataset recorded (a pretrained model?): choose a folder or upload "
                              "images instead of the validation split" % model_dir, field="source")
    path = os.path.join(os.path.dirname(os.path.abspath(model_dir)), str(dataset))
    if not os.path.isdir(os.path.join(path, "val_db")):
        raise NotFoundError("the validation split of dataset %s is missing (%s)" % (dataset, path), field="source")
    return path


def _upload_root(job_dir, params):
    """Return the folder holding uploaded images: staged files moved in, or the extracted zip."""
    inputs = os.path.join(job_dir, "inputs")
    adopt_stage(params.get("upload_dir"), inputs)  # the web layer staged it before the job folder existed
    archives = [p for p in (os.path.join(inputs, "inputs.zip"), os.path.join(job_dir, "inputs.zip")) if os.path.isfile(p)]
    if archives:
        extracted = os.path.join(job_dir, "extracted")
        if not os.path.isdir(extracted):  # a resumed / re-run job reuses the earlier extraction
            from ..safe_extract import extract_archive

            extract_archive(archives[0], extracted)
        subdirs = [d for d in os.listdir(extracted) if os.path.isdir(os.path.join(extracted, d))]
        if not os.path.isdir(os.path.join(extracted, "images")) and len(subdirs) == 1:
            return os.path.join(extracted, subdirs[0])  # zip of one top folder holding images/ labels/
        return extracted
    if not os.path.isdir(inputs):
        raise NotFoundError("no uploaded images in %s" % inputs, field="files")
    return inputs


def iter_items(params, job_dir, model_dir, colormap, num_classes, max_pixels=None, bits=16):
    """Return (count, generator of dicts {name, source, image, gt}) for the chosen source.

    The count is known before reading so progress is exact; images are read lazily, each refused
    from its header when it has more than `max_pixels` pixels (setting `max_job_image_pixels`), and
    16-bit greyscale scaled by the model's `bits` (`Preprocess.significant_bits`).
    """
    source = params["source"]
    limit = params.get("limit")
    if source == "val":
        from ..datasets.names import RecordNames
        from ..datasets.reader import SegmentationLMDB

        dataset_dir = dataset_dir_of(model_dir)
        split = SegmentationLMDB(os.path.join(dataset_dir, "val_db"))
        n = len(split) if not limit else min(limit, len(split))
        names = RecordNames.load(dataset_dir)  # None: a dataset made before records.json

        def gen_val():
            for i in range(n):
                image, label = split[i]
                rec = names.get("val", i) if names else None
                # the record's file stem names its outputs, as for files (`batch.file_stem` keeps them unique)
                yield {"name": rec["stem"] if rec else "val_%05d" % i,
                       "source": "val[%d]" % i, "image": image, "gt": label}  # API clients read k from source
        return n, gen_val()

    label_root = None
    if source == "folder":
        root, label_root = params["folder"], params.get("label_folder")
        files = list_images(root)
    elif source == "paths":
        root, files = None, list(params["paths"])
    else:
        root = _upload_root(job_dir, params)
        if os.path.isdir(os.path.join(root, "images")):
            label_root = os.path.join(root, "labels") if os.path.isdir(os.path.join(root, "labels")) else None
            root = os.path.join(root, "images")
        files = list_images(root)
    if not files:
        raise ValidationError("no images (%s) found in %s" % (", ".join(IMAGE_EXTENSIONS), root), field="folder")
    if limit:
        files = files[:limit]
    index = label_index(label_root) if label_root else None

    def gen_files():
        for path in files:
            label = find_label(path, root, index) if root else None
            yield {
                "name": os.path.splitext(os.path.basename(path))[0],
                "source": path,
                "image": lambda p=path: read_image(p, max_pixels, bits=bits),
                "gt": (lambda p=label: read_label(p, colormap, num_classes)) if label else None,
            }
    return len(files), gen_files()
