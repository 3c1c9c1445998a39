"""Job parameters declared once, as pydantic v2 models; forms, the JSON API, the CLI and the README read them.

A job kind's declaration is a `pydantic.BaseModel` whose fields are made with `param(...)`:
name, label (the form's words), type, default, range and a practical help text. From it:

- `check(Model, raw)` validates a form (strings) or a JSON body (typed values) and returns
  the values plus *every* field error at once, each `{"field", "label", "message"}`;
- `specs(Model)` lists the fields as `Spec`s: the form template renders labels, hints and
  limits from them, `commands/options.py` makes CLI options, `markdown_table` the README's
  tables (`python3 -m digits_seg.docs` rewrites them; a test fails when they drift).

Form strings are accepted for every type ("5", " 0.01 ", "on"), but booleans are not
numbers (`"epochs": true` is refused) and blanks mean the default.
"""

import dataclasses
import math
import unicodedata
from typing import Annotated, Any

import annotated_types
import pydantic
from pydantic import BeforeValidator, Field
from pydantic_core import core_schema

from .errors import ValidationError

MAX_NAME_LENGTH = 200
"""Longest job name accepted (a name is shown in tables and page titles)."""


def blank(value):
    """True for None and whitespace-only strings: the field was left empty (its default applies)."""
    return value is None or (isinstance(value, str) and not value.strip())


def param(default, label, help, *, ge=None, gt=None, le=None, max_length=None, cli=None, form=True,
          placeholder=None, default_text=None, section=None, allowed=None):
    """One declared field.

    Args:
        label: the form's label, also used in every message about the field.
        help: a practical tooltip ("if the loss becomes NaN, lower this").
        cli: the CLI flag ("--lr"), None for `--<name>`, False for no CLI option.
        form: False for fields the form does not show.
        placeholder: what the empty form input shows (default: the default value).
        default_text: how the README and `--help` describe the default when it is not a constant.
        allowed: what values are accepted, in words, when the type and bounds do not say it.
    """
    extra = {"cli": cli, "form": form, "placeholder": placeholder, "default_text": default_text, "section": section,
             "allowed": allowed}
    return Field(default, title=label, description=help, ge=ge, gt=gt, le=le, max_length=max_length,
                 json_schema_extra={k: v for k, v in extra.items() if v is not None})


# -- types ------------------------------------------------------------------------------------
def _number_input(value):
    if isinstance(value, bool):
        raise ValueError("must be a number, not %s" % str(value).lower())
    if isinstance(value, str):
        value = value.strip()
        try:
            as_float = float(value)
        except ValueError:
            return value
        if not math.isfinite(as_float):
            raise ValueError("must be a finite number, got %r" % value)
        return int(as_float) if "." in value and as_float.is_integer() else value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number, got %r" % value)
    return value


def _flag_input(value):
    if isinstance(value, (list, tuple)) and value:
        value = value[-1]  # a form's hidden "0" followed by the checked box's "1"
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be yes or no (true/false, on/off, 1/0), got %r" % (value,))


Int = Annotated[int, BeforeValidator(_number_input)]
"""A whole number (form strings accepted, booleans refused)."""
Float = Annotated[float, BeforeValidator(_number_input), pydantic.AllowInfNan(False)]
"""A finite number (form strings accepted, booleans refused)."""
Flag = Annotated[bool, BeforeValidator(_flag_input)]
"""Yes/no: a JSON boolean, 0/1, or a form's "on"/"1"/"0"."""


class OneOf:
    """Annotated marker: the value is one of `choices`, matched case-insensitively ('-' and '_' alike)."""

    def __init__(self, *choices):
        self.choices = tuple(choices)

    def _check(self, value):
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_")
            for choice in self.choices:
                if choice.lower().replace("-", "_") == key:
                    return choice
        raise ValueError("must be one of %s, got %r" % (", ".join(self.choices), value))

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_before_validator_function(self._check, handler(source))


def choice(*choices):
    """A string field restricted to `choices` (the form shows a select, the CLI lists them)."""
    return Annotated[str, OneOf(*choices)]


class NumberList:
    """Annotated marker: several numbers, as a list or a comma-separated string ("0.1, 0.01")."""

    def __init__(self, kind, ge=None, gt=None, le=None):
        self.kind, self.ge, self.gt, self.le = kind, ge, gt, le

    @staticmethod
    def _split(value):
        if isinstance(value, str):
            return [x.strip() for x in value.split(",") if x.strip()]
        return list(value) if isinstance(value, (list, tuple)) else [value]

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_before_validator_function(self._split, handler(source))


def numbers(kind, ge=None, gt=None, le=None):
    """A list of numbers of `kind` (int or float), each within the bounds; at least one."""
    item = Annotated[Int if kind is int else Float, Field(ge=ge, gt=gt, le=le)]
    return Annotated[list[item], NumberList(kind, ge, gt, le), Field(min_length=1)]


