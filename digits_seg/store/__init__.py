"""Model store: read store indexes, download and import models, publish and serve store folders.

Call flow::

    StoreCache (cache.py, per app, background threads)
        └─ index.list_store(url) ─ master.json | directory listing
               └─ per entry: manifest.json (ours) or info.json (+aux.json) (DIGITS) → entry dict (manifest.py)
    importer.import_model (job task)
        └─ index.read_entry → download.download (size limit, sha256, resume) → weights.h5, labels, ...
    publish.publish(model job → store folder) ; server.serve(store folder over HTTP)

Everything read from a store is untrusted text: callers render it escaped.
"""
