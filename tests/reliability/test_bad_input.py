"""Bad-input corpus against one live `serve`: each kind gets a 4xx with a clear message, the
server keeps answering, and nothing is left on disk.

The jobs dir holds a really trained tiny model (so image uploads reach the real decoder and
predictor) plus fabricated folders of the other kinds. Every case sends its request raw
(http.client), then checks the answer, `GET /index.json` and the jobs dir's file list.
"""

import io
import json
import shutil
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import LiveServer
from tests.reliability.conftest import (call, disk_state, fabricate_extras, json_body, multipart, png_bytes,
                                        write_job)


@pytest.fixture(scope="module")
def env(tiny_trained, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    jobs = str(tmp / "jobs")
    shutil.copytree(tiny_trained["jobs"], jobs)
    ids = dict(fabricate_extras(jobs), model=tiny_trained["model"], dataset=tiny_trained["dataset"])
    from digits_seg.jobs.store import JobStore

    store = JobStore(jobs)
    ids["surrogate"] = write_job(store, "model", "ok").id
    _rename_on_disk(store, ids["surrogate"], "bad \ud800 name")
    ids["xss"] = write_job(store, "dataset", "<script>alert(1)</script><img src=x onerror=alert(2)>").id
    server = LiveServer(tmp, env={"DIGITS_SEG_JOBS_DIR": jobs, "DIGITS_SEG_MAX_IMAGE_PIXELS": "1000000",
                                  "DIGITS_SEG_WORKERS": "0"})
    yield {"server": server, "jobs": jobs, "ids": ids}
    server.stop()


def _rename_on_disk(store, job_id, name):
    """Write a name an older version could have stored (a lone surrogate) straight into job.json."""
    import os

    path = os.path.join(store.job_dir(job_id), "job.json")
    with open(path) as f:
        data = json.load(f)
    data["name"] = name
    with open(path, "w") as f:
        json.dump(data, f)  # ensure_ascii writes "\ud800" as an escape: valid JSON, invalid UTF-8 text


# -- inputs ------------------------------------------------------------------------------------
def _zip(members, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members:
            if isinstance(name, zipfile.ZipInfo):
                zf.writestr(name, data)
            else:
                zf.writestr(name, data)
    return buf.getvalue()


def _symlink_zip():
    info = zipfile.ZipInfo("images/link.png")
    info.external_attr = 0o120777 << 16
    return _zip([(info, "/etc/passwd")])


def _pixel_bomb():
    """A valid 1x1 PNG whose header claims 30000x30000 pixels (CRC fixed up)."""
    data = bytearray(png_bytes(np.zeros((1, 1), np.uint8)))
    ihdr = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr:ihdr + 8] = struct.pack(">II", 30000, 30000)
    crc = zlib.crc32(bytes(data[12:ihdr + 13])) & 0xFFFFFFFF
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def _jpeg(mode, size=(16, 16)):
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="JPEG")
    return buf.getvalue()


def _png16():
    buf = io.BytesIO()
    Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 200).save(buf, format="PNG")
    return buf.getvalue()


def _big_rgba():
    return png_bytes(np.zeros((1100, 1100, 4), np.uint8), compress_level=1)


def _image_upload(data, name="x.png"):
    return multipart(files=[("image", name, data)])


def _dataset_upload(data, name="data.zip"):
    return multipart(fields=[("name", "ds"), ("image_folder", "images"), ("label_folder", "labels")],
                     files=[("archive", name, data)])


def _pretrained_upload(network, weights, wname="w.caffemodel"):
    return multipart(files=[("network", "deploy.prototxt", network), ("weights", wname, weights)])


GOOD_PROTOTXT = b'name: "n"\nlayer { name: "c" type: "Convolution" bottom: "data" top: "c" }\n'
API = {"X-Requested-With": "digits-seg"}