def _name_input(value):
    if not isinstance(value, str):
        raise ValueError("must be text, got %r" % (value,))
    text = unicodedata.normalize("NFC", value.strip()) if _encodable(value) else value
    if not _encodable(text):
        raise ValueError("holds characters that cannot be stored (a lone UTF-16 surrogate)")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") and c not in "\u200d" for c in text):
        raise ValueError("holds control characters; use letters, digits, spaces and punctuation")
    return text


def _encodable(text):
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


Name = Annotated[str, BeforeValidator(_name_input), Field(max_length=MAX_NAME_LENGTH)]
"""A job name: trimmed, printable, storable as UTF-8, at most MAX_NAME_LENGTH characters."""


# -- the spec a form, the CLI and the README read ---------------------------------------------
@dataclasses.dataclass
class Spec:
    """A declared field as the presentation layers see it."""

    name: str
    label: str
    help: str
    default: Any
    kind: str  # int | float | str | bool | choice | list | name | other
    choices: tuple = ()
    minimum: Any = None
    maximum: Any = None
    exclusive_minimum: bool = False
    cli: Any = None
    form: bool = True
    placeholder: str = ""
    default_text: str = ""
    section: str = ""
    allowed: str = ""

    @property
    def flag(self):
        """The CLI flag, or None when the field has none."""
        if self.cli is False:
            return None
        if self.cli:
            return self.cli
        if self.kind == "bool" and self.default is True:
            return "--no-" + self.name.replace("_", "-")
        return "--" + self.name.replace("_", "-")

    @property
    def range_text(self):
        """'1 – 1024', '> 0', '≥ 0' or ''."""
        lo = None if self.minimum is None else ("> %s" if self.exclusive_minimum else "%s") % _fmt(self.minimum)
        if lo and self.maximum is not None and not self.exclusive_minimum:
            return "%s – %s" % (lo, _fmt(self.maximum))
        if self.maximum is not None:
            return ("%s, " % lo if lo else "") + "≤ %s" % _fmt(self.maximum)
        if lo:
            return lo if self.exclusive_minimum else "≥ " + lo
        return ", ".join(self.choices)

    @property
    def shown_default(self):
        """The default as a person reads it."""
        if self.default_text:
            return self.default_text
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, list):
            return ", ".join(_fmt(x) for x in self.default)
        return _fmt(self.default)


def _fmt(x):
    if isinstance(x, float):
        return "%g" % x
    return str(x)


def _metadata(field):
    """Every constraint/marker object on a field, including those inside Annotated/Optional/list types."""
    found = list(field.metadata)
    stack = [field.annotation]
    while stack:
        t = stack.pop()
        found.extend(getattr(t, "__metadata__", ()))
        stack.extend(getattr(t, "__args__", ()) or ())
        origin = getattr(t, "__origin__", None)
        if origin is not None and origin is not t:
            stack.append(origin)
    return found


def specs(model):
    """The fields of `model`, in declaration order, as `Spec`s."""
    out = []
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra or {}
        meta = _metadata(field)
        spec = Spec(name=name, label=field.title or name, help=field.description or "", default=field.default,
                    kind="other", cli=extra.get("cli"), form=extra.get("form", True),
                    placeholder=extra.get("placeholder", ""), default_text=extra.get("default_text", ""),
                    section=extra.get("section", ""), allowed=extra.get("allowed", ""))
        for m in meta:
            if isinstance(m, OneOf):
                spec.kind, spec.choices = "choice", m.choices
            elif isinstance(m, NumberList):
                spec.kind = "list"
                spec.minimum = m.gt if m.gt is not None else m.ge
                spec.exclusive_minimum = m.gt is not None
                spec.maximum = m.le
            elif isinstance(m, annotated_types.Ge) and spec.kind != "list":
                spec.minimum = m.ge
            elif isinstance(m, annotated_types.Gt) and spec.kind != "list":
                spec.minimum, spec.exclusive_minimum = m.gt, True
            elif isinstance(m, annotated_types.Le) and spec.kind != "list":
                spec.maximum = m.le
        if spec.kind == "other":
            text = str(field.annotation)
            spec.kind = ("bool" if "bool" in text else "int" if "int" in text else "float" if "float" in text
                         else "name" if name == "name" else "str" if "str" in text else "other")
        if not spec.placeholder and spec.kind != "bool":
            spec.placeholder = spec.shown_default if spec.default is not None or spec.default_text else ""
        out.append(spec)
    return out


def form_fields(model):
    """{name: {label, help, placeholder, min, max}} for a template (JSON-able)."""
    return {s.name: {"label": s.label, "help": s.help, "placeholder": s.placeholder, "min": s.minimum,
                     "max": s.maximum, "choices": list(s.choices), "default": s.shown_default, "kind": s.kind}
            for s in specs(model)}


