"""create_dataset end to end on tiny SynthCity data: bytes kept, conversions, refusals, aborts."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from digits_seg.config import load_settings
from digits_seg.datasets import lmdb_io, synthcity
from digits_seg.datasets.create import create_dataset
from digits_seg.datasets.datum import decode_datum
from digits_seg.datasets.info import DatasetInfo
from digits_seg.datasets.params import validate_params
from digits_seg.datasets.reader import SegmentationLMDB
from digits_seg.datasets.stats import read_stats
from digits_seg.errors import JobAborted, ValidationError


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={"DIGITS_SEG_DATA_ROOTS": str(tmp_path)})


@pytest.fixture
def city(tmp_path):
    synthcity.generate(str(tmp_path / "city"), 12, size=(32, 24), seed=5)
    return tmp_path / "city"


def params_for(settings, folder, **kw):
    raw = {"images": str(folder / "images"), "labels": str(folder / "labels"),
           "classes_file": str(folder / "classes.txt"), "val_pct": 25}
    raw.update(kw)
    return validate_params(raw, settings)


def run(job_dir, params, **kw):
    lines = []
    os.makedirs(job_dir, exist_ok=True)
    result = create_dataset(str(job_dir), params, log=lines.append, **kw)
    return result, lines


def test_unchanged_files_are_stored_byte_for_byte(tmp_path, settings, city):
    result, lines = run(tmp_path / "job", params_for(settings, city))
    assert result["train"] == 9 and result["val"] == 3 and result["num_classes"] == 10
    assert {"train_db", "val_db", "labels.txt", "colormap.json", "stats.h5", "dataset.json"} <= set(os.listdir(tmp_path / "job"))
    assert not [n for n in os.listdir(tmp_path / "job") if n.startswith(".partial")]
    ds = SegmentationLMDB(str(tmp_path / "job" / "train_db"))
    originals = {open(p, "rb").read() for p in (city / "images").iterdir()}
    labels = {open(p, "rb").read() for p in (city / "labels").iterdir()}
    for i in range(len(ds)):
        img_raw, lbl_raw = ds.raw(i)
        assert decode_datum(img_raw).data in originals
        assert decode_datum(lbl_raw).data in labels
    image, label = ds[0]
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8 and label.shape == (24, 32)
    assert any("re-encoded 0 images and 0 labels" in ln for ln in lines)


def test_info_and_stats_match_the_labels(tmp_path, settings, city):
    run(tmp_path / "job", params_for(settings, city))
    info = DatasetInfo.load(str(tmp_path / "job"))
    assert info.classes == list(synthcity.CLASSES) and info.colormap[0] == list(synthcity.COLORMAP[0])
    assert info.splits["train"] == {"count": 9, "size": [32, 24]} and not info.variable_size
    ds = SegmentationLMDB(str(tmp_path / "job" / "val_db"))
    counts = sum(np.bincount(ds[i][1].ravel(), minlength=256) for i in range(len(ds)))
    assert info.class_pixel_counts("val").tolist() == counts[:10].tolist()
    st = read_stats(str(tmp_path / "job" / "stats.h5"))
    assert st["train"]["count"] == 9 and st["train"]["mean_image"].shape == (24, 32, 3)
    assert st["train"]["image_sizes"].tolist() == [[32, 24, 9]]
    assert len(info.mean_pixel) == 3 and 0 < info.mean_pixel[0] < 255
    assert info.to_dict()["class_table"]["train"][2]["name"] == "road"


@pytest.mark.parametrize("mode", ["squash", "crop", "fill", "half_crop"])
def test_resize_modes_keep_label_values(tmp_path, settings, city, mode):
    run(tmp_path / "job", params_for(settings, city, resize="20x20", resize_mode=mode, channels="gray",
                                         encoding="raw"))
    ds = SegmentationLMDB(str(tmp_path / "job" / "train_db"))
    image, label = ds[0]
    assert image.shape == (20, 20, 1) and label.shape == (20, 20)
    assert set(np.unique(label).tolist()) <= set(range(10)) | {255}
    if mode == "fill":
        assert (label == 255).any()  # padding is ignore, never a class
    if mode in ("squash", "crop"):
        assert not (label == 255).any()


def test_rgb_colour_labels_are_mapped_and_reencoded(tmp_path, settings, city):
    rgb = tmp_path / "rgb"
    os.makedirs(rgb / "labels")
    for f in (city / "labels").iterdir():
        Image.open(f).convert("RGB").save(rgb / "labels" / f.name.replace(".png", "_L.png"))
    (tmp_path / "cmap.txt").write_text("".join("%d %d %d\n" % c for c in synthcity.COLORMAP))
    p = validate_params({"images": str(city / "images"), "labels": str(rgb / "labels"), "val_pct": 0,
                         "colormap_file": str(tmp_path / "cmap.txt")}, settings)
    run(tmp_path / "job", p)
    ds = SegmentationLMDB(str(tmp_path / "job" / "train_db"))
    stems = sorted(f.name for f in (city / "labels").iterdir())
    expected = np.asarray(Image.open(city / "labels" / stems[0]))
    assert np.array_equal(ds[0][1], expected)
    assert DatasetInfo.load(str(tmp_path / "job")).to_dict()["label_suffix"] == "_L"


def make_pair(folder, stem, image, label):
    os.makedirs(folder / "images", exist_ok=True)
    os.makedirs(folder / "labels", exist_ok=True)
    Image.fromarray(image).save(folder / "images" / (stem + ".png"))
    Image.fromarray(label).save(folder / "labels" / (stem + ".png"))


def test_binary_masks_become_classes_0_and_1(tmp_path, settings):
    rng = np.random.default_rng(0)
    for i in range(4):
        lbl = np.where(rng.random((16, 16)) > 0.5, 255, 0).astype(np.uint8)
        make_pair(tmp_path / "m", "m%d" % i, rng.integers(0, 255, (16, 16), dtype=np.uint8), lbl)
    p = validate_params({"images": str(tmp_path / "m" / "images"), "labels": str(tmp_path / "m" / "labels"),
                         "val_pct": 0, "channels": "keep"}, settings)
    run(tmp_path / "job", p)
    info = DatasetInfo.load(str(tmp_path / "job"))
    assert info.classes == ["background", "foreground"] and info.channels == 1
    ds = SegmentationLMDB(str(tmp_path / "job" / "train_db"))
    src = np.asarray(Image.open(tmp_path / "m" / "labels" / "m0.png"))
    assert np.array_equal(ds[0][1], (src == 255).astype(np.uint8))


def broken_folder(tmp_path):
    rng = np.random.default_rng(1)
    f = tmp_path / "bad"
    for i in range(3):
        make_pair(f, "ok%d" % i, rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), np.zeros((8, 8), np.uint8))
    make_pair(f, "mismatch", np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8), np.uint8))
    make_pair(f, "badvalue", np.zeros((8, 8, 3), np.uint8), np.full((8, 8), 40, np.uint8))
    data = open(f / "images" / "ok0.png", "rb").read()
    open(f / "images" / "trunc.png", "wb").write(data[: len(data) // 2])
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(f / "labels" / "trunc.png")
    (tmp_path / "two.txt").write_text("a\nb\n")
    return f


def test_errors_refuse_and_leave_nothing(tmp_path, settings):
    f = broken_folder(tmp_path)
    p = validate_params({"images": str(f / "images"), "labels": str(f / "labels"), "val_pct": 0,
                         "classes_file": str(tmp_path / "two.txt"), "binary": "no"}, settings)
    with pytest.raises(ValidationError) as e:
        run(tmp_path / "job", p)
    msg = e.value.message
    assert "mismatch.png" in msg and "trunc.png" in msg and "badvalue.png" in msg and "skip bad pairs" in msg
    assert os.listdir(tmp_path / "job") == []


def test_skip_bad_logs_each_skipped_pair(tmp_path, settings):
    f = broken_folder(tmp_path)
    p = validate_params({"images": str(f / "images"), "labels": str(f / "labels"), "val_pct": 0,
                         "classes_file": str(tmp_path / "two.txt"), "skip_bad": "on", "binary": "no"}, settings)
    result, lines = run(tmp_path / "job", p)
    assert result["train"] == 3 and result["skipped"] == 3
    for part in ("features", "labels"):  # skipped pairs leave no gaps in the keys
        env = lmdb_io.open_readonly(str(tmp_path / "job" / "train_db" / part))
        assert lmdb_io.read_keys(env) == [lmdb_io.key_for(i) for i in range(3)]
        env.close()
    skipped = [ln for ln in lines if ln.startswith("skipped pair")]
    assert len(skipped) == 3 and any("badvalue" in ln for ln in skipped)


def test_abort_leaves_no_complete_looking_dataset(tmp_path, settings, city):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3
    with pytest.raises(JobAborted):
        run(tmp_path / "job", params_for(settings, city), should_stop=stop)
    assert os.listdir(tmp_path / "job") == []


def test_pool_path_gives_the_same_records_and_statistics(tmp_path, settings):
    """Workers write the records and sum the sampled images themselves: the result must not
    depend on how the pairs were shared out (70 pairs: more than MEAN_SAMPLES per split)."""
    synthcity.generate(str(tmp_path / "big"), 90, size=(16, 16), seed=2)
    p = params_for(settings, tmp_path / "big", val_pct=20)
    run(tmp_path / "a", p, workers=2)
    run(tmp_path / "b", p, workers=1)
    for split, n in (("train", 72), ("val", 18)):
        a = SegmentationLMDB(str(tmp_path / "a" / (split + "_db")))
        b = SegmentationLMDB(str(tmp_path / "b" / (split + "_db")))
        assert len(a) == len(b) == n
        assert all(a.raw(i) == b.raw(i) for i in range(n))
    sa, sb = read_stats(str(tmp_path / "a" / "stats.h5")), read_stats(str(tmp_path / "b" / "stats.h5"))
    for split in ("train", "val"):
        for key in ("class_pixels", "class_images", "mean_pixel", "mean_image"):
            assert np.array_equal(sa[split][key], sb[split][key]), (split, key)
    # the mean image is the mean of the sampled images, as read back from the dataset
    from digits_seg.datasets.create import MEAN_SAMPLES, sample_positions
    train = SegmentationLMDB(str(tmp_path / "a" / "train_db"))
    picked = sorted(sample_positions(72, MEAN_SAMPLES))
    expected = np.mean([train[i][0].astype(np.float64) for i in picked], axis=0)
    assert np.allclose(sa["train"]["mean_image"], expected, atol=1e-4)
    assert np.allclose(sa["train"]["mean_pixel"], expected.mean(axis=(0, 1)), atol=1e-6)
    assert sa["train"]["mean_samples"] == MEAN_SAMPLES and sa["val"]["mean_samples"] == 18


def test_workers_grow_a_full_map_and_adopt_each_others_growth(tmp_path, settings, monkeypatch):
    """Two workers write one LMDB: when one grows the map, the other must adopt the new size."""
    synthcity.generate(str(tmp_path / "big"), 48, size=(64, 48), seed=3)
    monkeypatch.setattr(lmdb_io, "DEFAULT_MAP_SIZE", 64 * 1024)  # a few records fill it (forked workers inherit it)
    p = params_for(settings, tmp_path / "big", val_pct=0)
    run(tmp_path / "a", p, workers=2)
    monkeypatch.undo()
    run(tmp_path / "b", p, workers=1)
    a, b = SegmentationLMDB(str(tmp_path / "a" / "train_db")), SegmentationLMDB(str(tmp_path / "b" / "train_db"))
    assert len(a) == len(b) == 48
    assert all(a.raw(i) == b.raw(i) for i in range(48))


def test_skipped_pairs_in_the_pool_leave_contiguous_keys(tmp_path, settings):
    f = broken_folder(tmp_path)
    rng = np.random.default_rng(7)
    for i in range(40):
        make_pair(f, "more%02d" % i, rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), np.ones((8, 8), np.uint8))
    p = validate_params({"images": str(f / "images"), "labels": str(f / "labels"), "val_pct": 0,
                         "classes_file": str(tmp_path / "two.txt"), "skip_bad": "on", "binary": "no"}, settings)
    run(tmp_path / "a", p, workers=2)
    run(tmp_path / "b", p, workers=1)
    a, b = SegmentationLMDB(str(tmp_path / "a" / "train_db")), SegmentationLMDB(str(tmp_path / "b" / "train_db"))
    assert len(a) == len(b) == 43
    assert all(a.raw(i) == b.raw(i) for i in range(43))
    env = lmdb_io.shared_readonly(str(tmp_path / "a" / "train_db" / "labels"))  # the reader above holds it
    assert lmdb_io.read_keys(env) == [lmdb_io.key_for(i) for i in range(43)]


def test_reads_a_digits_style_raw_folder(tmp_path):
    """DIGITS wrote raw uint8 C×H×W Datums (BGR) with encoded=false and %09d keys."""
    from digits_seg.datasets.datum import encode_datum
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (6, 5, 3), dtype=np.uint8) for _ in range(3)]
    labels = [rng.integers(0, 4, (6, 5), dtype=np.uint8) for _ in range(3)]
    for sub, arrays in (("features", images), ("labels", labels)):
        w = lmdb_io.LMDBWriter(str(tmp_path / "digits" / "train_db" / sub))
        for i, a in enumerate(arrays):
            chw = a[:, :, ::-1].transpose(2, 0, 1) if a.ndim == 3 else a[None]
            w.put(("%09d" % i).encode(), encode_datum(np.ascontiguousarray(chw).tobytes(), chw.shape[0], 6, 5, False))
        w.close()
    ds = SegmentationLMDB(str(tmp_path / "digits" / "train_db"))
    assert len(ds) == 3
    for i in range(3):
        img, lbl = ds[i]
        assert np.array_equal(img, images[i]) and np.array_equal(lbl, labels[i])
    info = DatasetInfo.load(str(tmp_path / "digits"))
    assert info.splits["train"]["count"] == 3 and info.splits["train"]["size"] == [5, 6]


def test_jpeg_encoding_reencodes_png_images(tmp_path, settings, city):
    run(tmp_path / "job", params_for(settings, city, encoding="jpeg"))
    img_raw, _ = SegmentationLMDB(str(tmp_path / "job" / "train_db")).raw(0)
    d = decode_datum(img_raw)
    assert d.encoded and Image.open(io.BytesIO(d.data)).format == "JPEG"


@pytest.mark.slow
def test_pool_spawns_when_the_parent_has_threads(tmp_path, settings):
    """A task with a heartbeat thread (or the web server) must not fork: the spawn path works too."""
    import threading

    synthcity.generate(str(tmp_path / "big"), 34, size=(16, 16), seed=6)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    try:
        result, _ = run(tmp_path / "job", params_for(settings, tmp_path / "big", val_pct=0), workers=2)
    finally:
        stop.set()
        t.join()
    assert result["train"] == 34


def test_variable_sizes_have_no_mean_image(tmp_path, settings):
    rng = np.random.default_rng(4)
    for i, (w, h) in enumerate(((8, 6), (8, 6), (10, 7))):
        make_pair(tmp_path / "v", "v%d" % i, rng.integers(0, 255, (h, w, 3), dtype=np.uint8), np.zeros((h, w), np.uint8))
    p = validate_params({"images": str(tmp_path / "v" / "images"), "labels": str(tmp_path / "v" / "labels"),
                         "val_pct": 0}, settings)
    run(tmp_path / "job", p)
    info = DatasetInfo.load(str(tmp_path / "job"))
    assert info.variable_size and info.splits["train"]["size"] is None
    assert "mean_image" not in read_stats(str(tmp_path / "job" / "stats.h5"))["train"]


def _corrupt_beyond_repair(jpeg):
    """Garble entropy-coded bytes until a *full* Pillow decode fails (libjpeg shrugs off most damage)."""
    for seed in range(200):
        rng = np.random.default_rng(seed)
        bad = bytearray(jpeg)
        start = len(bad) // 3
        for k in rng.choice(np.arange(start, len(bad) - 4), size=60, replace=False):
            bad[k] = int(rng.integers(0, 256))
        try:
            Image.open(io.BytesIO(bytes(bad))).load()
        except OSError:
            return bytes(bad)
    raise AssertionError("no corruption made the full decode fail")


def test_jpegs_stored_unchanged_are_validated_fully_and_keep_their_size(tmp_path, settings):
    """Unchanged JPEGs are checked with a reduced-scale decode (process.JPEG_CHECK_SCALE): a
    truncated file and one with corrupt entropy-coded data must still be caught, and the
    stored Datum must carry the full size and the original bytes."""
    from digits_seg.datasets.check import check_folders

    rng = np.random.default_rng(11)
    f = tmp_path / "jpg"
    os.makedirs(f / "images")
    os.makedirs(f / "labels")
    for i in range(40):
        img = np.clip(rng.normal(120, 40, (48, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(f / "images" / ("p%02d.jpg" % i), quality=90)
        Image.fromarray((np.arange(48 * 64).reshape(48, 64) % 3).astype(np.uint8)).save(f / "labels" / ("p%02d.png" % i))
    good = open(f / "images" / "p00.jpg", "rb").read()
    open(f / "images" / "p01.jpg", "wb").write(good[: len(good) * 2 // 3])  # truncated
    open(f / "images" / "p02.jpg", "wb").write(_corrupt_beyond_repair(good))
    raw = {"images": str(f / "images"), "labels": str(f / "labels"), "val_pct": 0}

    report = check_folders(validate_params(raw, settings), settings).to_dict()
    flagged = {path for e in report["errors"] for path in e["files"]}
    assert {str(f / "images" / "p01.jpg"), str(f / "images" / "p02.jpg")} <= flagged, report["errors"]

    result, lines = run(tmp_path / "job", validate_params(dict(raw, skip_bad="on"), settings), workers=2)
    assert result["train"] == 38 and result["skipped"] == 2
    ds = SegmentationLMDB(str(tmp_path / "job" / "train_db"))
    stems = sorted(n[:-4] for n in os.listdir(f / "images") if n not in ("p01.jpg", "p02.jpg"))
    for i in (0, 17, 37):
        d = decode_datum(ds.raw(i)[0])
        assert (d.width, d.height, d.channels) == (64, 48, 3)
        assert d.data == open(f / "images" / (stems[i] + ".jpg"), "rb").read()
        assert ds[i][0].shape == (48, 64, 3)


def test_pngs_stored_unchanged_are_validated_fully_and_keep_their_bytes(tmp_path, settings):
    """Unchanged PNG images are checked by inflating their pixel data (png.pixels_complete), not by a
    full decode: truncated files, corrupt streams and an unknown row filter must still be caught,
    with the same verdicts as Pillow's, and the stored Datum carries the original bytes. RGB labels
    are re-encoded by our own PNG encoder: the stored ids must equal a numpy mapping of the colours."""
    from digits_seg.datasets.check import check_folders

    rng = np.random.default_rng(12)
    f = tmp_path / "png"
    os.makedirs(f / "images")
    os.makedirs(f / "labels")
    colors = np.array([[128, 64, 128], [70, 70, 70], [0, 0, 142]], np.uint8)
    ids = {}
    for i in range(30):
        img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(img).save(f / "images" / ("p%02d.png" % i), compress_level=1)
        idx = ((np.arange(48)[:, None] // (4 + i % 5) + np.arange(64)[None] // 9) % 3).astype(np.uint8)
        Image.fromarray(colors[idx]).save(f / "labels" / ("p%02d.png" % i))
        ids["p%02d" % i] = idx
    (f / "colors.txt").write_text("".join("%d %d %d\n" % tuple(c) for c in colors))
    good = open(f / "images" / "p00.png", "rb").read()
    open(f / "images" / "p01.png", "wb").write(good[: len(good) * 2 // 3])  # truncated
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x5A  # a changed byte in the compressed pixels
    open(f / "images" / "p02.png", "wb").write(bytes(bad))
    raw = {"images": str(f / "images"), "labels": str(f / "labels"), "colormap_file": str(f / "colors.txt"),
           "val_pct": 0}

    report = check_folders(validate_params(raw, settings), settings).to_dict()
    flagged = {path: e["code"] for e in report["errors"] for path in e["files"]}
    assert set(flagged) == {str(f / "images" / "p01.png"), str(f / "images" / "p02.png")}, report["errors"]
    assert set(flagged.values()) <= {"truncated", "unreadable"}

    result, lines = run(tmp_path / "job", validate_params(dict(raw, skip_bad="on"), settings), workers=2)
    assert result["train"] == 28 and result["skipped"] == 2
    ds = SegmentationLMDB(str(tmp_path / "job" / "train_db"))
    stems = sorted(n[:-4] for n in os.listdir(f / "images") if n not in ("p01.png", "p02.png"))
    for i in range(len(stems)):
        img, lbl = ds.raw(i)
        d = decode_datum(img)
        assert (d.width, d.height, d.channels) == (64, 48, 3)
        assert d.data == open(f / "images" / (stems[i] + ".png"), "rb").read()
        stored = np.asarray(Image.open(io.BytesIO(decode_datum(lbl).data)))
        np.testing.assert_array_equal(stored, ids[stems[i]])


def test_float_images_are_refused_not_clipped_black(tmp_path, settings):
    """A 32-bit float TIFF with values 0..1 (a normalised microscopy export) used to be stored by Pillow's
    clipping conversion as an all-0/1 (black) image."""
    from digits_seg.datasets.check import check_folders

    f = tmp_path / "float"
    os.makedirs(f / "images")
    os.makedirs(f / "labels")
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.random((16, 20)).astype(np.float32), "F").save(f / "images" / ("cell_%02d.tif" % i))
        Image.fromarray((rng.random((16, 20)) > 0.5).astype(np.uint8)).save(f / "labels" / ("cell_%02d.png" % i))
    raw = {"images": str(f / "images"), "labels": str(f / "labels"), "val_pct": 0}
    report = check_folders(validate_params(raw, settings), settings).to_dict()
    assert {e["code"] for e in report["errors"]} == {"image_range"}
    assert "cell_00.tif is a 32-bit floating-point image (values 0" in report["errors"][0]["message"]
    with pytest.raises(ValidationError, match="floating-point"):
        run(tmp_path / "job", validate_params(raw, settings))
    assert not os.path.exists(tmp_path / "job" / "dataset.json")
