"""The `create_dataset` task: stream pairs through decode/validate/convert into Caffe-Datum LMDBs.

Everything is built in a hidden folder inside the job folder and renamed into place at the
end (`dataset.json` last), so an aborted or failed job never leaves a dataset that looks
complete.
"""

import concurrent.futures
import functools
import os
import shutil
import time

import lmdb
import numpy as np

from .. import fsutil
from ..errors import DigitsSegError, JobAborted, ValidationError
from ..uploads import adopt_stage
from ..space import disk_full_message, free_mb, is_disk_full
from . import layouts, lmdb_io
from . import sixteen_bit
from .names import NAMES_FILE, write_names
from .check import CheckReport, Collector, check_folders, sixteen_bit_report, task_config
from .palette import IGNORE_LABEL, default_class_names
from .plan import class_count, describe, make_plan
from .pool import DEFAULT_WORKERS, ordered_map
from .process import DEFAULT_MAX_PIXELS, may_be_grey16, process_pair, scan_grey16
from .stats import SampleSums, SplitStats, class_warnings, write_stats

SPLITS = ("train", "val")
DB_PARTS = ("features", "labels")
"""The two LMDBs of a split (DIGITS' layout): image Datums and label Datums under the same keys."""
MEAN_SAMPLES = 32
"""Images per split, evenly spread, averaged into the mean pixel and the mean image: every
image's pixels would cost a third of creation's time, and 32 images (8 M pixels at 512×512)
pin the mean pixel to well under one grey level."""
FLUSH_EVERY = 64
"""Pairs between background flushes of the databases to disk while they are written."""
OUTPUTS = ("train_db", "val_db", "labels.txt", "colormap.json", "stats.h5", NAMES_FILE, "dataset.json")
"""What a finished dataset folder holds; `dataset.json` is written last and marks completion
(`records.json`: each record's source files, `names`)."""


def _refuse(report, what):
    lines = report.lines()
    shown = lines[:40] + (["... %d more lines" % (len(lines) - 40)] if len(lines) > 40 else [])
    raise ValidationError("%s; nothing was written. Fix these problems or enable \"skip bad pairs\" "
                          "(CLI: --skip-bad):\n%s" % (what, "\n".join(shown)), detail=report.to_dict())


PAIR_CODES = ("missing_label", "missing_image", "duplicate_stem", "unreadable", "truncated", "bomb", "size_mismatch",
              "bad_values", "unknown_colors", "label_mode", "unmapped_values", "image_range")
"""Report errors confined to pairs: "skip bad pairs" leaves those pairs out instead of refusing."""


def preflight(params, settings=None, workers=2, on_progress=None):
    """Run the full check (every pair decoded with creation's rules) and refuse what creation would refuse.

    The form, the API and the CLI call it before queuing a job, so a bad dataset is an answer
    to the request, with the check's report, rather than a failed job a minute later. Returns
    the report (its warnings are worth showing).
    """
    report = check_folders(params, settings, workers=workers, on_progress=on_progress)
    if params.get("skip_bad"):
        kept = [e for e in report.errors if e["code"] not in PAIR_CODES]
        report.warnings[:0] = [e for e in report.errors if e["code"] in PAIR_CODES]
        report.errors = kept
        pairs = report.summary.get("pairs", {})
        if report.ok and report.summary.get("bad_pairs", 0) >= sum(pairs.values()) > 0:
            report.add("error", "no_good_pairs", "every pair has a problem: \"skip bad pairs\" would leave nothing "
                       "to build")
    if not report.ok:
        _refuse(report, "the folders have problems")
    return report


def _pair_plan(params, log=None):
    """Pair the folders (no decoding) and refuse what cannot be built; unpaired files are skipped with
    "skip bad pairs". Creation decodes every pair itself, so this is all it needs up front."""
    plan = make_plan(params)
    skip_bad = bool(params.get("skip_bad"))
    report = CheckReport()
    for sev, code, msg, files in plan.problems:
        fatal = code in ("empty_folder", "same_folder") or not skip_bad
        report.add("error" if fatal else "warning", code, msg, files)
        if not fatal:
            for f in files:
                plan.skipped_files.append({"stem": os.path.splitext(os.path.basename(f))[0],
                                           "image" if code == "missing_label" else "label": f,
                                           "reason": code.replace("_", " ")})
                if log:
                    log("skipped %s: %s" % (f, code.replace("_", " ")))
    if not report.ok:
        _refuse(report, "the folders have problems")
    return plan


DISK_FULL_MB = 16
"""A build that fails with less free space than this (MiB) failed because the disk filled up."""


