"""Sample types carried by stream ports, and port types (dtype + item shape)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

#: canonical name -> numpy dtype; the only sample types a stream port may carry
DTYPES = {
    "complex64": np.dtype(np.complex64),
    "float32": np.dtype(np.float32),
    "int16": np.dtype(np.int16),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
}
ALIASES = {"cf32": "complex64", "c64": "complex64", "fc32": "complex64", "f32": "float32",
           "rf32": "float32", "i16": "int16", "s16": "int16", "i8": "int8", "s8": "int8",
           "u8": "uint8"}


def canonical_dtype(name: str) -> str:
    """Return the canonical dtype name for ``name`` or raise ValueError."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in DTYPES:
        raise ValueError(f"unknown sample type '{name}' (use one of {', '.join(DTYPES)})")
    return key


def normalize_shape(shape) -> tuple[int, ...]:
    """Item shape from an int (vector length; 1 means scalar) or a sequence of ints."""
    if shape is None:
        return ()
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        return () if int(shape) == 1 else (int(shape),)
    out = tuple(int(s) for s in shape)
    if any(s < 1 for s in out):
        raise ValueError(f"item shape {out} has a dimension < 1")
    return out


@dataclass(frozen=True)
class PortType:
    """What a stream port carries: a sample dtype and the shape of one item."""

    dtype: str
    shape: tuple[int, ...] = ()
    #: items per second when known (None: unknown); not part of type equality
    rate: float | None = field(default=None, compare=False)

    def with_rate(self, rate: float | None) -> "PortType":
        return replace(self, rate=rate)

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def item_size(self) -> int:
        """Bytes per item."""
        return self.np_dtype.itemsize * int(np.prod(self.shape, dtype=np.int64))

    def __str__(self) -> str:
        if not self.shape:
            return self.dtype
        return f"{self.dtype}[{'x'.join(str(s) for s in self.shape)}]"


MESSAGE = "message"
