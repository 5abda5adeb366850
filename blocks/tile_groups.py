"""Whole groups of tiles from a stream cut anyhow (a file's chunks, ZeroMQ frames, the calls
of replicas): a block that reads its stream in groups of tiles from the stream's start
finds the same things however the stream arrives."""
from __future__ import annotations

import numpy as np


class TileGroups:
    """Samples (``samples``, before the FFTs) or ``compute`` results (``results``, after
    them) up to the last whole group of ``group`` tiles of ``decim`` samples; the rest is
    held for the next call, and the stream's last, partial group for the end
    (``take_carried``, ``take_held``)."""

    def __init__(self, decim: int, group: int = 1):
        self.decim, self.group = decim, group
        self.carried: np.ndarray | None = None   # samples past the last whole group
        self.held: tuple | None = None   # results (and their samples) past it

    def whole(self, count: int) -> int:
        """Of ``count`` tiles, those up to the last whole group."""
        return count // self.group * self.group

    def samples(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        """x after the samples carried from the last call, up to its last whole group
        (the rest carried to the next call), and whether it is a new array (joined to
        what was carried) or a view of the input."""
        own = self.carried is not None
        if own:
            x = np.concatenate([self.carried, x])
            self.carried = None
        whole = self.whole(len(x) // self.decim) * self.decim
        if whole < len(x):
            self.carried = x[whole:].copy()
        return x[:whole], own

    def results(self, result, x) -> tuple:
        """A batch's ``compute`` result and samples after those held from the last one, up
        to the last whole group (the rest held); (None, None) if none."""
        if self.held is not None:
            result = join_tiles(self.held[0], result)
            x = np.concatenate([self.held[1], x])
            self.held = None
        count = len(result[0])
        whole = self.whole(count)
        if whole < count:
            self.held = (tiles_of(result, slice(whole, count)), x[whole * self.decim:])
        if not whole:
            return None, None
        return tiles_of(result, slice(0, whole)), x[:whole * self.decim]

    def take_carried(self) -> np.ndarray | None:
        """The samples of the stream's last, partial group (None if none), now let go."""
        carried, self.carried = self.carried, None
        return carried

    def take_held(self) -> tuple | None:
        """The results held past the last whole group (None if none), now let go."""
        held, self.held = self.held, None
        return held


def tiles_of(result, tiles: slice):
    """A ``compute`` result (arrays with one row per tile, None, tuples of them) cut to
    ``tiles``."""
    if result is None:
        return None
    if isinstance(result, tuple):
        return tuple(tiles_of(part, tiles) for part in result)
    return result[tiles]


def join_tiles(first, second):
    """Two ``compute`` results one after the other, as one."""
    if first is None:
        return None
    if isinstance(first, tuple):
        return tuple(join_tiles(a, b) for a, b in zip(first, second))
    return np.concatenate([first, second])