def _noop(*a, **k):
    return False


def create_dataset(job_dir, params, *, on_progress=_noop, should_stop=_noop, log=print, settings=None,
                   workers=DEFAULT_WORKERS, **extra):
    """Create train/val LMDBs, labels.txt, colormap.json, stats.h5 and dataset.json in `job_dir`."""
    params = adopt_upload(job_dir, params)
    params = layouts.prepare(job_dir, params, log=log, on_progress=on_progress, should_stop=should_stop)
    plan = _pair_plan(params, log)
    skip_bad = bool(params.get("skip_bad"))
    for note in plan.notes:
        log(note)
    if not plan.splits["train"]:
        raise ValidationError("no training pairs: the validation share takes every pair; lower the validation percentage")
    suffix = plan.pairings[0][1].suffix
    log("pairs: %d train, %d val (%s)" % (len(plan.splits["train"]), len(plan.splits["val"]),
                                          "label suffix %r" % suffix if suffix else "labels named like their images"))
    bits = significant_bits(plan, params, workers, should_stop)
    cfg = task_config(plan, params, build=True, mean_image=True,  # mean image dropped by SplitStats if sizes differ
                      significant_bits=bits)

    partial = os.path.join(job_dir, ".partial-dataset")
    if os.path.exists(partial):
        shutil.rmtree(partial)
    os.makedirs(partial)
    try:
        result = _build(partial, cfg, plan, params, skip_bad, on_progress, should_stop, log, workers, job_dir)
        _publish(partial, job_dir)
    except (OSError, lmdb.Error) as exc:
        # LMDB reports a full disk as "mdb_txn_commit: Input/output error": look at the disk itself.
        if is_disk_full(exc) or free_mb(job_dir) < DISK_FULL_MB:
            raise DigitsSegError(disk_full_message(os.path.dirname(job_dir)))
        raise
    finally:
        if os.path.exists(partial):
            shutil.rmtree(partial, ignore_errors=True)
    if params.get("upload_dir"):  # the databases hold every pair now; a failed job keeps them to resume
        shutil.rmtree(os.path.join(job_dir, UPLOAD_DIR), ignore_errors=True)
        log("removed the uploaded files: the dataset holds them")
    if layouts.cleanup(job_dir):
        log("removed the converted labels: the dataset holds them")
    on_progress(1.0, "done")
    return result


UPLOAD_DIR = "upload"
"""Where a dataset job keeps the extracted zip it was created from, until creation succeeds."""

PATH_PARAMS = ("images", "labels", "val_images", "val_labels", "classes_file", "colormap_file", "masks_dir")


def adopt_upload(job_dir, params):
    """Move an uploaded zip's extracted files from the web's stage folder into the job folder.

    The stage (`<jobs>/.uploads/...`) would otherwise outlive the job; inside the job folder
    the files go with the job when it is deleted. Returns params with paths pointing there;
    a resumed job finds the files already moved.
    """
    stage = params.get("upload_dir")
    if not stage:
        return params
    dst = os.path.join(job_dir, UPLOAD_DIR)
    if not adopt_stage(stage, dst):
        raise ValidationError("the uploaded files of this dataset are gone (they are removed once a dataset is "
                              "built); upload the archive again in a new dataset", field="archive")
    out = dict(params)
    for key in PATH_PARAMS:
        v = out.get(key)
        if v and (v == stage or v.startswith(stage.rstrip(os.sep) + os.sep)):
            out[key] = dst + v[len(stage.rstrip(os.sep)):]
    return out


def significant_bits(plan, params, workers=DEFAULT_WORKERS, should_stop=_noop):
    """The significant bits 16-bit greyscale images are stored with (`sixteen_bit`; `bits` reads them first)."""
    option = params.get("sixteen_bit") or sixteen_bit.LEGACY_OPTION
    fixed = sixteen_bit.explicit_bits(option)
    if fixed is not None:
        return fixed
    paths = [p[1] for s in SPLITS for p in plan.splits[s] if may_be_grey16(p[1])]
    survey = sixteen_bit.Survey()
    if not paths:
        return survey.resolve(option)
    with ordered_map(scan_grey16, paths, workers, shared=params.get("max_pixels", DEFAULT_MAX_PIXELS)) as results:
        for path, info in zip(paths, results):
            if should_stop():
                raise JobAborted()
            if info is not None:
                survey.add(info, path)
    return survey.resolve(option)


