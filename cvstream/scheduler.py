"""Runs a validated Graph: one thread per block, bounded buffers on every connection.

numpy and ONNX Runtime release the GIL inside their kernels, so blocks overlap on the cores.
``stop()`` asks sources to end: what is in flight drains, sinks flush and close.
``abort()`` (or a failing block) tears everything down at once.
"""
from __future__ import annotations

import time

from .buffers import StreamBuffer
from .graph import Graph
from .runner import BlockRunner, RunContext
from .stats import snapshot


class Scheduler:
    def __init__(self, graph: Graph):
        graph.validate()
        self.graph = graph
        self.ctx = RunContext()
        self.runners = {name: BlockRunner(node.block, self.ctx)
                        for name, node in graph.nodes.items()}
        self.buffers: dict[str, StreamBuffer] = {}
        for conn in graph.connections:
            dst = self.runners[conn.dst]
            buf = StreamBuffer(conn.capacity(), dst.wake, self.ctx.abort, str(conn))
            self.buffers[str(conn)] = buf
            self.runners[conn.src].add_output(conn.src_port, conn.type, buf)
            dst.add_input(conn.dst_port, conn.type, buf)
        self.started: float | None = None

    def start(self) -> None:
        self.started = time.perf_counter()
        for runner in self.runners.values():
            runner.thread.start()

    def running(self) -> bool:
        return any(r.thread.is_alive() for r in self.runners.values())

    def wait(self, timeout: float | None = None, tick=None, tick_every: float = 0.5) -> bool:
        """Wait for all blocks to end; ``tick()`` is called periodically. True when done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_tick = time.monotonic() + tick_every
        while self.running():
            for runner in self.runners.values():
                runner.thread.join(0.05)
                if runner.thread.is_alive():
                    break
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
        for runner in self.runners.values():
            runner.wake.set()

    def abort(self) -> None:
        self.ctx.abort.set()
        for runner in self.runners.values():
            runner.wake.set()

    @property
    def failure(self):
        return self.ctx.failure

    def snapshot(self) -> dict:
        stats = {name: r.stats for name, r in self.runners.items()}
        blocks = {name: r.block for name, r in self.runners.items()}
        return snapshot(stats, blocks, self.buffers)

    def progress(self) -> tuple[int, int] | None:
        """(done, total) items over the sources whose length is known."""
        done = total = 0
        for r in self.runners.values():
            if r.stats.total_items:
                total += r.stats.total_items
                done += r.stats.items_out
        return (done, total) if total else None
