"""The "test many" form, declared once (`InferManyParams`), and its validation into an inference job's params.

Like the model and dataset forms (see `digits_seg.declare`), every problem is reported at
once with the field's label, and the job name is checked before anything is written.
"""

from typing import Optional, Union

from pydantic import BaseModel

from ..declare import Float, Int, Name, blank, check, choice, field_error, param, raise_errors
from ..errors import ValidationError
from .geometry import FIT_HELP, FIT_MODES

SOURCES = ("folder", "paths", "upload", "val")
"""Accepted values of `source`."""

MAX_TILE = 16384
"""Largest sliding-window tile (the largest image side a dataset accepts)."""


class InferManyParams(BaseModel):
    """Where the images come from and how they are run through the model."""

    name: Optional[Name] = param(None, "Job name", "Shown on the home page. Blank: 'test many: <model>'.")
    source: choice(*SOURCES) = param("folder", "Images from", "folder: a server folder (recursive); paths: one "
                                     "server image path per line; upload: files or a zip; val: the model's "
                                     "validation set (with ground truth).")
    folder: Optional[str] = param(None, "Image folder", "A server folder under the data roots, searched "
                                  "recursively.")
    label_folder: Optional[str] = param(None, "Label folder", "Optional ground truth, paired by relative path and "
                                        "name (suffixes _L, _mask, _label, _gt tolerated): each image is then scored.")
    paths: Optional[Union[str, list[str]]] = param(None, "Paths", "One server image path per line (# starts "
                                                   "a comment).")
    snapshot: str = param("best", "Snapshot", "best (highest validation mIoU), last, or an iteration number.")
    fit: choice(*FIT_MODES) = param("auto", "Input size", FIT_HELP)
    tile: Optional[Int] = param(None, "Tile (px)", "Sliding-window tile size; overrides Fit. Out of memory on large "
                                "images: lower it.", ge=1, le=MAX_TILE)
    stride: Optional[Int] = param(None, "Stride (px)", "Sliding-window step (needs a tile); default 2/3 of the "
                                  "tile. Seams between tiles: lower it.", ge=1, le=MAX_TILE)
    limit: Optional[Int] = param(None, "At most N images", "Score only the first N images (blank: all).", ge=1)
    alpha: Float = param(0.5, "Overlay opacity", "How strongly the class colours cover the image in overlays.",
                         ge=0, le=1)


def validate_params(raw, settings=None):
    """Turn a submitted 'test many' form / JSON body into canonical params for `infer_many`; every problem at once.

    The job name is checked too (read it with `declare.clean_name(InferManyParams, raw["name"])`).
    """
    import os

    from .sources import under_roots

    raw = dict(raw or {})
    values, errors = check(InferManyParams, raw)
    bad = {e["field"] for e in errors}
    p = {"source": values["source"], "snapshot": values["snapshot"].strip() or "best"}

    def server_path(key, kind):
        try:
            path = under_roots(raw.get(key), settings, key)
        except ValidationError as exc:
            errors.append(field_error(InferManyParams, key, exc.message))
            return None
        ok = os.path.isdir(path) if kind == "dir" else os.path.isfile(path)
        if not ok:
            errors.append(field_error(InferManyParams, key, "%s %s" % (
                raw.get(key), "does not exist" if not os.path.exists(path) else "is not a " + (
                    "folder" if kind == "dir" else "file"))))
        return path

    if p["source"] == "folder" and "source" not in bad:
        p["folder"] = server_path("folder", "dir")
        p["label_folder"] = server_path("label_folder", "dir") if not blank(raw.get("label_folder")) else None
    elif p["source"] == "paths":
        items = values["paths"] or []
        items = items.splitlines() if isinstance(items, str) else items
        items = [str(x).strip() for x in items if str(x).strip() and not str(x).strip().startswith("#")]
        if not items and "paths" not in bad:
            errors.append(field_error(InferManyParams, "paths", "are missing: give at least one image path (one per "
                                      "line)"))
        resolved = []
        for item in items:
            try:
                resolved.append(under_roots(item, settings, "paths"))
            except ValidationError as exc:
                errors.append(field_error(InferManyParams, "paths", exc.message))
                break
        missing = [x for x in resolved if not os.path.isfile(x)]
        if missing:
            errors.append(field_error(InferManyParams, "paths", "list %d file(s) that do not exist, e.g. %s"
                                      % (len(missing), missing[0])))
        p["paths"] = resolved
    for key in ("fit", "tile", "stride", "limit", "alpha"):
        p[key] = values[key]
    if p["stride"] and not p["tile"] and not {"stride", "tile"} & bad:
        errors.append(field_error(InferManyParams, "stride", "needs a tile size"))
    elif p["stride"] and p["tile"] and p["stride"] > p["tile"]:
        errors.append(field_error(InferManyParams, "stride", "must not exceed the tile size (%d)" % p["tile"]))
    raise_errors(errors)
    return p
