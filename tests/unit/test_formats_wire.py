"""Protocol-buffer wire format primitives used by caffemodel and LMDB Datum records."""

import struct

import numpy as np
import pytest

from digits_seg.errors import ValidationError
from digits_seg.networks.wire import (FIXED32, FIXED64, LENGTH, VARINT, MessageWriter, WireError,
                                      as_float32, as_signed, encode_varint, iter_fields, read_varint)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31 - 1, 2**32, 2**63 - 1, 2**64 - 1])
def test_varint_round_trip(value):
    data = encode_varint(value)
    assert read_varint(data, 0) == (value, len(data))


def test_known_encodings_and_negative_numbers():
    assert encode_varint(300) == b"\xac\x02"
    assert encode_varint(-1) == b"\xff" * 9 + b"\x01"
    value, _ = read_varint(encode_varint(-5), 0)
    assert as_signed(value) == -5
    # an over-long 10th byte keeps the low 64 bits, as protobuf does
    value, _ = read_varint(b"\xff" * 9 + b"\x7f", 0)
    assert value == 2**64 - 1


def test_varint_errors():
    with pytest.raises(WireError, match="truncated varint at byte 2"):
        read_varint(b"\x80\x80", 0)
    with pytest.raises(WireError, match="varint too long"):
        read_varint(b"\xff" * 11, 0)
    assert issubclass(WireError, ValidationError)


def test_writer_and_iter_fields_agree():
    inner = MessageWriter().varint(1, 7)
    w = (MessageWriter().varint(1, 150).string(2, "héllo").float32(3, 1.5).bool(4, True)
         .message(5, inner).packed_varints(6, [3, 270]).packed_float32(7, np.array([1.0, -2.0])))
    w.bytes_field(8, struct.pack("<d", 2.25))
    fields = list(iter_fields(w.to_bytes()))
    assert [(f, t) for f, t, _ in fields] == [(1, VARINT), (2, LENGTH), (3, FIXED32), (4, VARINT),
                                               (5, LENGTH), (6, LENGTH), (7, LENGTH), (8, LENGTH)]
    assert fields[0][2] == 150 and bytes(fields[1][2]).decode() == "héllo"
    assert as_float32(fields[2][2]) == 1.5 and fields[3][2] == 1
    assert list(iter_fields(fields[4][2])) == [(1, VARINT, 7)]
    assert np.frombuffer(bytes(fields[6][2]), "<f4").tolist() == [1.0, -2.0]


def test_fixed64_field_is_read():
    data = encode_varint((9 << 3) | FIXED64) + struct.pack("<d", 0.5)
    [(field, wtype, raw)] = list(iter_fields(data))
    assert (field, wtype) == (9, FIXED64) and struct.unpack("<d", bytes(raw))[0] == 0.5


@pytest.mark.parametrize("data, message", [
    (b"\x12\x05abc", "field 2 claims 5 bytes but only 3 remain"),
    (b"\x1d\x00\x00", "truncated 32-bit field 3"),
    (b"\x09\x00", "truncated 64-bit field 1"),
    (b"\x0b", "unsupported wire type 3"),
    (b"\x00\x01", "invalid field number 0"),
    (b"\x08", "truncated varint"),
])
def test_corrupt_messages(data, message):
    with pytest.raises(WireError, match=message):
        list(iter_fields(data))


def test_random_bytes_terminate():
    rng = np.random.default_rng(7)
    for _ in range(200):
        data = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        try:
            fields = list(iter_fields(data))
        except WireError:
            continue
        assert len(fields) <= len(data)