# (kind, method, path, body or callable returning (body, content type), expected status, message part)
CASES = [
    # client strings: surrogates, NUL, JSON shape
    ("surrogate in JSON name", "POST", "/datasets.json", '{"name": "\\ud800", "image_folder": "x"}', 400, "surrogate"),
    ("surrogate in model name", "POST", "/models.json", '{"name": "a\\udfff", "dataset_id": "{dataset}"}', 400,
     "surrogate"),
    ("surrogate in JSON key", "POST", "/inference.json", '{"\\ud83d": 1}', 400, "surrogate"),
    ("NUL in JSON name", "POST", "/datasets.json", '{"name": "a\\u0000b"}', 400, "NUL"),
    ("NUL in nested JSON", "POST", "/models.json", '{"network": {"kind": "custom", "prototxt": "\\u0000"}}', 400,
     "NUL"),
    ("NUL in form field", "POST", "/datasets", lambda: multipart(fields=[("name", "a\x00b")]), 400, "NUL"),
    ("NUL in form of a model", "POST", "/models", lambda: multipart(fields=[("dataset_id", "{dataset}\x00")]), 400,
     "NUL"),
    ("NUL in upload file name", "POST", "/models/{model}/infer.json",
     lambda: multipart(files=[("image", "a\x00.png", b"x")]), 400, "NUL"),
    ("NUL in URL path", "GET", "/jobs/a%00b/log.txt", None, 400, "NUL"),
    ("NUL in query", "GET", "/index.json?state=%00", None, 400, "NUL"),
    ("NUL in dataset archive name", "POST", "/datasets.json",
     lambda: multipart(files=[("archive", "a\x00.zip", b"PK")]), 400, "NUL"),
    ("deep JSON 100000", "POST", "/models.json", "[" * 100000 + "]" * 100000, 400, "nested"),
    ("deep JSON 100", "POST", "/datasets.json", '{"a":' * 100 + "1" + "}" * 100, 400, "nested"),
    ("invalid JSON", "POST", "/models.json", '{"dataset_id": ', 400, "invalid JSON"),
    ("JSON not an object", "POST", "/models.json", "[1, 2]", 400, "must be an object"),
    ("name too long", "POST", "/models.json", json.dumps({"name": "n" * 300, "dataset_id": "{dataset}",
                                                            "network": "tiny-fcn", "device": "cpu"}), 400, "too long"),
    ("foreign Host header", "GET", "/index.json", None, 400, "Host", {"Host": "rebind.example:80"}),
    ("missing CSRF on form", "POST", "/jobs/{model}/abort", lambda: multipart(fields=[("x", "1")]), 403, "CSRF"),
    ("GET on a POST route", "GET", "/jobs/{model}/abort", None, 405, "not allowed"),
    ("unknown job id", "GET", "/jobs/20000101-000000-dead.json", None, 404, "no job"),
    # traversal on every file route
    ("traversal previews", "GET", "/models/{model}/previews/val_previews/../job.json", None, 404, "no file"),
    ("traversal previews encoded", "GET", "/models/{model}/previews/val_previews/%2e%2e/job.json", None, 404, None),
    ("traversal previews symlink", "GET", "/models/{hostile}/previews/val_previews/leak.png", None, 404, "no file"),
    ("traversal previews dir link", "GET", "/models/{hostile}/previews/val_previews/other/job.json", None, 404,
     "no file"),
    ("traversal inference files", "GET", "/inference/{inference}/files/images/../job.json", None, 404, "no file"),
    ("traversal inference backslash", "GET", "/inference/{inference}/files/images%5C..%5C..%5Cjob.json", None, 404,
     None),
    ("traversal model download", "GET", "/models/{model}/download/..%2Fjob.json", None, 404, None),
    ("traversal pretrained file", "GET", "/pretrained_models/{pretrained}/files/..%2Fjob.json", None, 404, None),
    ("traversal job id", "GET", "/jobs/..%2F..%2Fetc/log.txt", None, 404, None),
    ("traversal export snapshot", "GET", "/models/{model}/export/onnx?snapshot=../../job", None, 404, None),
    # images for "Test one image"
    ("0-byte image", "POST", "/models/{model}/infer.json", lambda: _image_upload(b""), 400, "empty"),
    ("text as image", "POST", "/models/{model}/infer.json", lambda: _image_upload(b"hello\nworld\n", "a.png"), 400,
     "text, not an image"),
    ("random bytes as image", "POST", "/models/{model}/infer.json",
     lambda: _image_upload(np.random.RandomState(0).bytes(4096)), 400, "not an image"),
    ("truncated PNG", "POST", "/models/{model}/infer.json",
     lambda: _image_upload(png_bytes(np.random.RandomState(1).randint(0, 255, (64, 64, 3), np.uint8))[:300]), 400,
     "truncated"),
    ("truncated CMYK JPEG", "POST", "/models/{model}/infer.json",
     lambda: _image_upload(_jpeg("CMYK")[:200], "c.jpg"), 400, "truncated"),
    ("truncated 16-bit PNG", "POST", "/models/{model}/infer.json", lambda: _image_upload(_png16()[:60]), 400,
     "truncated"),
    ("pixel bomb header", "POST", "/models/{model}/infer.json", lambda: _image_upload(_pixel_bomb()), 400, "Mpx"),
    ("RGBA over the pixel limit", "POST", "/models/{model}/infer.json", lambda: _image_upload(_big_rgba()), 400,
     "DIGITS_SEG_MAX_IMAGE_PIXELS"),
    # dataset archives
    ("0-byte zip", "POST", "/datasets", lambda: _dataset_upload(b""), 400, "empty"),
    ("truncated zip", "POST", "/datasets",
     lambda: _dataset_upload(_zip([("images/a.png", b"x" * 5000), ("labels/a.png", b"y" * 5000)])[:3000]), 400,
     "truncated"),
    ("text as zip", "POST", "/datasets", lambda: _dataset_upload(b"just text"), 400, "not a zip"),
    ("zip slip", "POST", "/datasets", lambda: _dataset_upload(_zip([("../../evil.txt", b"x")])), 400, "'..'"),
    ("zip absolute path", "POST", "/datasets", lambda: _dataset_upload(_zip([("/tmp/evil.txt", b"x")])), 400,
     "absolute"),
    ("zip symlink", "POST", "/datasets", lambda: _dataset_upload(_symlink_zip()), 400, "link"),
    ("zip bomb", "POST", "/datasets",
     lambda: _dataset_upload(_zip([("images/zeros.png", b"\0" * (20 * 2 ** 20))], zipfile.ZIP_DEFLATED)), 400,
     "zip bomb"),
    # pretrained model uploads
    ("malformed prototxt", "POST", "/pretrained_models/new",
     lambda: _pretrained_upload(b'layer { name: "c" type: ', b"\x0a\x01n\xa2\x06\x00"), 400, "line"),
    ("binary prototxt", "POST", "/pretrained_models/new",
     lambda: _pretrained_upload(b"\xff\xfe\x00garbage", b"\x0a\x01n\xa2\x06\x00"), 400, "not text"),
    ("text caffemodel", "POST", "/pretrained_models/new",
     lambda: _pretrained_upload(GOOD_PROTOTXT, b"layer { name: 'x' }\n" * 10), 400, "not a binary Caffe model"),
    ("empty caffemodel", "POST", "/pretrained_models/new", lambda: _pretrained_upload(GOOD_PROTOTXT, b""), 400,
     "empty"),
    ("non-HDF5 .h5", "POST", "/pretrained_models/new",
     lambda: _pretrained_upload(GOOD_PROTOTXT, b"\x0a\x01n" * 100, "w.h5"), 400, "not an HDF5 file"),
    # other fields
    ("server folder outside data roots", "POST", "/datasets/check.json",
     json.dumps({"image_folder": "/etc", "label_folder": "/etc"}), 400, None),
    ("unknown export format", "GET", "/models/{model}/export/pickle", None, 404, "onnx"),
    ("bad lr-preview epochs", "GET", "/models/lr-preview.json?epochs=lots", None, 400, "epochs"),
    ("bad inference metric", "GET", "/inference/{inference}.json?metric=__class__", None, 400, "metric"),
    ("record out of range", "GET", "/datasets/{dataset}/records/train/99999/image.png", None, 404, "out of range"),
]


