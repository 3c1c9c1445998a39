"""Datum encoding (raw BGR and encoded) and LMDB writing with map growth."""

import io

import numpy as np
from PIL import Image

from digits_seg.datasets import lmdb_io
from digits_seg.datasets.datum import datum_to_array, decode_datum, encode_datum, raw_array
from digits_seg.networks.wire import MessageWriter


def test_raw_datum_is_bgr_chw_and_round_trips():
    a = np.zeros((2, 3, 3), np.uint8)
    a[..., 0] = 10  # R
    a[..., 2] = 30  # B
    data, c, h, w = raw_array(a)
    assert (c, h, w) == (3, 2, 3) and data[:6] == bytes([30] * 6)  # first plane is blue
    buf = encode_datum(data, c, h, w, encoded=False)
    d = decode_datum(buf)
    assert (d.channels, d.height, d.width, d.encoded) == (3, 2, 3, False)
    assert np.array_equal(datum_to_array(buf), a)


def test_encoded_label_datum_decodes_palette_indices():
    lbl = Image.fromarray(np.array([[0, 3], [255, 1]], np.uint8), "P")
    lbl.putpalette([9] * 768)
    b = io.BytesIO()
    lbl.save(b, "PNG")
    buf = encode_datum(b.getvalue(), 1, 2, 2, encoded=True)
    assert decode_datum(buf).data == b.getvalue()
    assert datum_to_array(buf, is_label=True).tolist() == [[0, 3], [255, 1]]


def test_float_data_label_datum():
    w = MessageWriter().varint(1, 1).varint(2, 1).varint(3, 2).packed_float32(6, [2.0, 7.0])
    assert datum_to_array(w.to_bytes(), is_label=True).tolist() == [[2, 7]]


def test_lmdb_writer_grows_map(tmp_path):
    path = str(tmp_path / "db")
    w = lmdb_io.LMDBWriter(path, map_size=64 * 1024)
    for i in range(40):
        w.put(lmdb_io.key_for(i), bytes(8000))
    w.close()
    env = lmdb_io.open_readonly(path)
    keys = lmdb_io.read_keys(env)
    assert len(keys) == 40 and keys[0] == b"000000000" and keys[-1] == b"000000039"
    env.close()


def test_shared_readers_survive_concurrent_first_opens(tmp_path):
    """Web server threads may open the same split at the same moment (py-lmdb refuses a second open)."""
    import threading

    path = str(tmp_path / "db")
    w = lmdb_io.LMDBWriter(path)
    w.put(lmdb_io.key_for(0), b"x")
    w.close()
    envs, errors = [], []
    barrier = threading.Barrier(8)

    def open_it():
        barrier.wait()
        try:
            envs.append(lmdb_io.shared_readonly(path))
        except Exception as e:  # noqa: BLE001 - the assertion below reports it
            errors.append(e)
    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len({id(e) for e in envs}) == 1
    lmdb_io.forget_readers(str(tmp_path))
