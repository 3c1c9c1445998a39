"""Protocol-buffer text format ("prototxt"): a schema-free parser and printer.

Caffe networks and solvers are written in this format. Without `caffe.proto` we cannot
know field types, so values keep the type their spelling implies: quoted text is `str`,
a bare identifier is an `Enum` (except `true`/`false`, `inf`, `nan`), numbers are `int`
or `float`. Consumers (the compiler, the solver writer) interpret them per field.

Grammar accepted (recursive descent, one token of look-ahead)::

    message := (field [';' | ','])*
    field   := NAME ':' value | NAME [':'] ('{' message '}' | '<' message '>')
             | NAME ':' '[' [value (',' value)*] ']'
    value   := STRING+ | ['-'] NUMBER | ['-'] IDENT
"""

import math
import re
from collections import namedtuple

from .message import _NAME_RE, Enum, Field, Message, PrototxtError, _kind
from .v1_layers import V1_LAYER_TYPES, upgrade_v1, v1_type_name

__all__ = ["Enum", "Field", "Message", "PrototxtError", "parse", "format_message",
           "upgrade_v1", "V1_LAYER_TYPES", "v1_type_name"]

# -- tokenizer -----------------------------------------------------------------------
_TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<nl>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<number>-?(?:0[xX][0-9A-Fa-f]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[fF]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>["'])
  | (?P<punct>[{}\[\]<>:;,\-])
""", re.VERBOSE)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "?": "?"}

Token = namedtuple("Token", "kind text value line column")


def _tokenize(text, source):
    """Yield tokens; `value` holds the decoded string/number, `kind` one of
    'name', 'number', 'string', a punctuation character, or 'eof'."""
    pos, line, line_start, end = 0, 1, 0, len(text)
    while pos < end:
        m = _TOKEN_RE.match(text, pos)
        col = pos - line_start + 1
        if m is None:
            raise PrototxtError("unexpected character %r" % text[pos], line, col, source)
        kind = m.lastgroup
        if kind == "nl":
            line += 1
            line_start = m.end()
            pos = m.end()
            continue
        if kind in ("ws", "comment"):
            pos = m.end()
            continue
        if kind == "string":
            value, pos = _read_string(text, pos, line, col, source)
            yield Token("string", text[m.start():pos], value, line, col)
            continue
        tok = m.group()
        pos = m.end()
        if kind == "number":
            if pos < end and (text[pos].isalnum() or text[pos] == "_" or text[pos] == "."):
                raise PrototxtError("malformed number %r" % (tok + text[pos]), line, col, source)
            yield Token("number", tok, _number(tok, line, col, source), line, col)
        elif kind == "ident":
            yield Token("name", tok, tok, line, col)
        else:
            yield Token(tok, tok, tok, line, col)
    yield Token("eof", "", None, line, pos - line_start + 1)


def _number(tok, line, col, source):
    # A leading zero is read as decimal (protobuf would say octal): Caffe files never mean
    # octal, and "pad: 010" meaning 8 would surprise every user who wrote it.
    body = tok[1:] if tok.startswith("-") else tok
    if body[:2] in ("0x", "0X"):
        value = int(body, 16)
        return -value if tok.startswith("-") else value
    if any(c in body for c in ".eEfF"):
        return float(tok.rstrip("fF"))
    return int(tok, 10)


def _read_string(text, pos, line, col, source):
    """Decode a quoted string starting at `pos`; return (value, position after the quote)."""
    quote = text[pos]
    pos += 1
    out = []
    end = len(text)
    while True:
        if pos >= end or text[pos] == "\n":
            raise PrototxtError("unterminated string (missing closing %s)" % quote, line, col, source)
        c = text[pos]
        if c == quote:
            return "".join(out), pos + 1
        if c != "\\":
            out.append(c)
            pos += 1
            continue
        if pos + 1 >= end:
            raise PrototxtError("unterminated string (missing closing %s)" % quote, line, col, source)
        e = text[pos + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            pos += 2
        elif e in "xX":
            m = re.compile(r"[0-9A-Fa-f]{1,2}").match(text, pos + 2)
            if not m:
                raise PrototxtError("bad \\x escape in string", line, col, source)
            out.append(chr(int(m.group(), 16)))
            pos = m.end()
        elif e in "01234567":
            m = re.compile(r"[0-7]{1,3}").match(text, pos + 1)
            out.append(chr(int(m.group(), 8) & 0xFF))
            pos = m.end()
        elif e in "uU":
            width = 4 if e == "u" else 8
            digits = text[pos + 2:pos + 2 + width]
            if len(digits) != width or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                raise PrototxtError("bad \\%s escape in string (needs %d hex digits)" % (e, width),
                                    line, col, source)
            out.append(chr(int(digits, 16)))
            pos += 2 + width
        else:
            raise PrototxtError("unknown escape \\%s in string" % e, line, col, source)


# -- parser --------------------------------------------------------------------------
_MAX_DEPTH = 100  # deeper nesting is surely a broken file; also keeps recursion bounded
_WORD_VALUES = {"true": True, "True": True, "false": False, "False": False}
_FLOAT_WORDS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}


def _describe(tok):
    if tok.kind == "eof":
        return "end of file"
    if tok.kind == "string":
        return "string %s" % tok.text
    if tok.kind == "number":
        return "number %s" % tok.text
    if tok.kind == "name":
        return "'%s'" % tok.text
    return "'%s'" % tok.text


class _Parser:
    """Recursive-descent parser over the token stream (one token of look-ahead)."""

    def __init__(self, text, source):
        self.source = source
        self.tokens = list(_tokenize(text, source))
        self.i = 0

    @property
    def tok(self):
        return self.tokens[self.i]

    def next(self):
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def error(self, expected, tok=None):
        tok = tok or self.tok
        raise PrototxtError("expected %s, got %s" % (expected, _describe(tok)),
                            tok.line, tok.column, self.source)

    def parse_message(self, msg, closer, opener=None, depth=0):
        """Parse fields into `msg` until `closer` ('}', '>' or 'eof'); consume the closer.

        `opener` is the name token that opened this message, named when it is left open.
        """
        if depth > _MAX_DEPTH:
            self.error("at most %d levels of nested messages" % _MAX_DEPTH)
        while True:
            tok = self.tok
            if tok.kind == closer:
                self.next()
                return msg
            if tok.kind != "name":
                if closer == "eof":
                    self.error("a field name")
                if tok.kind == "eof" and opener is not None:
                    self.error("'%s' (to close '%s' opened at line %d:%d) or a field name"
                               % (closer, opener.text, opener.line, opener.column))
                self.error("'%s' or a field name" % closer)
            self.parse_field(msg, depth)
            if self.tok.kind in (";", ","):
                self.next()

    def parse_field(self, msg, depth):
        name_tok = self.next()
        name = name_tok.text
        colon = self.tok.kind == ":"
        if colon:
            self.next()
        tok = self.tok
        if tok.kind in ("{", "<"):
            self.next()
            sub = Message(line=name_tok.line, column=name_tok.column)
            self.parse_message(sub, "}" if tok.kind == "{" else ">", name_tok, depth + 1)
            msg.add(name, sub, name_tok.line, name_tok.column)
            return
        if not colon:
            self.error("':' or '{' after field name '%s'" % name)
        if tok.kind == "[":
            self.next()
            if self.tok.kind == "]":
                self.next()
                return
            while True:
                vtok = self.tok
                if vtok.kind in ("{", "<"):
                    self.next()
                    value = Message(line=vtok.line, column=vtok.column)
                    self.parse_message(value, "}" if vtok.kind == "{" else ">", name_tok, depth + 1)
                else:
                    value = self.parse_value(name)
                msg.add(name, value, vtok.line, vtok.column)
                if self.tok.kind == ",":
                    self.next()
                elif self.tok.kind == "]":
                    self.next()
                    return
                else:
                    self.error("',' or ']' in the list of values for '%s'" % name)
        msg.add(name, self.parse_value(name), name_tok.line, name_tok.column)

    def parse_value(self, name):
        tok = self.tok
        if tok.kind == "string":
            parts = []
            while self.tok.kind == "string":  # adjacent literals concatenate, as in C
                parts.append(self.next().value)
            return "".join(parts)
        if tok.kind == "number":
            return self.next().value
        negative = False
        if tok.kind == "-":
            self.next()
            negative = True
            tok = self.tok
            if tok.kind != "name" or tok.text.lower() not in _FLOAT_WORDS:
                self.error("a number after '-' in the value of '%s'" % name)
        if tok.kind == "name":
            self.next()
            word = tok.text
            if not negative and word in _WORD_VALUES:
                return _WORD_VALUES[word]
            if word.lower() in _FLOAT_WORDS:
                value = _FLOAT_WORDS[word.lower()]
                return -value if negative else value
            return Enum(word)
        self.error("a value for '%s' (number, quoted string or identifier)" % name)


def parse(text, source="<string>"):
    """Parse prototxt text into a `Message`; raise `PrototxtError` with line:column."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PrototxtError("file is not UTF-8 text (byte %d)" % exc.start, 1, 1, source)
    parser = _Parser(text, source)
    return parser.parse_message(Message(line=1, column=1), "eof")


# -- printer -------------------------------------------------------------------------
def _quote(text):
    out = ['"']
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append("\\x%02x" % ord(c))
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _format_scalar(value):
    kind = _kind(value)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "enum":
        if not _NAME_RE.match(value) or value in _WORD_VALUES or value.lower() in _FLOAT_WORDS:
            raise ValueError("Enum value %r cannot be printed as a bare identifier" % str(value))
        return str(value)
    if kind == "str":
        return _quote(value)
    if kind == "int":
        return str(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(float(value))
    return text


def _format_into(msg, indent, out):
    pad = "  " * indent
    for f in msg.fields:
        if isinstance(f.value, Message):
            if not f.value.fields:
                out.append("%s%s {\n%s}\n" % (pad, f.name, pad))
                continue
            out.append("%s%s {\n" % (pad, f.name))
            _format_into(f.value, indent + 1, out)
            out.append("%s}\n" % pad)
        else:
            out.append("%s%s: %s\n" % (pad, f.name, _format_scalar(f.value)))


def format_message(msg):
    """Print `msg` as canonical prototxt (2-space indent); `parse` reads it back equal."""
    out = []
    _format_into(msg, 0, out)
    return "".join(out)
