"""Re-chunking for rate and fixed-chunk blocks: history plus multiples of ``decim`` items."""
from __future__ import annotations

from collections import deque

import numpy as np


class RateInput:
    """Accumulates arrays; ``take(n)`` returns ``history`` old items followed by n new ones."""

    def __init__(self, history: int, decim: int, dtype, item_shape=()):
        self.history = history
        self.decim = decim
        self._pending: deque[np.ndarray] = deque()
        self.available = 0
        self._hist = np.zeros((history, *item_shape), dtype=dtype)

    def push(self, x: np.ndarray) -> None:
        if len(x):
            self._pending.append(x)
            self.available += len(x)

    def _pop(self, n: int) -> np.ndarray:
        parts, need = [], n
        while need:
            head = self._pending[0]
            if len(head) <= need:
                parts.append(self._pending.popleft())
                need -= len(head)
            else:
                parts.append(head[:need])
                self._pending[0] = head[need:]
                need = 0
        self.available -= n
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def take(self, n: int) -> np.ndarray:
        new = self._pop(n)
        if not self.history:
            return new
        out = np.concatenate([self._hist, new])
        self._hist = out[-self.history:].copy()
        return out

    def truncate(self, keep: int) -> None:
        """Keep only the first ``keep`` pending items (end of stream, unequal inputs)."""
        if keep < self.available:
            rest = self._pop(keep) if keep else None
            self._pending.clear()
            self.available = 0
            if rest is not None:
                self.push(rest)

    def take_padded(self, n: int) -> np.ndarray:
        """Take what is left, zero-padded to n new items (end of stream)."""
        self.push(np.zeros((n - self.available, *self._hist.shape[1:]), dtype=self._hist.dtype))
        return self.take(n)
