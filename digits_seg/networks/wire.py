"""Protocol-buffer wire format: just enough to read and write Caffe's binary messages.

Used for `.caffemodel` (NetParameter / BlobProto) and LMDB `Datum` records. Field numbers
are facts of the format; no schema compiler is involved.
"""

import struct

from ..errors import ValidationError

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


class WireError(ValidationError):
    """The bytes are not a valid protocol-buffer message (truncated or corrupt)."""


def read_varint(buf, pos):
    """Decode a varint at `pos`; return (value, new_pos)."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireError("truncated varint at byte %d" % pos)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            # Protobuf keeps the low 64 bits of an over-long 10th byte; so do we.
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long at byte %d" % pos)


def encode_varint(value):
    """Encode a non-negative int (negative ints as 64-bit two's complement) as a varint."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def iter_fields(buf):
    """Yield (field_number, wire_type, value) for each field of a message.

    value is an int for VARINT, bytes (a memoryview slice) for LENGTH, and the raw 4/8
    bytes for FIXED32/FIXED64.
    """
    buf = memoryview(buf)
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        field, wtype = key >> 3, key & 7
        if field == 0:
            raise WireError("invalid field number 0 at byte %d" % pos)
        if wtype == VARINT:
            value, pos = read_varint(buf, pos)
        elif wtype == LENGTH:
            n, pos = read_varint(buf, pos)
            if pos + n > end:
                raise WireError("field %d claims %d bytes but only %d remain" % (field, n, end - pos))
            value = buf[pos:pos + n]
            pos += n
        elif wtype == FIXED32:
            if pos + 4 > end:
                raise WireError("truncated 32-bit field %d" % field)
            value = buf[pos:pos + 4]
            pos += 4
        elif wtype == FIXED64:
            if pos + 8 > end:
                raise WireError("truncated 64-bit field %d" % field)
            value = buf[pos:pos + 8]
            pos += 8
        else:
            raise WireError("unsupported wire type %d for field %d at byte %d" % (wtype, field, pos))
        yield field, wtype, value


def as_float32(raw):
    """Decode a FIXED32 value as a float."""
    return struct.unpack("<f", bytes(raw))[0]


def as_signed(value):
    """Interpret a varint as a signed 64-bit int (int32/int64 fields)."""
    return value - (1 << 64) if value >= 1 << 63 else value


class MessageWriter:
    """Append fields to a message buffer in order; `bytes()` returns the encoding."""

    def __init__(self):
        self._parts = []

    def _key(self, field, wtype):
        self._parts.append(encode_varint((field << 3) | wtype))

    def varint(self, field, value):
        self._key(field, VARINT)
        self._parts.append(encode_varint(int(value)))
        return self

    def bool(self, field, value):
        return self.varint(field, 1 if value else 0)

    def bytes_field(self, field, data):
        self._key(field, LENGTH)
        self._parts.append(encode_varint(len(data)))
        self._parts.append(bytes(data))
        return self

    def string(self, field, text):
        return self.bytes_field(field, text.encode("utf-8"))

    def message(self, field, writer):
        return self.bytes_field(field, writer.to_bytes())

    def float32(self, field, value):
        self._key(field, FIXED32)
        self._parts.append(struct.pack("<f", value))
        return self

    def packed_varints(self, field, values):
        return self.bytes_field(field, b"".join(encode_varint(int(v)) for v in values))

    def packed_float32(self, field, array):
        """Write a float32 numpy array (or sequence) as a packed repeated float field."""
        import numpy as np

        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        return self.bytes_field(field, data)

    def to_bytes(self):
        return b"".join(self._parts)