def _fill(text, ids):
    for key, value in ids.items():
        text = text.replace("{%s}" % key, value)
    return text


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly(env, case):
    kind, method, path, body, status, fragment = case[:6]
    headers = dict(API, **(case[6] if len(case) > 6 else {}))
    if callable(body):
        body, ctype = body()
        headers["Content-Type"] = ctype
        if kind == "missing CSRF on form":
            headers.pop("X-Requested-With")  # a browser form: CSRF applies
    elif body is not None:
        body = json_body(_fill(body, env["ids"]))
        headers["Content-Type"] = "application/json"
    url = env["server"].url
    before = disk_state(env["jobs"])
    got, _, text = call(url, method, _fill(path, env["ids"]), body, headers)
    assert got == status, "%s: %d %s" % (kind, got, text[:300])
    if fragment:
        assert fragment in text, "%s: %s" % (kind, text[:300])
    assert "Traceback" not in text and "Internal error" not in text
    assert env["jobs"] not in text and "/tmp/" not in text.replace("/tmp/evil", ""), text[:300]
    assert call(url, "GET", "/index.json")[0] == 200
    assert disk_state(env["jobs"]) == before, "%s left something on disk" % kind


ACCEPTED = [
    ("CMYK JPEG", lambda: _jpeg("CMYK", (40, 32)), "c.jpg"),
    ("16-bit PNG", _png16, "g.png"),
    ("RGBA PNG", lambda: png_bytes(np.full((24, 40, 4), 200, np.uint8)), "a.png"),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_unusual_but_valid_images_are_predicted(env, case):
    """CMYK, 16-bit and RGBA inputs are converted, not refused: the mask has the image's size."""
    name, make, filename = case
    data = make()
    body, ctype = _image_upload(data, filename)
    status, _, text = call(env["server"].url, "POST", "/models/%s/infer.json?encode=none" % env["ids"]["model"], body,
                           dict(API, **{"Content-Type": ctype}))
    assert status == 200, text[:300]
    width, height = Image.open(io.BytesIO(data)).size
    answer = json.loads(text)
    assert (answer["width"], answer["height"]) == (width, height)


@pytest.mark.parametrize("job", ["surrogate", "xss"])
def test_pages_render_hostile_names_safely(env, job):
    """A name with a lone surrogate or markup on disk: every page still answers 200, escaped."""
    url, job_id = env["server"].url, env["ids"][job]
    for path in ("/", "/jobs/%s" % job_id, "/?tab=model", "/index.json", "/jobs/%s.json" % job_id):
        status, _, text = call(url, "GET", path, headers={"Accept": "text/html"})
        if status in (301, 302):
            status, _, text = call(url, "GET", _[next(k for k in _ if k.lower() == "location")].split(url)[-1],
                                   headers={"Accept": "text/html"})
        assert status == 200, "%s: %d" % (path, status)
        if path.endswith(".json"):  # JSON carries the name as data (served as application/json, nosniff)
            continue
        assert "<script>alert(1)" not in text and "onerror=alert" not in text.replace("onerror=alert(2)&gt;", "")


def test_security_headers(env):
    status, headers, _ = call(env["server"].url, "GET", "/", headers={"Accept": "text/html"})
    assert status == 200
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_corpus_size():
    assert len(CASES) + len(ACCEPTED) + 2 >= 40
