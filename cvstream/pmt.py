"""GNU Radio PMT serialization (the byte format of ``pmt::serialize``), for ZeroMQ tags and
message ports. Big-endian, one type byte per value.

Python mapping: bool, None (PMT_NIL), str (symbol), int (int32, or int64 when wider),
numpy.uint64 (uint64), float (double), complex, list (vector), tuple (tuple), dict (dict),
Pair (pair), 1-d numpy arrays and bytes (uniform vectors). Decoding then encoding gives the
same bytes, so tags pass through cvstream unchanged.
"""
from __future__ import annotations

import struct
from typing import Any, NamedTuple

import numpy as np

from .errors import CvstreamError

TRUE, FALSE, SYMBOL, INT32, DOUBLE, COMPLEX, NULL, PAIR = 0, 1, 2, 3, 4, 5, 6, 7
VECTOR, DICT, UVECTOR, UINT64, TUPLE, INT64 = 8, 9, 0x0A, 0x0B, 0x0C, 0x0D

UV_TYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64,
            np.int64, np.float32, np.float64, np.complex64, np.complex128]
UV_CODE = {np.dtype(t): i for i, t in enumerate(UV_TYPES)}


class PMTError(CvstreamError):
    """Bytes that are not a valid serialized PMT; ``kind`` names the cause for counters
    (``bad_pmt``, or ``too_deep`` / ``too_large`` past the decoding limits)."""

    def __init__(self, detail: str, kind: str = "bad_pmt"):
        super().__init__(detail)
        self.kind = kind


class Pair(NamedTuple):
    car: Any
    cdr: Any


# ---- encoding -------------------------------------------------------------------------------
def serialize(value: Any) -> bytes:
    out = bytearray()
    _put(out, value)
    return bytes(out)


def _put(out: bytearray, v: Any) -> None:
    if v is True or v is np.True_:
        out.append(TRUE)
    elif v is False or v is np.False_:
        out.append(FALSE)
    elif v is None:
        out.append(NULL)
    elif isinstance(v, str):
        raw = v.encode("utf-8")
        out += struct.pack(">BH", SYMBOL, len(raw)) + raw
    elif isinstance(v, np.uint64):
        out += struct.pack(">BQ", UINT64, int(v))
    elif isinstance(v, (int, np.integer)):
        i = int(v)
        if -(1 << 31) <= i < (1 << 31):
            out += struct.pack(">Bi", INT32, i)
        elif -(1 << 63) <= i < (1 << 63):
            out += struct.pack(">Bq", INT64, i)
        else:
            out += struct.pack(">BQ", UINT64, i)
    elif isinstance(v, (float, np.floating)):
        out += struct.pack(">Bd", DOUBLE, float(v))
    elif isinstance(v, (complex, np.complexfloating)):
        out += struct.pack(">Bdd", COMPLEX, v.real, v.imag)
    elif isinstance(v, Pair):
        out.append(PAIR)
        _put(out, v.car)
        _put(out, v.cdr)
    elif isinstance(v, tuple):
        out += struct.pack(">BI", TUPLE, len(v))
        for item in v:
            _put(out, item)
    elif isinstance(v, list):
        out += struct.pack(">BI", VECTOR, len(v))
        for item in v:
            _put(out, item)
    elif isinstance(v, dict):
        for key, item in v.items():
            out.append(DICT)
            out.append(PAIR)
            _put(out, key)
            _put(out, item)
        out.append(NULL)
    elif isinstance(v, (bytes, bytearray)):
        _put_uvector(out, np.frombuffer(bytes(v), dtype=np.uint8))
    elif isinstance(v, np.ndarray):
        _put_uvector(out, v)
    else:
        raise PMTError(f"cannot serialize {type(v).__name__} as a PMT")


def _put_uvector(out: bytearray, arr: np.ndarray) -> None:
    arr = np.asarray(arr).reshape(-1)
    if arr.dtype not in UV_CODE:
        raise PMTError(f"no PMT uniform vector for dtype {arr.dtype}")
    out += struct.pack(">BBIBB", UVECTOR, UV_CODE[arr.dtype], len(arr), 1, 0)
    out += arr.astype(arr.dtype.newbyteorder(">"), copy=False).tobytes()


# ---- decoding -------------------------------------------------------------------------------
class Limits(NamedTuple):
    """What one decoded PMT may hold: bytes from a peer never turn into unbounded objects."""

    depth: int = 32                 # nesting of pairs, vectors, tuples and dicts
    items: int = 65536              # elements of vectors, tuples and dicts, all levels
    uvector_bytes: int = 16 << 20   # bytes of one uniform vector


LIMITS = Limits()


def deserialize(data: bytes, limits: Limits = LIMITS) -> Any:
    """Decode one PMT; raises PMTError on malformed bytes, trailing garbage or a value past
    ``limits`` (and never anything else)."""
    value, pos = read(memoryview(data), 0, limits)
    if pos != len(data):
        raise PMTError(f"{len(data) - pos} trailing bytes after PMT")
    return value


