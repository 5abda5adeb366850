"""Parameter declarations: one ``Param`` per block setting, with type, default, unit and doc.

From these the runtime derives validation (with the field named in every error), the
``cvstream blocks`` documentation and the YAML schema.
"""
from __future__ import annotations

import os
from typing import Any

from .dtypes import canonical_dtype, normalize_shape
from .errors import ParamError

REQUIRED = object()
#: numbers written as YAML strings (YAML 1.1 reads ``4e6`` as a string) and ``${variable}``
#: references, as the schema lets them through where a number or any value is expected
NUMBER_TEXT = r"^\s*[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d+)?\s*$"
COMPLEX_TEXT = r"^[\s\d_.eE+\-()jJ]+$"
VARIABLE_TEXT = r"^\s*\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*$"


def _number_from_text(text: str) -> complex | float | int:
    text = text.strip().replace("_", "")
    for convert in (int, float, complex):
        try:
            return convert(text.replace(" ", ""))
        except ValueError:
            continue
    raise ValueError(f"{_shown(text)} is not a number")


def _shown(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Kind:
    """A parameter value type: a name for docs/schema and a coercion function."""

    def __init__(self, name: str, schema: dict, text: str | None = None):
        self.name = name
        self.schema = schema
        self.text = text  # pattern of strings the kind converts (numbers in YAML strings)

    def coerce(self, value: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class _Int(Kind):
    def coerce(self, value):
        if isinstance(value, str):
            value = _number_from_text(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected an integer, got {_shown(value)}")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expected an integer, got {_shown(value)}")
        return int(value)


class _Float(Kind):
    def coerce(self, value):
        if isinstance(value, str):
            value = _number_from_text(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {_shown(value)}")
        return float(value)


class _Complex(Kind):
    def coerce(self, value):
        if isinstance(value, str):
            value = _number_from_text(value)
        if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
            raise ValueError(f"expected a (complex) number, got {_shown(value)}")
        return complex(value)


class _Bool(Kind):
    def coerce(self, value):
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {_shown(value)}")


class _Str(Kind):
    def coerce(self, value):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"expected a string, got {_shown(value)}")


class _Dtype(Kind):
    def coerce(self, value):
        return canonical_dtype(value)


class _Shape(Kind):
    def coerce(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
            raise ValueError(f"expected an int or a list of ints, got {_shown(value)}")
        return normalize_shape(value)


class _Any(Kind):
    def coerce(self, value):
        return value


class _InputFile(Kind):
    def coerce(self, value):
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a file path, got {_shown(value)}")
        return value

    @staticmethod
    def check(path: str) -> str | None:
        if not os.path.exists(path):
            return f"file '{path}' does not exist"
        if os.path.isdir(path):
            return f"'{path}' is a directory, not a file"
        if not os.access(path, os.R_OK):
            return f"file '{path}' is not readable"
        return None


class _OutputFile(Kind):
    def coerce(self, value):
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a file path, got {_shown(value)}")
        return value

    @staticmethod
    def check(path: str) -> str | None:
        if os.path.isdir(path):
            return f"'{path}' is a directory, not a file"
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            return f"directory '{parent}' for output '{path}' does not exist"
        if not os.access(parent, os.W_OK):
            return f"directory '{parent}' is not writable"
        return None


INT = _Int("int", {"type": "integer"}, NUMBER_TEXT)
FLOAT = _Float("float", {"type": "number"}, NUMBER_TEXT)
COMPLEX = _Complex("complex", {"type": "number"}, COMPLEX_TEXT)
BOOL = _Bool("bool", {"type": "boolean"})
STR = _Str("str", {"type": "string"})
DTYPE = _Dtype("dtype", {"type": "string"})
SHAPE = _Shape("shape", {"type": ["integer", "array"], "items": {"type": "integer"}})
ANY = _Any("any", {})
INPUT_FILE = _InputFile("input file", {"type": "string"})
OUTPUT_FILE = _OutputFile("output file", {"type": "string"})

_BY_PYTYPE = {int: INT, float: FLOAT, complex: COMPLEX, bool: BOOL, str: STR}


class Param:
    """Declares one block parameter (a class attribute of the block).

    ``Param(float, default=1.0, unit="Hz", doc="...", min=0)``. After construction the block
    instance has a plain attribute of the same name holding the coerced value.
    """

    def __init__(self, kind, default: Any = REQUIRED, doc: str = "", unit: str = "",
                 choices=None, min=None, max=None):
        self.kind: Kind = _BY_PYTYPE.get(kind, kind)
        self.default = default
        self.doc = doc
        self.unit = unit
        self.choices = tuple(choices) if choices is not None else None
        self.min = min
        self.max = max
        self.name = ""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        raise AttributeError(self.name)  # instance value lives in __dict__

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def __repr__(self) -> str:
        parts = [self.kind.name]
        if not self.required:
            parts.append(f"default={self.default!r}")
        if self.unit:
            parts.append(f"unit={self.unit!r}")
        if self.choices:
            parts.append(f"choices={self.choices!r}")
        return f"Param({', '.join(parts)})"

    def coerce(self, value: Any) -> Any:
        """Validate and convert a user value; raises ParamError naming this field."""
        if value is None and self.default is None:
            return None
        try:
            value = self.kind.coerce(value)
        except ValueError as exc:
            raise ParamError(self.name, str(exc)) from None
        if self.choices is not None and value not in self.choices:
            raise ParamError(self.name, f"{_shown(value)} is not one of "
                                        f"{', '.join(map(str, self.choices))}")
        if self.min is not None and value < self.min:
            raise ParamError(self.name, f"{_shown(value)} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ParamError(self.name, f"{_shown(value)} is above the maximum {self.max}")
        return value

    def schema(self) -> dict:
        """JSON Schema of the value in a YAML graph: the kind's own, a number written as a
        string where the kind converts one, or a ``${variable}``."""
        value = dict(self.kind.schema)
        if self.choices is not None:
            value["enum"] = list(self.choices)
        if self.min is not None:
            value["minimum"] = self.min
        if self.max is not None:
            value["maximum"] = self.max
        if not value:  # any value at all
            return self._described({})
        forms = [value]
        if self.kind.text:
            forms.append({"type": "string", "pattern": self.kind.text})
        if value.get("type") != "string" or "enum" in value:
            forms.append({"type": "string", "pattern": VARIABLE_TEXT})
        return self._described({"anyOf": forms} if len(forms) > 1 else value)

    def _described(self, out: dict) -> dict:
        if self.doc:
            out["description"] = self.doc + (f" [{self.unit}]" if self.unit else "")
        if not self.required and self.default is not None:
            out["default"] = _jsonable(self.default)
        return out


def _jsonable(value):
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value
