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
