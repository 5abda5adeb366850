"""Messages as JSON: decoding bytes from a peer within limits, and writing any message
(PMT-derived keys, numpy values, complex numbers) as plain JSON."""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from .errors import CvstreamError
from .pmt import LIMITS, Limits, Pair


class MessageError(CvstreamError):
    """Bytes that are not an acceptable message; ``kind`` names the cause for counters."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind


def decode_json(raw: bytes, limits: Limits = LIMITS) -> Any:
    """Parse one JSON document; raises MessageError (only) for bad or oversized input."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise MessageError("too_deep", f"JSON nested deeper than {limits.depth}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise MessageError("bad_json", f"not JSON: {str(exc)[:80]}") from None
    check_size(value, limits)
    return value


def check_size(value: Any, limits: Limits = LIMITS) -> None:
    """Raise MessageError when ``value`` nests deeper or holds more elements than allowed."""
    stack = [(value, 0)]
    items = 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        if depth >= limits.depth:
            raise MessageError("too_deep", f"message nested deeper than {limits.depth}")
        items += len(children)
        if items > limits.items:
            raise MessageError("too_large", f"message holds more than {limits.items} elements")
        stack.extend((child, depth + 1) for child in children)


def to_plain(value: Any) -> Any:
    """``value`` with only JSON types: keys become strings, arrays lists, complex [re, im],
    PMT pairs [car, cdr], bytes hex, non-finite floats strings ("nan", "inf")."""
    if isinstance(value, dict):
        return {_key(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):  # Pair included
        return [to_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, np.generic):
        return to_plain(value.item())
    if isinstance(value, complex):
        return [to_plain(value.real), to_plain(value.imag)]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, Pair):
        key = [key.car, key.cdr]
    return json.dumps(to_plain(key))


def dumps(msg: Any) -> str:
    """One message as a line of strict JSON (what message_sink and zmq_msg_sink write)."""
    return json.dumps(to_plain(msg), allow_nan=False)
