"""Runs a validated Graph: tasks on a pool of worker threads, bounded buffers between them.

A task is one block, or a chain of blocks fused by ``fusion.plan_chains`` (a source or sync
block followed by sync blocks, maybe ending in a sink) that runs with no buffers inside.
Tasks run one step at a time on ``workers`` threads (``pool.py``; default: one per core);
a task whose blocks may wait (live sources, ``blocking`` blocks) has a thread of its own,
and ``workers: 0`` gives every task its own. numpy and ONNX Runtime release the GIL inside
their kernels, so tasks overlap on the cores. ``stop()`` asks sources to end: what is in
flight drains, sinks flush and close. ``abort()`` (or a failing block) tears everything
down at once.
"""
from __future__ import annotations

import os
import time

from . import allocator
from .buffers import StreamBuffer
from .chain import ChainRunner
from .fusion import plan_chains
from .graph import Graph
from .pool import WorkerPool
from .replicas import ReplicaRunner, ThreadReplicas
from .runner import BlockRunner, RunContext
from .stats import snapshot


def default_workers() -> int:
    return os.cpu_count() or 2


def _may_wait(task: BlockRunner) -> bool:
    if isinstance(task, ReplicaRunner):
        return True  # waits for its replicas' results
    blocks = [task.block] + list(getattr(task, "members", []))
    return any(b.blocking or getattr(b, "live", False) for b in blocks)


class Scheduler:
    def __init__(self, graph: Graph, fuse: bool | None = None, workers: int | None = None,
                 replicas=ThreadReplicas):
        """``fuse``: run one-to-one chains fused; ``workers``: threads of the pool (0: a
        thread per task), both defaulting to the graph's options; ``replicas(block, n)``
        makes the pool of a replicated block's copies (threads here by default)."""
        graph.validate()
        self.graph = graph
        self.ctx = RunContext()
        self.groups = plan_chains(graph, graph.fuse if fuse is None else fuse)
        self.tasks: list[BlockRunner] = []
        self.runners: dict[str, BlockRunner] = {}  # block name -> the task that runs it
        for group in self.groups:
            blocks = [graph.nodes[n].block for n in group]
            copies = graph.nodes[group[0]].replicas
            if len(group) > 1:
                task = ChainRunner(blocks[0], blocks[1:], self.ctx)
            elif copies > 1:
                task = ReplicaRunner(blocks[0], self.ctx, copies, replicas)
            else:
                task = BlockRunner(blocks[0], self.ctx)
            self.tasks.append(task)
            self.runners.update({name: task for name in group})
        self.buffers: dict[str, StreamBuffer] = {}
        for conn in graph.connections:
            src, dst = self.runners[conn.src], self.runners[conn.dst]
            if src is dst:
                continue  # inside a chain: no buffer
            buf = StreamBuffer(conn.capacity(), dst.wake, self.ctx.abort, str(conn))
            self.buffers[str(conn)] = buf
            src.add_output(conn.src_port, conn.type, buf)
            dst.add_input(conn.dst_port, conn.type, buf)
        for group, task in zip(self.groups, self.tasks):
            if len(group) > 1:
                task.set_link_types([next(c.type for c in graph.outgoing(n))
                                     for n in group[:-1]])
        if workers is None:
            workers = graph.workers if graph.workers is not None else default_workers()
        self.own_thread = [t for t in self.tasks if not workers or _may_wait(t)]
        pooled = [t for t in self.tasks if t not in self.own_thread]
        self.pool = WorkerPool(pooled, min(workers, len(pooled))) if pooled else None
        self.started: float | None = None

    def stats_of(self, name: str):
        task = self.runners[name]
        return task.stats_for(name) if isinstance(task, ChainRunner) else task.stats

    def start(self) -> None:
        allocator.tune()   # large arrays reuse mapped pages (allocator.py)
        self.started = time.perf_counter()
        if self.pool is not None:
            self.pool.start()
        for task in self.own_thread:
            task.thread.start()

    def running(self) -> bool:
        return any(t.thread.is_alive() for t in self.own_thread) or (
            self.pool is not None and self.pool.alive())

    def wait(self, timeout: float | None = None, tick=None, tick_every: float = 0.5) -> bool:
        """Wait for all blocks to end; ``tick()`` is called periodically. True when done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_tick = time.monotonic() + tick_every
        while self.running():
            for task in self.own_thread:
                task.thread.join(0.05)
                if task.thread.is_alive():
                    break
            else:
                if self.pool is not None:
                    self.pool.join(0.05)
            now = time.monotonic()
            if tick is not None and now >= next_tick:
                tick()
                next_tick = now + tick_every
            if deadline is not None and now > deadline:
                return False
        return True

    def run(self, timeout: float | None = None) -> None:
        """Start, wait, and raise the first block failure (BlockFailure) if there was one."""
        self.start()
        if not self.wait(timeout):
            self.abort()
            self.wait(5.0)
        if self.ctx.failure is not None:
            raise self.ctx.failure

    def stop(self) -> None:
        """Graceful: sources stop, in-flight data drains, sinks flush."""
        self.ctx.stopping.set()
        for task in self.tasks:
            task.wake.set()

    def abort(self) -> None:
        self.ctx.abort.set()
        for task in self.tasks:
            task.wake.set()

    @property
    def failure(self):
        return self.ctx.failure

    def snapshot(self) -> dict:
        stats = {name: self.stats_of(name) for name in self.graph.nodes}
        blocks = {name: node.block for name, node in self.graph.nodes.items()}
        return snapshot(stats, blocks, self.buffers)

    def progress(self) -> tuple[int, int] | None:
        """(done, total) items over the sources whose length is known."""
        done = total = 0
        for task in self.tasks:
            if task.stats.total_items:
                total += task.stats.total_items
                done += task.stats.items_out
        return (done, total) if total else None