def markdown_table(model, title_flag=True):
    """The README table of a declaration: field, CLI flag, default, range, meaning."""
    rows = ["| field | %s | default | allowed | meaning |" % ("CLI flag" if title_flag else "-"),
            "|---|---|---|---|---|"]
    for s in specs(model):
        flag = "`%s`" % s.flag if s.flag else "–"
        rows.append("| **%s** (`%s`) | %s | %s | %s | %s |" % (s.label, s.name, flag, s.shown_default,
                                                               _allowed(s),
                                                               s.help.replace("|", "\\|")))
    return "\n".join(rows)


def _allowed(spec):
    text = spec.allowed or spec.range_text or {"int": "whole number", "float": "number", "bool": "on/off"}.get(spec.kind, "text")
    return text.replace("|", "\\|")


# -- validation -------------------------------------------------------------------------------
_PHRASES = {
    "greater_than_equal": lambda c, v: "must be at least %s, got %s" % (_fmt(c["ge"]), _show(v)),
    "greater_than": lambda c, v: "must be greater than %s, got %s" % (_fmt(c["gt"]), _show(v)),
    "less_than_equal": lambda c, v: "must be at most %s, got %s" % (_fmt(c["le"]), _show(v)),
    "int_parsing": lambda c, v: "must be a whole number, got %s" % _show(v),
    "int_from_float": lambda c, v: "must be a whole number, got %s" % _show(v),
    "int_type": lambda c, v: "must be a whole number, got %s" % _show(v),
    "float_parsing": lambda c, v: "must be a number, got %s" % _show(v),
    "float_type": lambda c, v: "must be a number, got %s" % _show(v),
    "finite_number": lambda c, v: "must be a finite number, got %s" % _show(v),
    "string_type": lambda c, v: "must be text, got %s" % _show(v),
    "string_too_long": lambda c, v: "is too long (at most %s characters)" % c["max_length"],
    "too_short": lambda c, v: "needs at least one value",
    "too_long": lambda c, v: "is too long (at most %s %s)" % (c.get("max_length"), "characters" if isinstance(v, str)
                                                               else "values"),
    "list_type": lambda c, v: "must be a list or comma-separated values, got %s" % _show(v),
    "missing": lambda c, v: "is required",
}


def _show(v):
    if isinstance(v, str):
        try:
            float(v)
            return v
        except ValueError:
            return repr(v)
    return _fmt(v)


def field_error(model_or_labels, field, phrase):
    """One error record: the message is "<Label> <phrase>" so it reads alone too."""
    label = _label(model_or_labels, field)
    return {"field": field, "label": label, "message": "%s %s" % (label, phrase)}


def _label(model_or_labels, field):
    if isinstance(model_or_labels, dict):
        return model_or_labels.get(field, field)
    f = model_or_labels.model_fields.get(field)
    return (f.title if f is not None and f.title else field.replace("_", " ").capitalize())


def check(model, raw):
    """Validate `raw` against `model`: (values, errors).

    Blank inputs take the field's default; keys not declared are ignored. `values` holds
    every field (fields in error hold their defaults), so cross-field checks can still run
    and report their problems in the same answer.
    """
    data = {k: v for k, v in (raw or {}).items() if k in model.model_fields and not blank(v)}
    try:
        return model.model_validate(data).model_dump(warnings=False), []
    except pydantic.ValidationError as exc:
        problems = exc.errors(include_url=False)
    errors, bad = [], set()
    for p in problems:
        field = str(p["loc"][0]) if p["loc"] else ""
        if field in bad:
            continue
        bad.add(field)
        ctx = p.get("ctx") or {}
        if p["type"] == "value_error" and ctx.get("error") is not None:
            phrase = str(ctx["error"])
        elif p["type"] in _PHRASES:
            phrase = _PHRASES[p["type"]](ctx, p.get("input"))
        else:
            phrase = p["msg"][0].lower() + p["msg"][1:]
        errors.append(field_error(model, field, phrase))
    values = model.model_validate({k: v for k, v in data.items() if k not in bad}).model_dump(warnings=False)
    return values, errors


class Named(pydantic.BaseModel):
    """A job kind whose only client-given text is its name (store imports, checks)."""

    name: Name | None = param(None, "Name", "The job's name, shown on the home page.")


def clean_name(model, value):
    """The job name `value` checked against `model`'s `name` field: trimmed, "" when blank; ValidationError if bad."""
    values, errors = check(model, {"name": value})
    raise_errors(errors)
    return values["name"] or ""


def raise_errors(errors):
    """Raise one ValidationError carrying every error (the first kept as its message/field)."""
    if errors:
        raise ValidationError.of(errors)
