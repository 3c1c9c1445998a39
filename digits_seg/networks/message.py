"""The value model of Caffe's text format: `Message` (ordered, repeatable fields), `Enum` and errors.

Kept apart from the parser and printer (`prototxt`) and the V1 upgrade (`v1_layers`) that
build and read it; `prototxt` re-exports these names, which is how most code imports them.
"""

import math
import re
from collections import namedtuple

from ..errors import ValidationError


class PrototxtError(ValidationError):
    """The text is not valid prototxt; `line`/`column` (1-based) point at the problem."""

    def __init__(self, message, line, column, source="<string>"):
        where = "line %d:%d" % (line, column)
        if source and source != "<string>":
            where = "%s %s" % (source, where)
        super().__init__("%s: %s" % (where, message), field=None)
        self.reason = message
        self.line = line
        self.column = column
        self.source = source


class Enum(str):
    """A bare identifier value such as `MAX` or `TRAIN` (printed without quotes)."""

    __slots__ = ()

    def __repr__(self):
        return "Enum(%s)" % str.__repr__(self)


Field = namedtuple("Field", "name value line column")
Field.__doc__ = "One field occurrence: its name, value and source position (None if built in code)."


def _same_value(a, b):
    """Compare two field values by kind and content (True is not 1, 'MAX' is not MAX)."""
    if _kind(a) != _kind(b):
        return False
    if isinstance(a, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Enum):
        return "enum"
    if isinstance(value, str):
        return "str"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Message):
        return "message"
    raise TypeError("unsupported prototxt value %r (use int, float, bool, str, Enum or Message)" % (value,))


class Message:
    """An ordered list of fields; repeated fields simply occur several times."""

    __hash__ = None

    def __init__(self, fields=(), line=None, column=None):
        self.line = line
        self.column = column
        self.fields = []
        for item in fields:
            if isinstance(item, Field):
                self.fields.append(item)
            else:
                name, value = item
                self.add(name, value)

    # -- reading -------------------------------------------------------------------
    def get(self, name, default=None):
        """Return the last value of `name` (proto2 semantics for a non-repeated field)."""
        for f in reversed(self.fields):
            if f.name == name:
                return f.value
        return default

    def get_all(self, name):
        """Return every value of `name` in order (a repeated field)."""
        return [f.value for f in self.fields if f.name == name]

    def has(self, name):
        return any(f.name == name for f in self.fields)

    __contains__ = has

    def line_of(self, name, index=-1):
        """Return the source line of the `index`-th occurrence of `name` (else the message's)."""
        found = [f for f in self.fields if f.name == name]
        if not found:
            return self.line
        try:
            line = found[index].line
        except IndexError:
            return self.line
        return line if line is not None else self.line

    def names(self):
        """Return the distinct field names in first-occurrence order."""
        seen = []
        for f in self.fields:
            if f.name not in seen:
                seen.append(f.name)
        return seen

    def __iter__(self):
        return iter([(f.name, f.value) for f in self.fields])

    def __len__(self):
        return len(self.fields)

    # -- editing -------------------------------------------------------------------
    def add(self, name, value, line=None, column=None):
        """Append one occurrence of `name`."""
        _kind(value)
        _check_name(name)
        self.fields.append(Field(name, value, line, column))
        return self

    def set(self, name, value):
        """Replace every occurrence of `name` by a single one (kept at the first position)."""
        _kind(value)
        _check_name(name)
        out, done = [], False
        for f in self.fields:
            if f.name != name:
                out.append(f)
            elif not done:
                out.append(Field(name, value, f.line, f.column))
                done = True
        if not done:
            out.append(Field(name, value, None, None))
        self.fields = out
        return self

    def remove(self, name):
        """Remove every occurrence of `name`; return how many were removed."""
        before = len(self.fields)
        self.fields = [f for f in self.fields if f.name != name]
        return before - len(self.fields)

    def copy(self):
        """Return a deep copy (nested messages copied too, positions kept)."""
        dup = Message(line=self.line, column=self.column)
        dup.fields = [Field(f.name, f.value.copy() if isinstance(f.value, Message) else f.value,
                            f.line, f.column) for f in self.fields]
        return dup

    # -- comparison / display ------------------------------------------------------
    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        if len(self.fields) != len(other.fields):
            return False
        return all(a.name == b.name and _same_value(a.value, b.value)
                   for a, b in zip(self.fields, other.fields))

    def __repr__(self):
        inner = ", ".join("%s=%r" % (f.name, f.value) for f in self.fields[:6])
        more = ", ..." if len(self.fields) > 6 else ""
        return "Message(%s%s)" % (inner, more)

    def __str__(self):
        from .prototxt import format_message  # the printer lives with the parser

        return format_message(self)


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _check_name(name):
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError("invalid prototxt field name %r" % (name,))
