"""A fixed pool of worker threads that runs tasks one step at a time.

A task is ready when something woke it (data or end of stream on an input, a message, room
on an output, stop or abort) or when its last step did work. A worker takes a ready task,
checks that every output buffer has room (a producer whose consumer is behind waits, so
memory stays bounded without a worker ever blocking), runs one step, and puts the task
back if it did work (after up to ``BURST`` more steps while no other task is ready), or
leaves it dormant until woken. Tasks whose blocks may block (live
sources, throttle, blocks with threads of their own: ``Block.blocking``) are not given to
the pool; they keep threads of their own (``BlockRunner.run``).
"""
from __future__ import annotations

import heapq
import threading
import time
from collections import deque

from .runner import BlockRunner

DORMANT, QUEUED, RUNNING, WOKEN, DONE = range(5)
EMPTY_RETRY = 0.002  # seconds before a pooled source that had nothing is asked again
BURST = 32  # further steps a task that did work may take while no other task is ready


class WorkerPool:
    def __init__(self, tasks: list[BlockRunner], workers: int):
        self.tasks = tasks
        self.workers = workers
        self.state = {id(t): DORMANT for t in tasks}
        self.ready: deque = deque()
        self.later: list[tuple[float, int, BlockRunner]] = []
        self.cond = threading.Condition()
        self.left = len(tasks)
        self.threads = [threading.Thread(target=self._work, name=f"cvstream:worker{i}",
                                         daemon=True) for i in range(workers)]
        for task in tasks:
            task.wake.pool, task.wake.task = self, task
            task.pooled = True
            for buf in task.output_buffers():
                buf.producer_wake = task.wake

    def start(self) -> None:
        with self.cond:
            for task in self.tasks:  # a task woken already is queued already: once only
                if self.state[id(task)] == DORMANT:
                    self.state[id(task)] = QUEUED
                    self.ready.append(task)
        for thread in self.threads:
            thread.start()

    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)

    def schedule(self, task: BlockRunner) -> None:
        with self.cond:
            state = self.state[id(task)]
            if state == DORMANT:
                self.state[id(task)] = QUEUED
                self.ready.append(task)
                self.cond.notify()
            elif state == RUNNING:
                self.state[id(task)] = WOKEN

    # ---- a worker ---------------------------------------------------------------------------
    def _next(self) -> BlockRunner | None:
        with self.cond:
            while True:
                if self.left == 0:
                    return None
                now = time.monotonic()
                while self.later and self.later[0][0] <= now:
                    _, _, task = heapq.heappop(self.later)
                    if self.state[id(task)] == DORMANT:
                        self.state[id(task)] = QUEUED
                        self.ready.append(task)
                while self.ready:
                    task = self.ready.popleft()
                    if self.state[id(task)] == QUEUED:  # a task runs on one worker at a time
                        self.state[id(task)] = RUNNING
                        return task
                self.cond.wait(self.later[0][0] - now if self.later else 0.2)

    def _work(self) -> None:
        while (task := self._next()) is not None:
            status = self._step(task)
            # a task that did work keeps its worker for a burst while no other task waits
            # (GNU Radio 4 and FutureSDR run a block until it blocks): one pass through the
            # pool's lock per burst instead of per chunk
            burst = BURST
            while status == "ran" and burst and not self.ready:
                status = self._step(task)
                burst -= 1
            with self.cond:
                if status == "exit":
                    self.state[id(task)] = DONE
                    self.left -= 1
                    if self.left == 0:
                        self.cond.notify_all()
                elif status == "ran" or self.state[id(task)] == WOKEN:
                    self.state[id(task)] = QUEUED
                    self.ready.append(task)
                    self.cond.notify()
                else:
                    self.state[id(task)] = DORMANT
                    if status == "empty":
                        heapq.heappush(self.later, (time.monotonic() + EMPTY_RETRY,
                                                    id(task), task))

    @staticmethod
    def _step(task: BlockRunner) -> str:
        """One step of ``task`` ("blocked" when an output has no room); ends the task
        (``end()``) when it exits or fails."""
        ctx = task.ctx
        try:
            if not task.__dict__.get("_begun"):
                task._begun = True
                if not task.begin():
                    task.end()
                    return "exit"
            if not (ctx.abort.is_set() or ctx.stopping.is_set()) and task.outputs_full():
                return "blocked"
            status = task.step()
        except BaseException as exc:  # noqa: BLE001 - any block error stops the graph
            task.fail(exc)
            status = "exit"
        if status == "exit":
            task.end()
        return status
