"""Where a block's stateless ``compute`` runs beside its own detections: on a worker
thread, or in a process of its own (``process_worker.ProcessWorker``), which shares no GIL
with the block's thread. Two busy threads of one process slow each other down each time
the GIL changes hands (README, stop 82). The process starts in the background; until it
is up, and for a batch too big for its slots, the thread serves. The block takes the
results in the order it submitted the batches."""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .process_worker import ProcessWorker

KINDS = ("thread", "process")


def unavailable(kind: str) -> str | None:
    """Why a worker of ``kind`` cannot run on this system (None where it can)."""
    if kind == "process" and not hasattr(os, "memfd_create"):
        return "a worker process needs Linux (memfd_create); use thread here"
    return None


class ComputeWorker:
    """Runs ``block``'s batches of up to ``max_samples`` samples, ``in_flight`` at a time.

    - ``kind`` "thread": ``block._infer(x, track_psds)`` (``compute``'s result and what
      else the block leaves to its worker) on a thread.
    - ``kind`` "process": ``compute(x, True)`` (the tracks' PSDs always) in a copy of the
      block in a process of its own (its parameters with ``overrides``;
      ``result_bytes(n)``: the most a result for ``n`` samples takes; ``views``:
      ``ProcessWorker``'s), started at the first batch (a replica, whose ``compute`` is
      called directly, starts none). The block counts the batches computed there as
      ``process_batches``.

    ``submit`` returns a call whose ``result()`` is (compute's result, the rest or None),
    and the batch's samples as long as the block needs them (in the process's slot, or x
    itself, copied unless the caller owns it)."""

    def __init__(self, block, kind: str, max_samples: int, in_flight: int,
                 result_bytes=None, overrides: dict | None = None, views: tuple = ()):
        self._block = block
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"cvstream-{block.name}")
        self._start = (lambda: ProcessWorker(block, max_samples, result_bytes(max_samples),
                                             in_flight + 1, overrides, views)) \
            if kind == "process" else None
        self._process = None

    def ready(self, wait: float = 0.0) -> bool:
        """Whether its process is up (started now if not yet, and waited for up to ``wait``
        seconds); True without one."""
        return self._start is None or self._started().ready(wait)

    def _started(self) -> ProcessWorker:
        if self._process is None:
            self._process = self._start()
        return self._process

    def submit(self, x: np.ndarray, track_psds: Callable[[], bool], own: bool = True):
        """Compute batch ``x`` (``track_psds()``: whether the thread takes the tracks' PSDs
        too, asked only where the batch goes to it; the process always takes them, where
        the block's thread would take them only after waiting for its result); ``own``: x
        is the caller's to keep (not a view of a buffer it reuses), so the thread reads it
        as it is; else the thread reads a copy, the process its slot."""
        process = self._started() if self._start is not None else None
        if process is not None and len(x) <= process.max_samples and process.ready():
            self._block.count("process_batches")
            call = process.submit(x, True)
            return Pair(call), call.samples
        x = x if own else x.copy()
        track_psds = track_psds()
        if process is None:
            return self._thread.submit(self._block._infer, x, track_psds), x
        # on the thread meanwhile: compute alone, as the process would
        return self._thread.submit(lambda: (self._block.compute(x, track_psds), None)), x

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)
        if self._process is not None:
            self._process.close()


class Pair:
    """A process's call, whose ``result()`` is (compute's result, None), as a thread's."""

    def __init__(self, call):
        self._call = call

    def done(self) -> bool:
        return self._call.done()

    def result(self) -> tuple:
        return self._call.result(), None
