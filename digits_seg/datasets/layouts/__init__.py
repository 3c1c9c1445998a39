"""Standard dataset layouts: recognise a public dataset in its published folder layout.

`detect(root, layout="auto")` returns a `Detection` (pairs per split, classes, colours, the
raw value → class mapping, what was found in words); `layouts.params` turns one into dataset
params, and the dataset plan re-derives the pairs from `layout` + `layout_root` so job.json
stays small. Layouts whose labels are not index images (COCO JSON, SBD .mat) are converted
into index PNGs before building: into an upload-like stage at submit (`stage_conversion`), or
inside the job folder when the job starts without one (`prepare`, e.g. the CLI's `--now`).
"""

import os
import shutil

from ...errors import ValidationError
from . import ade20k, camvid, cityscapes, coco, voc
from .detection import Detection, NotThisLayout

LAYOUTS = {"voc": voc, "cityscapes": cityscapes, "camvid-segnet": camvid, "ade20k": ade20k, "coco": coco}
"""Layout name → module with `detect(root, options, masks_dir)` (and `convert` when labels need converting)."""

CHOICES = tuple(LAYOUTS) + ("auto",)

MASKS_DIR = "converted_labels"
"""Folder inside a dataset job holding labels converted from JSON/.mat until the dataset is built."""


def detect(root, layout="auto", options=None, masks_dir=None):
    """Recognise the layout of the folder `root` (`layout` "auto" tries each); ValidationError says what was looked for."""
    if layout not in CHOICES:
        raise ValidationError("unknown layout %r; available: %s" % (layout, ", ".join(CHOICES)), field="layout")
    if not os.path.isdir(root):
        raise ValidationError("%s is not a folder" % root, field="layout_root")
    if layout != "auto":
        try:
            return LAYOUTS[layout].detect(root, options, masks_dir)
        except NotThisLayout as e:
            raise ValidationError("%s is %s" % (root, e.message), field="layout_root")
    looked = []
    for name, module in LAYOUTS.items():
        try:
            return module.detect(root, options, masks_dir)
        except NotThisLayout as e:
            looked.append("%s — %s" % (name, e.message))
    raise ValidationError("%s is not a standard layout I recognise. Looked for:\n%s\nPoint at the dataset's top folder, "
                          "or use plain image and label folders" % (root, "\n".join(looked)), field="layout_root")


def _convert(det, masks, log, on_progress, should_stop):
    """Convert the detection's labels into `masks`, built under a temporary name and renamed when complete."""
    from ...errors import JobAborted

    tmp = masks + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    total = max(1, sum(len(p) for p in det.splits.values()))
    done = [0]

    def step():
        done[0] += 1
        if should_stop and should_stop():
            raise JobAborted()
        if on_progress and done[0] % 16 == 0:
            on_progress(0.2 * done[0] / total, "converting labels: %d of %d" % (done[0], total))

    try:
        LAYOUTS[det.layout].convert(det, tmp, step)
        os.replace(tmp, masks)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("converted %d labels (%s) into index PNGs" % (done[0], det.title))


def _needs_conversion(params):
    if not params.get("layout"):
        return None
    det = detect(params["layout_root"], params["layout"], params.get("layout_options"))
    return det if det.converted else None


def stage_conversion(params, jobs_dir, log=lambda text: None):
    """Convert a layout's labels into an upload stage before its job exists, as an upload is staged.

    The submit check then decodes the very masks the job will store, and the job adopts the
    stage (`upload_dir`) instead of converting again; the stage goes when the dataset is built,
    or is pruned with abandoned uploads. Returns params with `upload_dir` and `masks_dir` set
    (unchanged for layouts whose labels are already index images). The caller removes the stage
    if the request fails.
    """
    from ...uploads import new_stage

    det = _needs_conversion(params)
    if det is None:
        return params
    stage = new_stage(jobs_dir, "layout-")
    masks = os.path.join(stage, MASKS_DIR)
    try:
        _convert(det, masks, log, None, None)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return dict(params, upload_dir=stage, masks_dir=masks)


def prepare(job_dir, params, log=print, on_progress=None, should_stop=None):
    """Make sure a converted layout's labels exist: those staged at submit, else convert into the job folder.

    A resumed job reuses a finished conversion and never a half-written one. Returns params with
    `masks_dir` set.
    """
    if params.get("masks_dir") and os.path.isdir(params["masks_dir"]):
        return params
    det = _needs_conversion(params)
    if det is None:
        return params
    masks = os.path.join(job_dir, MASKS_DIR)
    if os.path.isdir(masks):
        log("reusing the labels converted earlier (%s)" % MASKS_DIR)
    else:
        _convert(det, masks, log, on_progress, should_stop)
    return dict(params, masks_dir=masks)


def cleanup(job_dir):
    """Remove the converted labels once the dataset holds them (like an upload's files)."""
    path = os.path.join(job_dir, MASKS_DIR)
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
        return True
    return False


__all__ = ["CHOICES", "Detection", "LAYOUTS", "cleanup", "detect", "prepare", "stage_conversion"]
