"""`store serve | publish | list | import` sub-commands: share, publish and fetch pretrained models."""

import json
import os
import sys

from .follow import add_wait_argument, report_queued
from .options import add_setting


def register(subparsers, common):
    """Add `store` and its actions to the `digits-seg` parser."""
    p = subparsers.add_parser("store", help="model store: serve, publish, list, import")
    sub = p.add_subparsers(dest="store_command", metavar="ACTION")
    sub.required = True

    s = sub.add_parser("serve", help="serve a store folder over HTTP for a team")
    s.add_argument("dir", help="store folder (master.json + one folder per model)")
    s.add_argument("--host", dest="store_host", default="127.0.0.1",
                   help="address to bind (0.0.0.0 to accept other machines)")
    s.add_argument("--port", dest="store_port", type=int, default=5080, help="port (default 5080)")
    s.set_defaults(func=cmd_serve)

    pub = sub.add_parser("publish", help="add a trained model job to a store folder")
    add_setting(pub, "jobs_dir")
    pub.add_argument("job", help="model job id (in the jobs dir) or a model folder path")
    pub.add_argument("--to", required=True, help="store folder (created if missing); master.json is updated")
    pub.add_argument("--snapshot", default="best", help="best (default), last, or an iteration number")
    pub.add_argument("--name", default=None, help="entry name (default: the job's name)")
    pub.add_argument("--id", dest="entry_id", default=None, help="entry folder name (default: from the name)")
    pub.add_argument("--description", default=None, help="one paragraph shown on the store page")
    pub.add_argument("--license", default=None, help="licence of the weights, e.g. CC-BY-4.0")
    pub.add_argument("--source-url", default=None, help="where the model comes from (paper, repository)")
    pub.add_argument("--citation", default=None, help="how to cite the model (BibTeX or text)")
    pub.add_argument("--overwrite", action="store_true", help="replace an entry with the same id")
    pub.set_defaults(func=cmd_publish)

    ls = sub.add_parser("list", help="list the models of the configured stores (or of URL)")
    ls.add_argument("url", nargs="?", default=None, help="a store URL or folder (default: every configured store)")
    ls.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for slow stores")
    ls.add_argument("--json", action="store_true", help="print the listing as JSON")
    ls.set_defaults(func=cmd_list)

    imp = sub.add_parser("import", parents=[common], help="import a store model as a pretrained model job")
    imp.add_argument("store", help="a configured store URL or folder ('bundled' for model_store/)")
    imp.add_argument("model", help="the entry folder name (see `store list`)")
    imp.add_argument("--name", default=None, help="name of the pretrained model job")
    imp.add_argument("--now", action="store_true", help="run in this process with a progress bar instead of queueing")
    add_wait_argument(imp)
    imp.add_argument("--json", action="store_true", help="print the job as JSON")
    imp.set_defaults(func=cmd_import)


def cmd_serve(args, settings):
    from ..store.server import serve

    print("serving store %s at http://%s:%d/ (Ctrl-C to stop)" % (os.path.abspath(args.dir), args.store_host,
                                                                   args.store_port), file=sys.stderr)
    serve(args.dir, host=args.store_host, port=args.store_port)
    return 0


def _job_folder(job, settings):
    if os.path.isdir(job):
        return job
    path = os.path.join(settings.jobs_dir, job)
    if os.path.isdir(path):
        return path
    from ..errors import NotFoundError

    raise NotFoundError("no job %r in %s and no such folder; give a job id or a model folder" % (job, settings.jobs_dir))


def cmd_publish(args, settings):
    from ..store.publish import publish

    snapshot = args.snapshot
    if snapshot not in ("best", "last"):
        snapshot = int(snapshot) if snapshot.isdigit() else snapshot
    man = publish(_job_folder(args.job, settings), args.to, snapshot=snapshot, name=args.name,
                  entry_id=args.entry_id, description=args.description, license=args.license,
                  source_url=args.source_url, citation=args.citation, overwrite=args.overwrite)
    from ..store.manifest import size_text

    size = sum(f.get("size") or 0 for f in man["files"])  # published files are local: every size is known
    print("published %s as %s/%s (%d files, %s; metrics %s)"
          % (man["name"], os.path.abspath(args.to), man["id"], len(man["files"]), size_text(size),
             json.dumps(man.get("metrics") or {})))
    return 0


NAME_WIDTH = 40
"""Longest model name printed by `store list` (longer names end in "…"); ids are never cut."""


def _table(rows, right=()):
    """Rows of cells as lines with columns padded to their widest cell (`right`: right-aligned column indexes)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return lines


def _listing_row(m):
    from ..store.manifest import metric_text, size_text

    name = m["name"] if len(m["name"]) <= NAME_WIDTH else m["name"][:NAME_WIDTH - 1] + "…"
    notes = []
    if m.get("needs_internet"):
        notes.append("needs internet")
    if not m.get("has_weights"):
        notes.append("network only")
    metrics = ", ".join(metric_text(k, v) for k, v in (m.get("metrics") or {}).items())  # as the store page
    return [m["folder"], name, m.get("architecture") or "-", str(m.get("num_classes") or "?"),
            size_text(m.get("size_bytes")), "; ".join(notes + ([metrics] if metrics else []))]


def _print_listing(records):
    for rec in records:
        print("%s  [%s]%s" % (rec["url"], rec["status"], ("  " + rec["msg"]) if rec.get("msg") else ""))
        if rec["models"]:
            header = ["ID", "NAME", "ARCHITECTURE", "CLASSES", "SIZE", "NOTES"]
            for line in _table([header] + [_listing_row(m) for m in rec["models"]], right=(3,)):
                print("  " + line)
        for w in rec.get("warnings") or []:
            print("  warning: %s" % w)


def cmd_list(args, settings):
    from ..store import index
    from ..store.cache import StoreCache

    stores = [index.normalize_store_url(args.url)] if args.url else None
    cache = StoreCache(settings, timeout_s=min(args.timeout, 10.0), stores=stores)
    records = cache.wait(args.timeout)
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        _print_listing(records)
    return 0 if all(r["status"] == "reachable" for r in records) else 1


def cmd_import(args, settings):
    from ..store import importer, index

    store = index.bundled_store() if args.store == "bundled" else args.store
    params = importer.validate_params({"store": store, "model": args.model, "name": args.name}, settings)
    name = args.name or args.model
    if not args.now:
        from ..jobs.service import JobService

        service = JobService(settings)
        return report_queued(service.store, service.submit("pretrained", name, params), args, "pretrained model")
    return _import_now(name, params, settings, args)


def _import_now(name, params, settings, args):
    """Create the job folder and run `import_model` in this process, with a tqdm bar."""
    from ..jobs.store import JobStore
    from ..store.importer import import_model
    from .inprocess import run_now

    store = JobStore(settings.jobs_dir)
    job = store.create("pretrained", name, params)
    result = run_now(store, job, import_model, params, settings=settings)
    print(json.dumps({"id": job.id, "dir": store.job_dir(job.id), **result}) if args.json
          else "pretrained model %s ready: %s, %d classes%s → %s" % (
              job.id, result["name"], result["num_classes"], "" if result["has_weights"] else " (no weights)",
              store.job_dir(job.id)))
    return 0
