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
MAX_DEPTH = 64


class PMTError(CvstreamError):
    """Bytes that are not a valid serialized PMT."""


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
def deserialize(data: bytes) -> Any:
    """Decode one PMT; raises PMTError on malformed bytes or trailing garbage."""
    value, pos = read(memoryview(data), 0)
    if pos != len(data):
        raise PMTError(f"{len(data) - pos} trailing bytes after PMT")
    return value


def read(buf: memoryview, pos: int, depth: int = 0) -> tuple[Any, int]:
    """Decode one PMT starting at ``pos``; returns (value, next position)."""
    if depth > MAX_DEPTH:
        raise PMTError("PMT nested too deeply")
    try:
        code = buf[pos]
        pos += 1
        if code == TRUE:
            return True, pos
        if code == FALSE:
            return False, pos
        if code == NULL:
            return None, pos
        if code == SYMBOL:
            (n,) = struct.unpack_from(">H", buf, pos)
            raw = bytes(buf[pos + 2:pos + 2 + n])
            if len(raw) != n:
                raise PMTError("truncated symbol")
            return raw.decode("utf-8", errors="replace"), pos + 2 + n
        if code == INT32:
            return struct.unpack_from(">i", buf, pos)[0], pos + 4
        if code == INT64:
            return struct.unpack_from(">q", buf, pos)[0], pos + 8
        if code == UINT64:
            return np.uint64(struct.unpack_from(">Q", buf, pos)[0]), pos + 8
        if code == DOUBLE:
            return struct.unpack_from(">d", buf, pos)[0], pos + 8
        if code == COMPLEX:
            re, im = struct.unpack_from(">dd", buf, pos)
            return complex(re, im), pos + 16
        if code == PAIR:
            car, pos = read(buf, pos, depth + 1)
            cdr, pos = read(buf, pos, depth + 1)
            return Pair(car, cdr), pos
        if code in (VECTOR, TUPLE):
            (n,) = struct.unpack_from(">I", buf, pos)
            pos += 4
            if n > len(buf) - pos:
                raise PMTError(f"vector of {n} items in {len(buf) - pos} bytes")
            items = []
            for _ in range(n):
                item, pos = read(buf, pos, depth + 1)
                items.append(item)
            return (items if code == VECTOR else tuple(items)), pos
        if code == DICT:
            return _read_dict(buf, pos - 1, depth)
        if code == UVECTOR:
            kind, n, npad = struct.unpack_from(">BIB", buf, pos)
            pos += 6 + npad
            if kind >= len(UV_TYPES):
                raise PMTError(f"unknown uniform vector type {kind}")
            dt = np.dtype(UV_TYPES[kind]).newbyteorder(">")
            end = pos + n * dt.itemsize
            if end > len(buf):
                raise PMTError("truncated uniform vector")
            arr = np.frombuffer(buf[pos:end], dtype=dt).astype(dt.newbyteorder("="))
            return arr, end
    except (struct.error, IndexError):
        raise PMTError("truncated PMT") from None
    raise PMTError(f"unknown PMT type byte 0x{code:02x}")


def _read_dict(buf: memoryview, pos: int, depth: int) -> tuple[dict, int]:
    out: dict = {}
    while buf[pos] == DICT:
        entry, pos = read(buf, pos + 1, depth + 1)
        if not isinstance(entry, Pair):
            raise PMTError("dict entry is not a pair")
        out[_hashable(entry.car)] = entry.cdr
        if pos >= len(buf):
            raise PMTError("truncated dict")
    if buf[pos] != NULL:
        raise PMTError("dict does not end with PMT_NIL")
    return out, pos + 1


def _hashable(key):
    if isinstance(key, np.ndarray):
        return tuple(key.tolist())
    if isinstance(key, list):
        return tuple(key)
    return key
