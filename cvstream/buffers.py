"""Bounded FIFO buffers between blocks: one per connection, capacity counted in items.

A producer blocks while the buffer is full (or, for a live source in drop mode, drops and
counts). The consumer is woken through its block's ``wake`` event, so a block with several
inputs waits on one event. End of stream travels forward (``close``); a consumer that
finished early marks the buffer ``abandoned`` and producers stop writing to it.
"""
from __future__ import annotations

import threading
from collections import deque

from .chunk import Chunk


class Aborted(Exception):
    """The graph is being torn down after an error."""


class StreamBuffer:
    def __init__(self, capacity: int, wake: threading.Event, abort: threading.Event,
                 name: str = ""):
        self.capacity = capacity
        self.name = name
        self._wake = wake
        self._abort = abort
        self._q: deque = deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self.fill = 0
        self.max_fill = 0
        self.closed = False
        self.abandoned = False
        self.dropped = 0
        self.producer_wake = None  # a pooled producer's Wake: told when room frees up

    # ---- producer side --------------------------------------------------------------------
    def put(self, chunk, n: int, block: bool = True, over: bool = False,
            wake: bool = True) -> bool:
        """Queue ``chunk`` worth ``n`` items; False if dropped (non-blocking and full).
        ``over``: queue it even past capacity (by one call's output at most): a pooled
        producer never waits here; the pool runs it again only once ``full`` is False.
        ``wake``: wake the consumer now; without it the producer does later (``wake``), and
        here only where it must wait for room."""
        with self._space:
            while not over and self.fill and self.fill + n > self.capacity and \
                    not self.abandoned:
                if not block:
                    self.dropped += n
                    return False
                if self._abort.is_set():
                    raise Aborted
                if not wake:   # (room comes only once the consumer runs)
                    self._wake.set()
                self._space.wait(0.1)
            if self.abandoned:
                return True
            self._q.append(chunk)
            self.fill += n
            if self.fill > self.max_fill:
                self.max_fill = self.fill
        if wake:
            self._wake.set()
        return True

    def wake(self) -> None:
        """Wake the consumer (for what was ``put`` without waking it)."""
        self._wake.set()

    @property
    def full(self) -> bool:
        return self.fill >= self.capacity and not self.abandoned

    def _room(self) -> None:
        wake = self.producer_wake
        if wake is not None and self.fill < self.capacity:
            wake.set()

    def close(self) -> None:
        """End of stream: the consumer sees it once the queue is drained."""
        with self._lock:
            self.closed = True
        self._wake.set()

    # ---- consumer side ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._q)

    @property
    def exhausted(self) -> bool:
        return self.closed and not self._q

    def front_len(self) -> int:
        q = self._q
        return len(q[0]) if q else 0

    def pop(self):
        """Remove and return the front entry (a Chunk or a message)."""
        with self._space:
            item = self._q.popleft()
            self.fill -= len(item) if isinstance(item, Chunk) else 1
            self._space.notify()
        self._room()
        return item

    def take(self, n: int) -> Chunk:
        """Remove the first ``n`` items (they must be in the front chunk)."""
        with self._space:
            head: Chunk = self._q[0]
            if len(head) == n:
                self._q.popleft()
            else:
                stop = head.offset + n
                self._q[0] = Chunk(head.data[n:], stop, [t for t in head.tags if t.offset >= stop])
                head = Chunk(head.data[:n], head.offset, [t for t in head.tags if t.offset < stop])
            self.fill -= n
            self._space.notify()
        self._room()
        return head

    def abandon(self) -> None:
        """The consumer is gone: discard what is queued and let producers through."""
        with self._space:
            self.abandoned = True
            self._q.clear()
            self.fill = 0
            self._space.notify_all()
        if self.producer_wake is not None:
            self.producer_wake.set()