def sample_positions(n, k):
    """Positions of `k` evenly spread items among `n` (all of them when n <= k)."""
    return set(range(n)) if n <= k else {(j * n) // k for j in range(k)}


class RecordSink:
    """What a creation worker keeps: its own handles on the four LMDBs, and its image samples.

    Workers write their Datums themselves: the alternative, sending each record (or a note to
    re-read the file) to the parent, cost the parent more CPU than the workers spent
    validating, on machines with as many cores as workers. LMDB serialises the workers'
    transactions; records go under their position in the split (`renumber` closes the gaps
    skipped pairs leave). Handles are opened lazily, in the process that uses them.
    """

    def __init__(self, partial):
        self.partial = partial
        self.samples = SampleSums()
        self._writers = {}

    def write(self, split, position, result):
        key = lmdb_io.key_for(position)
        for part, field in zip(DB_PARTS, ("image_datum", "label_datum")):
            w = self._writers.get((split, part))
            if w is None:
                w = self._writers[(split, part)] = lmdb_io.LMDBWriter(_db_path(self.partial, split, part))
            w.put(key, result.pop(field))

    def finish(self):
        """Commit and close this worker's handles; return what the parent merges (the samples)."""
        self.close()
        return self.samples

    def close(self):
        for w in self._writers.values():
            w.close(sync=False)  # the parent syncs each database once, after every worker is done
        self._writers = {}


def build_pair(task, cfg, sink):
    """Validate and convert one pair and write its records; returns the result without Datum bytes.

    `task` is `process_pair`'s task plus (split, position in split).
    """
    r = process_pair(task, cfg, sink.samples)
    if not r["problems"]:
        sink.write(task[5], task[6], r)
    return r


def _db_path(partial, split, part):
    return os.path.join(partial, split + "_db", part)


def _databases(partial):
    """The four LMDB folders of a dataset being built (features and labels of each split)."""
    return [_db_path(partial, s, part) for s in SPLITS for part in DB_PARTS]


def _build(partial, cfg, plan, params, skip_bad, on_progress, should_stop, log, workers, job_dir=None):
    started = time.monotonic()
    for path in _databases(partial):  # all four exist, even for an empty split; workers only add records
        lmdb_io.LMDBWriter(path).close()
    stats = {s: SplitStats(mean_image=cfg["mean_image"]) for s in SPLITS}
    col = Collector()
    channels = set()
    reencoded = {"image": 0, "label": 0}
    skipped = {s: 0 for s in SPLITS}
    kept = {s: [] for s in SPLITS}  # (stem, image, label) of the stored records, in key order
    sampled = {s: sample_positions(len(plan.splits[s]), MEAN_SAMPLES) for s in SPLITS}
    tasks = [(i, p[0], p[1], p[2], split if k in sampled[split] else None, split, k)
             for i, (split, k, p) in enumerate((s, k, p) for s in SPLITS for k, p in enumerate(plan.splits[s]))]
    failed = False
    # Workers close the databases unsynced (two would each flush the same file). A thread (fsync
    # releases the GIL) flushes them now and then while they grow, so that the final flush
    # before `dataset.json` has little left to write.
    flusher, flushing = concurrent.futures.ThreadPoolExecutor(1), None
    with ordered_map(build_pair, tasks, workers, shared=cfg,
                     make_accumulator=functools.partial(RecordSink, partial)) as results:
        # h5py's import (~70 ms) runs while the workers decode the first pairs rather than
        # after the last one, when nothing else could use the time
        import h5py  # noqa: F401
        for n, r in enumerate(results, 1):
            if should_stop():
                raise JobAborted()
            split = tasks[r["index"]][5]
            col.add(r, split)
            if r["problems"]:
                skipped[split] += 1
                if skip_bad:
                    log("skipped pair %s: %s" % (r["stem"], r["problems"][0]["message"]))
                else:
                    failed = True  # keep going: the report lists every bad pair, not just the first
            else:
                kept[split].append(tasks[r["index"]][1:4])
                channels.add(r["channels"])
                stats[split].add(r)
                reencoded["image"] += r["reencoded"]["image"]
                reencoded["label"] += r["reencoded"]["label"]
            if n % 8 == 0 or n == len(tasks):
                on_progress(0.98 * n / len(tasks), "%d of %d pairs" % (n, len(tasks)))
            if n % FLUSH_EVERY == 0 and (flushing is None or flushing.done()):
                flushing = flusher.submit(_fsync_all, partial)
        samples = SampleSums.merged(results.finals)
    for s in SPLITS:
        stats[s].samples = samples.splits.get(s)

    report = CheckReport()
    col.finish(report, plan.rules["tolerance"], plan.class_names, by_color=plan.rules["palette_by_color"], plan=plan)
    grey16 = sixteen_bit_report(report, col, params, cfg["significant_bits"])
    if failed:
        _refuse(report, "%d pair(s) have problems" % len(col.bad_pairs))
    if len(channels) > 1:
        raise ValidationError("images have different channel counts %s with channels=keep; choose RGB or greyscale "
                              "conversion" % sorted(channels), field="channels")
    total = stats["train"].count + stats["val"].count
    if total == 0:
        raise ValidationError("every pair was skipped as bad; nothing to build (see the log)")
    for s in SPLITS:
        if skipped[s]:
            for part in DB_PARTS:
                lmdb_io.renumber(_db_path(partial, s, part))
    flushed = flusher.submit(_fsync_all, partial)  # the last records, while the statistics are written
    flusher.shutdown(wait=False)

    seen = np.nonzero(stats["train"].class_pixels + stats["val"].class_pixels)[0]
    seen = [int(v) for v in seen if v != IGNORE_LABEL]
    names = plan.class_names or default_class_names(max(class_count(plan, seen), 1))
    colormap = [list(c) for c in plan.colormap[:len(names)]]
    summaries = {s: stats[s].summary(len(names)) for s in SPLITS}
    warnings = [w["message"] for w in report.warnings] + class_warnings(names, summaries["train"]["class_pixels"])
    for w in warnings:
        log("warning: " + w)
    label_mapping = describe(plan, names, col.seen_raw(), col.palette_used)
    for line in label_mapping["text"]:
        log("label mapping: " + line)
    log("16-bit images: " + grey16["text"])
    log("stored %d images and %d labels unchanged; re-encoded %d images and %d labels"
        % (total - reencoded["image"], total - reencoded["label"], reencoded["image"], reencoded["label"]))
    elapsed = time.monotonic() - started
    log("%d pairs in %.1f s (%.0f pairs/s)" % (len(tasks), elapsed, len(tasks) / max(elapsed, 1e-9)))

    with open(os.path.join(partial, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("".join(n + "\n" for n in names))
    fsutil.write_json_atomic(os.path.join(partial, "colormap.json"), colormap)
    write_stats(os.path.join(partial, "stats.h5"), stats, len(names))
    sizes = {tuple(sz) for s in SPLITS for sz, _ in stats[s].sizes.items()}
    info = {
        "format": "digits-seg dataset 1",
        "classes": names, "colormap": colormap, "num_classes": len(names), "ignore_label": IGNORE_LABEL,
        "channels": channels.pop() if channels else 3,
        "variable_size": len(sizes) > 1,
        "splits": {s: {"count": summaries[s]["count"], "size": summaries[s]["size"], "sizes": summaries[s]["sizes"],
                       "ignore_pixels": summaries[s]["ignore_pixels"]} for s in SPLITS},
        "mean_pixel": summaries["train"]["mean_pixel"], "mean_samples": stats["train"].mean_samples,
        "binary_mask": plan.binary, "label_mode": plan.label_mode, "colormap_source": plan.colormap_source,
        "label_mapping": label_mapping,
        "sixteen_bit": grey16,
        "label_suffix": plan.pairings[0][1].suffix, "encoding": params.get("encoding", "png"),
        "resize": params.get("resize"), "resize_mode": params.get("resize_mode") if params.get("resize") else None,
        "skipped": (plan.skipped_files + [{"stem": s, "image": i, "label": l, "reason": m}
                                          for s, i, l, m in col.bad_pairs])[:200],
        "warnings": warnings,
        "reencoded": reencoded,
    }
    write_names(os.path.join(partial, NAMES_FILE), kept, job_dir, params)
    flushed.result()  # the databases are on disk before anything marks the dataset complete
    fsutil.write_json_atomic(os.path.join(partial, "dataset.json"), info)
    return {"train": summaries["train"]["count"], "val": summaries["val"]["count"], "num_classes": len(names),
            "skipped": len(col.bad_pairs) + len(plan.skipped_files), "variable_size": info["variable_size"]}


def _fsync_all(partial):
    for path in _databases(partial):
        lmdb_io.fsync_database(path)


def _publish(partial, job_dir):
    """Move the finished outputs into the job folder; `dataset.json` goes last."""
    lmdb_io.forget_readers(job_dir)
    for name in reversed(OUTPUTS):  # the completion marker disappears first
        dst = os.path.join(job_dir, name)
        if os.path.isdir(dst):
            shutil.rmtree(dst)
        elif os.path.exists(dst):
            os.unlink(dst)
    for name in OUTPUTS:
        os.replace(os.path.join(partial, name), os.path.join(job_dir, name))
