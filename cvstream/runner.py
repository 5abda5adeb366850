"""Runs one block in its own thread: moves chunks from input buffers through ``work`` to
output buffers, keeping offsets, tags, stats and end of stream right for each block kind."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .block import Block, _as_outputs
from .buffers import Aborted, StreamBuffer
from .chunk import Chunk, Tag
from .dtypes import PortType
from .errors import BlockFailure, CvstreamError, EndOfStream
from .rechunk import RateInput
from .stats import BlockStats

IDLE_WAIT = 0.2


class RunContext:
    """Shared by all runners of one graph: stop/abort flags and the first failure."""

    def __init__(self):
        self.stopping = threading.Event()
        self.abort = threading.Event()
        self.failure: BaseException | None = None
        self._lock = threading.Lock()
        self.wakes: list[threading.Event] = []

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = exc
        self.abort.set()
        for wake in self.wakes:
            wake.set()


@dataclass
class OutPort:
    name: str
    type: PortType | None  # None: message port
    buffers: list[StreamBuffer] = field(default_factory=list)
    written: int = 0


@dataclass
class InPort:
    name: str
    type: PortType | None
    buffers: list[StreamBuffer] = field(default_factory=list)

    @property
    def buffer(self) -> StreamBuffer:
        return self.buffers[0]


class Wake:
    """A task's wake-up: an event for a task on its own thread; for a pooled task it also
    makes the pool schedule it."""

    def __init__(self):
        self.event = threading.Event()
        self.pool = None
        self.task = None

    def set(self) -> None:
        self.event.set()
        if self.pool is not None:
            self.pool.schedule(self.task)

    def clear(self) -> None:
        self.event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)

    def is_set(self) -> bool:
        return self.event.is_set()



class BlockRunner:
    pooled = False  # run by a WorkerPool: puts never wait (the pool holds the task back)

    def __init__(self, block: Block, ctx: RunContext):
        self.block = block
        self.ctx = ctx
        self.wake = Wake()
        ctx.wakes.append(self.wake)
        self.stats = BlockStats(block.name, block.type_name)
        self.inputs: dict[str, InPort] = {}
        self.outputs: dict[str, OutPort] = {}
        self.thread = threading.Thread(target=self.run, name=f"cvstream:{block.name}",
                                       daemon=True)
        block._emit_hook = self._emit
        block._runtime = ctx
        self._stepping: int | None = None   # the thread in ``step`` now
        self._told: list[StreamBuffer] = []   # queued on by ``_emit``, their consumer not woken

    # ---- wiring --------------------------------------------------------------------------
    def add_input(self, port: str, ptype, buf: StreamBuffer) -> None:
        self.inputs.setdefault(port, InPort(port, ptype)).buffers.append(buf)

    def add_output(self, port: str, ptype, buf: StreamBuffer) -> None:
        self.outputs.setdefault(port, OutPort(port, ptype)).buffers.append(buf)

    def _arrange_ports(self):
        """Ports in the block's declaration order (work()'s argument and result order),
        whatever order the connections were listed in; unconnected outputs included."""
        declared_out = self.block.outputs()
        for p in declared_out:
            self.outputs.setdefault(p.name, OutPort(p.name, None if p.is_message else
                                                    p.fixed_type()))
        self.stream_out = [self.outputs[p.name] for p in declared_out if not p.is_message]
        self.msg_out = [self.outputs[p.name] for p in declared_out if p.is_message]
        declared_in = [p for p in self.block.inputs() if p.name in self.inputs]
        self.stream_in = [self.inputs[p.name] for p in declared_in if not p.is_message]
        self.msg_in = [self.inputs[p.name] for p in declared_in if p.is_message]

    # ---- life: begin, steps, end (a thread of its own calls them in ``run``; a worker pool
    # calls them one step at a time) --------------------------------------------------------
    def run(self) -> None:
        """The body of a task's own thread."""
        if self.begin():
            try:
                while True:
                    status = self.step()
                    if status == "exit":
                        break
                    if status == "idle":
                        self.wake.wait(IDLE_WAIT)
            except BaseException as exc:  # noqa: BLE001 - any block error stops the graph
                self.fail(exc)
        self.end()

    def begin(self) -> bool:
        """Start the block; False if it failed (the failure is recorded)."""
        self._arrange_ports()
        block = self.block
        try:
            block.start()
        except BaseException as exc:  # noqa: BLE001
            self.fail(exc)
            return False
        if block.kind == "source":
            self._drop = bool(getattr(block, "drop_when_full", False))
            if block.total_items() is not None:
                self.stats.total_items = block.total_items()
        else:
            self._step_fn = self._step_rate if block.kind == "rate" else self._step_sync
            if block.kind == "rate":
                self._accs = [RateInput(block.history, block.decim, p.type.np_dtype,
                                        p.type.shape) for p in self.stream_in]
                self._next = [None] * len(self.stream_in)
                self._tags: list[list[Tag]] = [[] for _ in self.stream_in]
            self._stream_done = not self.stream_in
            self._finished = False
        return True

    def step(self) -> str:
        """One round: "ran" (did work), "empty" (a source had nothing yet), "idle" (waits
        for input) or "exit"; raises what the block raised. The messages the block sends
        during the round wake their consumers once, as it ends (``_emit``)."""
        self._stepping = threading.get_ident()
        try:
            if self.block.kind == "source":
                return self._source_step()
            return self._consumer_step()
        finally:
            self._stepping = None
            if self._told:
                told, self._told = self._told, []
                for buf in told:
                    buf.wake()

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, Aborted):
            return
        self.ctx.fail(exc if isinstance(exc, BlockFailure) else _failure(self.block, exc))

    def end(self) -> None:
        """Stop the block, end the stream downstream, let go of upstream."""
        try:
            self.block.stop()
        except Exception as exc:  # noqa: BLE001
            self.ctx.fail(_failure(self.block, exc))
        for port in self.outputs.values():
            for buf in port.buffers:
                buf.close()
        for port in self.inputs.values():
            for buf in port.buffers:
                buf.abandon()
        self.stats.ended = time.perf_counter()

    def output_buffers(self) -> list[StreamBuffer]:
        return [b for o in self.outputs.values() for b in o.buffers]

    def outputs_full(self) -> bool:
        """An output has no room (its consumer is behind): a pooled task waits."""
        return any(b.full for b in self.output_buffers())

    def _put(self, buf: StreamBuffer, item, n: int, block: bool = True,
             wake: bool = True) -> bool:
        return buf.put(item, n, block=block, over=self.pooled and block, wake=wake)

    def _abandoned(self) -> bool:
        """Every consumer downstream has finished: nothing we produce is wanted."""
        outs = self.__dict__.get("_out_buffers")
        if outs is None:  # wiring is done once the task runs
            outs = self._out_buffers = self.output_buffers()
        return bool(outs) and all(b.abandoned for b in outs)

    def _source_step(self) -> str:
        block, ctx = self.block, self.ctx
        if ctx.stopping.is_set() and not getattr(block, "ends_by_peer", False):
            return self._source_done()
        if ctx.abort.is_set():
            raise Aborted
        try:
            t0 = time.perf_counter()
            result = block.work()
            self.stats.record(time.perf_counter() - t0)
        except EndOfStream:
            return self._source_done()
        if result is not None:
            if not self._offsets_set:
                self._continue_from(getattr(block, "first_offset", 0))
            self._push(_as_outputs(result, len(self.stream_out)), [], None,
                       block=not self._drop)
        if getattr(block, "_ended", False) or self._abandoned():
            return self._source_done()
        return "ran" if result is not None else "empty"

    def _source_done(self) -> str:
        return "exit"

    def _consumer_step(self) -> str:
        block = self.block
        if self.ctx.abort.is_set():
            raise Aborted
        self.wake.clear()
        progressed = self._deliver_pending()
        progressed = self._handle_messages() or progressed
        if not self._stream_done:
            status = self._step_fn()
            progressed = progressed or status == "ran"
            self._stream_done = status == "done" or getattr(block, "_ended", False)
            if not self._stream_done and self._abandoned():
                return "exit"
        if self._stream_done and not self._finished:
            self._finished = True
            self._finish()
        if self._stream_done and all(b.exhausted for p in self.msg_in for b in p.buffers):
            self._handle_messages()
            return "exit"
        return "ran" if progressed else "idle"

    def _finish(self) -> None:
        block = self.block
        if block.kind == "rate":
            self._flush_rate_tail()
        self._deliver_pending(everything=True)
        result = block.finish()
        if result is not None:
            self._push(_as_outputs(result, len(self.stream_out)), [], None)

    _offsets_set = False

    def _continue_from(self, offset: int) -> None:
        """Outputs carry on the stream's offsets from the first input: 0 where the stream
        starts, the sender's position where a link receiver joins a running stream (a
        restarted fragment: ``first_offset``), so what was lost shows downstream as a gap."""
        self._offsets_set = True
        if offset:
            for port in self.stream_out:
                port.written = offset

    def _deliver_pending(self, everything: bool = False) -> bool:
        """Results computed elsewhere, delivered in stream order (``ReplicaRunner``)."""
        return False

    def _handle_messages(self) -> bool:
        handled = False
        for port in self.msg_in:
            for buf in port.buffers:
                while len(buf):
                    msg = buf.pop()
                    self.stats.msgs_in += 1
                    self.block.on_message(port.name, msg)
                    handled = True
        return handled

    # ---- sync blocks and sinks ---------------------------------------------------------------
    def _step_sync(self) -> str:
        bufs = [p.buffer for p in self.stream_in]
        lens = [b.front_len() for b in bufs]
        if not all(lens):
            return "done" if any(b.exhausted for b in bufs) else "wait"
        n = min(lens)
        chunks = [b.take(n) for b in bufs]
        block = self.block
        block.offset = chunks[0].offset
        if not self._offsets_set:
            self._continue_from(chunks[0].offset if block.kind == "sync" else 0)
        tags = [t for c in chunks for t in c.tags] if block.tag_propagation == "all" else []
        block.input_tags = tags
        self.stats.items_in += n * len(chunks)
        offset = chunks[0].offset
        self._call([c.data for c in chunks], n,
                   lambda result: self._sync_out(result, n, tags, offset))
        return "ran"

    def _call(self, arrays, produces: int, deliver) -> None:
        """Run ``work`` on one call's inputs and hand the result to ``deliver`` (a replicated
        block runs it later, on a replica: ``ReplicaRunner``). ``produces``: items the call
        will write (rate blocks; for placing tags)."""
        t0 = time.perf_counter()
        result = self.block.work(*arrays)
        self.stats.record(time.perf_counter() - t0)
        deliver(result)

    def _sync_out(self, result, n: int, tags: list[Tag], offset: int) -> None:
        block = self.block
        if not self.stream_out or result is None:
            return
        outs = _as_outputs(result, len(self.stream_out))
        ended = getattr(block, "_ended", False)
        for port, arr in zip(self.stream_out, outs):
            if block.kind == "general":
                break
            if len(arr) != n and not (ended and len(arr) < n):
                raise CvstreamError(f"work() returned {len(arr)} items on '{port.name}' "
                                    f"for {n} in (a sync block keeps the count)")
        if block.kind == "general":
            self._push_general(outs, tags, offset)
        else:
            self._push(outs, tags, offset)

    def _push_general(self, outs, tags: list[Tag], in_start: int) -> None:
        """A general block's output: tags keep their distance from the call's first item
        (clamped into the output); with no output this call they wait for the next one."""
        carried = getattr(self, "_carried", [])
        tags = [t._replace(offset=in_start) for t in carried] + tags
        n = max((len(a) for a in outs if a is not None), default=0)
        if n == 0:
            self._carried = tags
            return
        self._carried = []
        starts = [p.written for p in self.stream_out]
        clamped = [t._replace(offset=min(max(t.offset - in_start, 0), n - 1)) for t in tags]
        per_port = [[t._replace(offset=t.offset + s) for t in clamped] for s in starts]
        for port, arr, mine in zip(self.stream_out, outs, per_port):
            self._push_one(port, arr, mine)
        self.block._out_tags.clear()

    # ---- rate-changing and fixed-chunk blocks -----------------------------------------------
    def _step_rate(self) -> str:
        block = self.block
        target = block.decim * (block.max_chunks or 1)
        for i, port in enumerate(self.stream_in):
            buf, acc = port.buffer, self._accs[i]
            while len(buf) and (acc.available < target or block.max_chunks is None):
                chunk: Chunk = buf.pop()
                if self._next[i] is None:
                    self._next[i] = chunk.offset
                acc.push(chunk.data)
                self._tags[i].extend(chunk.tags)
                if block.max_chunks is None and acc.available >= target * 64:
                    break
        n = min(a.available for a in self._accs)
        n -= n % block.decim
        if block.max_chunks:
            n = min(n, target)
        if n > 0:
            self._run_rate(n, [a.take(n) for a in self._accs])
            return "ran"
        # done only when an input can never complete another chunk: its stream has ended
        # and what it has accumulated is short of one (other inputs may still be behind)
        if any(p.buffer.exhausted and acc.available < block.decim
               for p, acc in zip(self.stream_in, self._accs)):
            return "done"
        return "wait"

    def _run_rate(self, n: int, arrays, keep: int | None = None,
                  real_items: int | None = None) -> None:
        block = self.block
        in_start = self._next[0] or 0
        if not self._offsets_set:
            self._continue_from(in_start * block.interp // block.decim)
        out_start = self._out_start()
        tags: list[Tag] = []
        for i in range(len(self._accs)):
            start = self._next[i] or 0
            mine = [t for t in self._tags[i] if t.offset < start + n]
            self._tags[i] = [t for t in self._tags[i] if t.offset >= start + n]
            if block.tag_propagation == "all":
                tags.extend(block.rebase(mine, start, out_start))
            self._next[i] = start + n
        block.offset = in_start
        block.input_tags = tags
        self.stats.items_in += (n if real_items is None else real_items) * len(arrays)
        expect = n * block.interp // block.decim
        self._call(arrays, expect if keep is None else keep,
                   lambda result: self._rate_out(result, n, tags, keep))

    def _out_start(self) -> int:
        """Where the next call's output starts (for placing its tags)."""
        return self.stream_out[0].written if self.stream_out else 0

    def _rate_out(self, result, n: int, tags: list[Tag], keep: int | None) -> None:
        block = self.block
        if not self.stream_out or result is None:
            return
        outs = _as_outputs(result, len(self.stream_out))
        expect = n * block.interp // block.decim
        for port, arr in zip(self.stream_out, outs):
            if len(arr) != expect:
                raise CvstreamError(f"work() returned {len(arr)} items on '{port.name}', "
                                    f"expected {expect} for {n} in (rate "
                                    f"{block.interp}/{block.decim})")
        if keep is not None:
            outs = tuple(a[:keep] for a in outs)
        self._push(outs, tags, None, rebased=True)

    def _flush_rate_tail(self) -> None:
        block = self.block
        rest = min(a.available for a in self._accs)
        extra = sum(a.available - rest for a in self._accs)
        if extra:
            block.count("unpaired_items", extra)
        if not rest:
            return
        if not block.pad_tail:
            block.count("tail_dropped", rest)
            return
        for acc in self._accs:
            acc.truncate(rest)
        keep = -(-rest * block.interp // block.decim)
        block.count("tail_padded", block.decim - rest)
        self._run_rate(block.decim, [a.take_padded(block.decim) for a in self._accs], keep,
                       real_items=rest)

    # ---- output --------------------------------------------------------------------------
    def _push(self, outs, tags: list[Tag], in_start: int | None, block: bool = True,
              rebased: bool = False) -> None:
        for port, arr in zip(self.stream_out, outs):
            if arr is None or len(arr) == 0:
                continue
            mine = tags_for_output(tags, in_start, port.written, len(arr), rebased)
            self._push_one(port, arr, mine, block)
        self.block._out_tags.clear()

    def _push_one(self, port: OutPort, arr, tags: list[Tag], block: bool = True) -> None:
        """Queue one array on every connection of ``port`` with its tags and the tags the
        block added during this call."""
        if arr is None or len(arr) == 0:
            return
        arr = _check_array(arr, port, self.block)
        n, start = len(arr), port.written
        added = self.block._out_tags
        if added:
            tags = tags + [Tag(start + i, k, v, self.block.name)
                           for p, i, k, v in added if p in (None, port.name)]
        chunk = Chunk(arr, start, tags)
        for buf in port.buffers:
            if not self._put(buf, chunk, n, block):
                self.block.count("dropped_items", n)
        port.written += n
        self.stats.items_out += n

    def _emit(self, port: str | None, msg) -> None:
        """Queue a message on the port's connections. Sent from inside ``step`` (its work
        call, its finish, a message handler), it wakes its consumers when the step ends,
        not one message at a time: a burst of detections costs their consumer one round,
        not one round and a fight for the GIL each (a message reaches it at most one work
        call later)."""
        targets = self.msg_out if port is None else [o for o in self.msg_out if o.name == port]
        if not targets:
            raise CvstreamError(f"emit() on unknown message port '{port}'")
        later = self._stepping == threading.get_ident()
        for buf in targets[0].buffers:
            self._put(buf, msg, 1, wake=not later)
            if later and buf not in self._told:
                self._told.append(buf)
        self.stats.msgs_out += 1


def tags_for_output(tags: list[Tag], in_start: int | None, start: int, n: int,
                    rebased: bool = False) -> list[Tag]:
    """A call's tags placed on the ``n`` items written from output offset ``start``: moved
    from input offsets (``in_start`` is the call's first input item) unless already
    ``rebased`` to output offsets; tags past the output's end are left out."""
    if rebased or in_start is None:
        return [t for t in tags if t.offset < start + n]
    return [t._replace(offset=t.offset - in_start + start) for t in tags
            if t.offset - in_start < n]


def _check_array(arr, port: OutPort, block: Block) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        arr = np.asarray(arr)
    want = port.type
    if want is not None and (arr.dtype != want.np_dtype or arr.shape[1:] != want.shape):
        raise CvstreamError(f"work() returned {arr.dtype}{list(arr.shape[1:])} items on "
                            f"'{port.name}', declared {want}")
    if arr.flags.writeable:
        arr.flags.writeable = False
    return arr


def _failure(block: Block, exc: BaseException):
    return BlockFailure(block.name, block.type_name, exc)
