"""An import request without a model says the field is required, not "got None"."""

import pytest

from digits_seg.config import load_settings
from digits_seg.errors import ValidationError
from digits_seg.store import importer
from digits_seg.store.index import configured_stores


def test_missing_model_is_required_not_a_python_repr():
    settings = load_settings(environ={})
    store = configured_stores(settings)[0]
    with pytest.raises(ValidationError) as e:  # e.g. a client sending "model_id" instead of "model"
        importer.validate_params({"store": store, "model_id": "fcn-alexnet-voc"}, settings)
    assert e.value.field == "model" and "None" not in str(e.value)
    assert str(e.value).startswith("model is required: the id of a store entry")


def test_the_bundled_fcn_entries_may_fetch_the_authors_unchecked_weights(tmp_path):
    import json
    import os
    import shutil

    from digits_seg.store.index import bundled_store
    from digits_seg.store.origin import check_file_origin

    def weights(store):
        with open(os.path.join(store, "fcn-alexnet-voc", "manifest.json")) as f:
            files = json.load(f)["files"]
        w = [f for f in files if f["role"] == "weights"][0]
        assert w["url"].startswith("http://dl.caffe.berkeleyvision.org/") and not w.get("sha256")
        return dict(w, location=w["url"])

    check_file_origin(bundled_store(), "fcn-alexnet-voc", weights(bundled_store()))  # was refused: Import always failed
    other = tmp_path / "team-store"  # the same manifest in any other store stays refused (SSRF rule 1)
    shutil.copytree(os.path.join(bundled_store(), "fcn-alexnet-voc"), other / "fcn-alexnet-voc")
    with pytest.raises(ValidationError, match="no checksum"):
        check_file_origin(str(other), "fcn-alexnet-voc", weights(str(other)))