def read(buf: memoryview, pos: int, limits: Limits = LIMITS) -> tuple[Any, int]:
    """Decode one PMT starting at ``pos``; returns (value, next position)."""
    reader = _Reader(buf, limits)
    try:
        value = reader.value(pos, 0)
    except (struct.error, IndexError):
        raise PMTError("truncated PMT") from None
    return value, reader.pos


class _Reader:
    """One decoding pass: the buffer, where it stands, and the element budget left."""

    def __init__(self, buf: memoryview, limits: Limits):
        self.buf = buf
        self.limits = limits
        self.items_left = limits.items
        self.pos = 0

    def _spend(self, n: int) -> None:
        self.items_left -= n
        if self.items_left < 0:
            raise PMTError(f"PMT holds more than {self.limits.items} elements", "too_large")

    def value(self, pos: int, depth: int) -> Any:
        if depth > self.limits.depth:
            raise PMTError(f"PMT nested deeper than {self.limits.depth}", "too_deep")
        buf = self.buf
        code = buf[pos]
        pos += 1
        self.pos = pos
        if code in _SCALARS:
            fmt, convert = _SCALARS[code]
            self.pos = pos + fmt.size
            raw = fmt.unpack_from(buf, pos)
            return convert(*raw)
        if code == SYMBOL:
            (n,) = struct.unpack_from(">H", buf, pos)
            raw = bytes(buf[pos + 2:pos + 2 + n])
            if len(raw) != n:
                raise PMTError("truncated symbol")
            self.pos = pos + 2 + n
            return raw.decode("utf-8", errors="replace")
        if code == PAIR:
            self._spend(2)
            car = self.value(pos, depth + 1)
            cdr = self.value(self.pos, depth + 1)
            return Pair(car, cdr)
        if code in (VECTOR, TUPLE):
            (n,) = struct.unpack_from(">I", buf, pos)
            pos += 4
            if n > len(buf) - pos:
                raise PMTError(f"vector of {n} items in {len(buf) - pos} bytes")
            self._spend(n)
            self.pos = pos
            items = [self.value(self.pos, depth + 1) for _ in range(n)]
            return items if code == VECTOR else tuple(items)
        if code == DICT:
            return self._dict(pos - 1, depth)
        if code == UVECTOR:
            return self._uvector(pos)
        raise PMTError(f"unknown PMT type byte 0x{code:02x}")

    def _dict(self, pos: int, depth: int) -> dict:
        buf, out = self.buf, {}
        while buf[pos] == DICT:
            self._spend(1)
            entry = self.value(pos + 1, depth + 1)
            if not isinstance(entry, Pair):
                raise PMTError("dict entry is not a pair")
            out[hashable(entry.car)] = entry.cdr
            pos = self.pos
        if buf[pos] != NULL:
            raise PMTError("dict does not end with PMT_NIL")
        self.pos = pos + 1
        return out

    def _uvector(self, pos: int) -> np.ndarray:
        kind, n, npad = struct.unpack_from(">BIB", self.buf, pos)
        pos += 6 + npad
        if kind >= len(UV_TYPES):
            raise PMTError(f"unknown uniform vector type {kind}")
        dt = np.dtype(UV_TYPES[kind]).newbyteorder(">")
        nbytes = n * dt.itemsize
        if nbytes > self.limits.uvector_bytes:
            raise PMTError(f"uniform vector of {nbytes} bytes (limit "
                           f"{self.limits.uvector_bytes})", "too_large")
        end = pos + nbytes
        if end > len(self.buf):
            raise PMTError("truncated uniform vector")
        self.pos = end
        return np.frombuffer(self.buf[pos:end], dtype=dt).astype(dt.newbyteorder("="))


_SCALARS = {
    TRUE: (struct.Struct(""), lambda: True),
    FALSE: (struct.Struct(""), lambda: False),
    NULL: (struct.Struct(""), lambda: None),
    INT32: (struct.Struct(">i"), int),
    INT64: (struct.Struct(">q"), int),
    UINT64: (struct.Struct(">Q"), np.uint64),
    DOUBLE: (struct.Struct(">d"), float),
    COMPLEX: (struct.Struct(">dd"), complex),
}


def hashable(key: Any) -> Any:
    """A dict key as Python can hold it: vectors, arrays and dicts become tuples (GNU Radio
    allows any PMT as a key)."""
    if isinstance(key, np.ndarray):
        return tuple(key.tolist())
    if isinstance(key, (list, tuple)):
        return tuple(hashable(k) for k in key)
    if isinstance(key, dict):
        return tuple((k, hashable(v)) for k, v in key.items())
    if isinstance(key, Pair):
        return Pair(hashable(key.car), hashable(key.cdr))
    return key
