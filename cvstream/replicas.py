"""Replicated blocks: ``replicas: N`` deals a block's calls to N copies of it and delivers
their results in stream order, so the output equals the one-copy run.

A block's ``compute`` (its stateless part; ``work`` itself for a ``stateless`` block) runs
on a replica; ``absorb`` (the stateful rest) runs in order on the block in the graph, with
the offset and tags of that call. Where the copies live is a ``Replicas`` pool: threads in
this process (``ThreadReplicas``, the default), or Ray actors on other hosts
(``cvstream.ray_replicas.RayReplicas``). Up to ``2 N`` calls are in flight; their inputs are
kept until their results arrive, so a pool can replay the calls of a replica that died.
"""
from __future__ import annotations

import queue
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np

from .block import Block
from .buffers import Aborted
from .registry import lookup
from .runner import BlockRunner, RunContext


def copy_block(block: Block) -> Block:
    """A fresh copy of ``block`` from its type and parameters (not started)."""
    return lookup(block.type_name)(name=block.name, **block.params)


def compute_counted(block: Block, arrays) -> tuple:
    """``block.compute(*arrays)`` and the counters it added (bad items skipped, ...), which
    the block in the graph takes over."""
    before = dict(block.counters)
    result = block.compute(*arrays)
    added = {k: v - before.get(k, 0) for k, v in block.counters.items()
             if v != before.get(k, 0)}
    return result, added


class ThreadReplicas:
    """N started copies of a block in this process, each call on a thread of the pool."""

    def __init__(self, block: Block, n: int, spec: dict | None = None):
        self.n = n
        self.copies = [copy_block(block) for _ in range(n)]
        for c in self.copies:
            c.start()
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for c in self.copies:
            self._free.put(c)
        self._pool = ThreadPoolExecutor(n, thread_name_prefix=f"cvstream-{block.name}-replica")
        self.counters: dict[str, int] = {}

    def submit(self, arrays) -> Future:
        return self._pool.submit(self._run, arrays)

    def _run(self, arrays):
        block = self._free.get()
        try:
            return compute_counted(block, arrays)
        finally:
            self._free.put(block)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for c in self.copies:
            c.stop()


class ReplicaRunner(BlockRunner):
    """A block whose calls run on ``n`` replicas (``make(block, n)`` builds the pool when
    the task starts); results are delivered in the order the calls were made."""

    def __init__(self, block: Block, ctx: RunContext, n: int, make=ThreadReplicas):
        super().__init__(block, ctx)
        self.n = n
        self.depth = 2 * n
        self._make = make
        self.replicas = None
        self._queue: deque = deque()  # (future, inputs, offset, tags, deliver)
        self._planned = 0  # items the calls made so far will have written

    def begin(self) -> bool:
        if not super().begin():
            return False
        try:
            self.replicas = self._make(self.block, self.n)
        except BaseException as exc:  # noqa: BLE001
            self.fail(exc)
            return False
        return True

    def end(self) -> None:
        if self.replicas is not None:
            self.replicas.close()
            for key, value in getattr(self.replicas, "counters", {}).items():
                if value:
                    self.block.counters[key] = value
        super().end()

    def _out_start(self) -> int:
        return self._planned

    def _continue_from(self, offset: int) -> None:
        super()._continue_from(offset)
        self._planned = offset

    def _call(self, arrays, produces: int, deliver) -> None:
        # inputs are views of buffers the runtime reuses: the call keeps its own copy
        arrays = [np.array(a) for a in arrays]
        self._planned += produces
        future = self.replicas.submit(arrays)
        future.add_done_callback(lambda _: self.wake.set())
        block = self.block
        self._queue.append((future, arrays, block.offset, block.input_tags, deliver))
        if len(self._queue) >= self.depth:
            self._deliver_pending(wait_one=True)
        else:
            self._deliver_pending()

    def _deliver_pending(self, everything: bool = False, wait_one: bool = False) -> bool:
        delivered = False
        block = self.block
        while self._queue and (everything or wait_one or self._queue[0][0].done()):
            future, arrays, offset, tags, deliver = self._queue.popleft()
            while not wait([future], timeout=0.2).done:
                if self.ctx.abort.is_set():
                    raise Aborted
            result, counters = future.result()  # a replica's error is the block's error
            for key, value in counters.items():
                block.count(key, value)
            block.offset, block.input_tags = offset, tags
            t0 = time.perf_counter()
            result = block.absorb(result, *arrays)
            self.stats.record(time.perf_counter() - t0)
            deliver(result)
            delivered, wait_one = True, False
        return delivered
