"""Port declarations: stream ports carry typed items, message ports carry dicts."""
from __future__ import annotations

from dataclasses import dataclass

from .dtypes import MESSAGE, PortType, canonical_dtype, normalize_shape


class Port:
    """Declares a port as a class attribute of a block.

    dtype: a sample type ("complex64", "cf32", ...), ``"$param"`` to take it from a parameter,
    or None to accept whatever is connected (inputs) / copy input ``like`` (outputs).
    shape: item shape (tuple or int), ``"$param"``, or None to accept any (inputs).
    """

    direction = ""

    def __init__(self, dtype: str | None = None, shape=(), *, doc: str = "",
                 optional: bool = False, like: str | None = None, domain: str = "stream"):
        if dtype is not None and not str(dtype).startswith("$"):
            dtype = canonical_dtype(dtype)
        if shape is not None and not isinstance(shape, str):
            shape = normalize_shape(shape)
        self.dtype = dtype
        self.shape = shape
        self.doc = doc
        self.optional = optional
        self.like = like
        self.domain = domain
        self.name = ""

    def __set_name__(self, owner, name):
        self.name = name

    def bind(self, name: str | None = None) -> "BoundPort":
        return BoundPort(name or self.name, self.direction, self.domain, self.dtype,
                         self.shape, self.doc, self.optional, self.like)


class In(Port):
    direction = "in"


class Out(Port):
    direction = "out"


class MsgIn(In):
    def __init__(self, doc: str = "", optional: bool = False):
        super().__init__(None, None, doc=doc, optional=optional, domain=MESSAGE)


class MsgOut(Out):
    def __init__(self, doc: str = "", optional: bool = True):
        super().__init__(None, None, doc=doc, optional=optional, domain=MESSAGE)


@dataclass
class BoundPort:
    """A port of one block instance, with parameter references resolved where possible."""

    name: str
    direction: str
    domain: str
    dtype: str | None
    shape: tuple | str | None
    doc: str = ""
    optional: bool = False
    like: str | None = None

    @property
    def is_message(self) -> bool:
        return self.domain == MESSAGE

    def resolved(self, params: dict) -> "BoundPort":
        dtype, shape = self.dtype, self.shape
        if isinstance(dtype, str) and dtype.startswith("$"):
            dtype = canonical_dtype(params[dtype[1:]])
        if isinstance(shape, str) and shape.startswith("$"):
            shape = normalize_shape(params[shape[1:]])
        return BoundPort(self.name, self.direction, self.domain, dtype, shape, self.doc,
                         self.optional, self.like)

    def fixed_type(self) -> PortType | None:
        if self.dtype is None or self.shape is None:
            return None
        return PortType(self.dtype, tuple(self.shape))

    def describe(self) -> str:
        if self.is_message:
            return "message"
        dtype = self.dtype or (f"like {self.like}" if self.like else "any")
        if dtype.startswith("$"):
            dtype = f"dtype from '{dtype[1:]}'"
        if self.shape is None:
            return f"{dtype}, any shape"
        if isinstance(self.shape, str):
            return f"{dtype}, shape from '{self.shape.lstrip('$')}'"
        if self.shape:
            return f"{dtype}[{'x'.join(map(str, self.shape))}]"
        return dtype
