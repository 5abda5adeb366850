"""Chunks: the unit of data moving between blocks, and stream tags."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class Tag(NamedTuple):
    """A stream tag: an absolute item offset, a key and a value (GNU Radio style)."""

    offset: int
    key: str
    value: Any
    srcid: Any = None


def tag_number(tag: Tag) -> float | None:
    """The value of a numeric tag (rx_rate, rx_freq) as a finite float; None when a peer sent
    something else (a string, a vector, NaN), which a block then ignores and counts."""
    value = tag.value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return None
    if isinstance(value, (complex, np.complexfloating)):
        return None
    value = float(value)
    return value if np.isfinite(value) else None


@dataclass
class Chunk:
    """A run of items on one port.

    ``data`` has shape ``(n, *item_shape)``; ``offset`` is the absolute index of its first item
    in the stream; ``tags`` carry absolute offsets within ``[offset, offset + n)``.
    """

    data: np.ndarray
    offset: int
    tags: list[Tag] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.data)


def tags_in_range(tags: list[Tag], start: int, stop: int) -> list[Tag]:
    """Tags whose offset lies in ``[start, stop)``."""
    return [t for t in tags if start <= t.offset < stop]


def rebase_tags(tags: list[Tag], in_start: int, out_start: int, interp: int = 1,
                decim: int = 1) -> list[Tag]:
    """Map tags from input offsets to output offsets through a rate change interp/decim."""
    if not tags:
        return []
    return [t._replace(offset=out_start + ((t.offset - in_start) * interp) // decim)
            for t in tags]
