"""A fused chain in one task: the head block runs as a BlockRunner would run it, and what it
produces goes straight through the members' ``work`` (sync blocks, then maybe a sink), with
no buffer or thread hand-off between them. Offsets, tags, end of stream, stats and counters
stay per block; the tail's output is queued on the chain's outgoing buffers."""
from __future__ import annotations

import time

import numpy as np

from .block import Block
from .buffers import Aborted, StreamBuffer
from .chunk import Chunk, Tag
from .errors import BlockFailure, CvstreamError
from .runner import BlockRunner, OutPort, RunContext, _check_array, _failure, tags_for_output
from .stats import WORK_SAMPLES, BlockStats


class ChainRunner(BlockRunner):
    def __init__(self, head: Block, members: list[Block], ctx: RunContext):
        super().__init__(head, ctx)
        self.members = members
        self.member_stats = [BlockStats(m.name, m.type_name) for m in members]
        self.group = [head.name] + [m.name for m in members]
        self.stats.fused = self.group
        for m, st in zip(members, self.member_stats):
            m._runtime = ctx
            m._emit_hook = self._no_messages
            st.fused = self.group
        tail = members[-1]
        self.tail_out = [OutPort(p.name, p.fixed_type()) for p in tail.outputs()]
        self._member_out = [OutPort(p.name, None) for m in members[:-1] for p in m.outputs()]
        self._head_type = None
        self._head_written = 0

    # ---- wiring: the scheduler connects the head's inputs and the tail's outputs ----------
    def add_output(self, port: str, ptype, buf: StreamBuffer) -> None:
        out = self.tail_out[0]
        out.type = ptype if ptype is not None else out.type
        out.buffers.append(buf)

    def set_link_types(self, types: list) -> None:
        """Resolved types of the links inside the chain, head first (checked on every
        call as a buffer would)."""
        self._head_type = types[0]
        for port, ptype in zip(self._member_out, types[1:]):
            port.type = ptype

    def _arrange_ports(self):
        super()._arrange_ports()
        self.stream_out[0].type = self._head_type

    @staticmethod
    def _no_messages(port, msg) -> None:
        raise CvstreamError("a fused block has no message ports")

    def stats_for(self, name: str) -> BlockStats:
        if name == self.block.name:
            return self.stats
        return self.member_stats[[m.name for m in self.members].index(name)]

    # ---- life cycle -----------------------------------------------------------------------
    def begin(self) -> bool:
        self._started = []
        try:
            for m in self.members:
                m.start()
                self._started.append(m)
        except BaseException as exc:  # noqa: BLE001 - a member that cannot start
            self.ctx.fail(_failure(m, exc))
            return False
        self._plan = self._steps()
        return super().begin()

    def end(self) -> None:
        super().end()
        for m in self.__dict__.get("_started", []):
            try:
                m.stop()
            except Exception as exc:  # noqa: BLE001
                self.ctx.fail(_failure(m, exc))
        for port in self.tail_out:
            for buf in port.buffers:
                buf.close()
        end = time.perf_counter()
        for st in self.member_stats:
            st.ended = end

    def output_buffers(self) -> list[StreamBuffer]:
        return [b for o in self.tail_out for b in o.buffers]

    def _source_done(self) -> str:
        self._finish_members()
        return "exit"

    def _finish(self) -> None:
        super()._finish()  # the head's end of stream, through the chain
        self._finish_members()

    def _finish_members(self) -> None:
        for k, m in enumerate(self.members):
            result = m.finish()
            if result is not None and k + 1 < len(self.members):
                self._through(k + 1, result, [], self._head_written)
            elif result is not None and m.kind != "sink":
                self._emit_tail(result, [], block=True)

    # ---- data -----------------------------------------------------------------------------
    def _push(self, outs, tags: list[Tag], in_start, block: bool = True,
              rebased: bool = False) -> None:
        """The head's output: re-based tags, then through every member."""
        head = self.block
        arr = outs[0] if outs else None
        if arr is None or len(arr) == 0:
            head._out_tags.clear()
            return
        start, n = self._head_written, len(arr)
        mine = tags_for_output(tags, in_start, start, n, rebased)
        mine += [Tag(start + i, k, v, head.name) for _, i, k, v in head._out_tags]
        head._out_tags.clear()
        arr = _check_array(arr, self.stream_out[0], head)
        self._head_written += n
        self.stats.items_out += n
        self._through(0, arr, mine, start, block)

    def _steps(self) -> list[tuple]:
        """Per member, what each call needs, looked up once: (block, its work method, stats,
        the wanted dtype, ndim and item shape of its output or None, whether tags pass,
        whether its output is made read-only: the tail's always, and that of any block not
        declaring ``inplace``, whose output may be memory it keeps; whether it is a sink)."""
        steps, last = [], len(self.members) - 1
        for k, m in enumerate(self.members):
            port = None if m.kind == "sink" else (
                self.tail_out[0] if k == last else self._member_out[k])
            want = None if port is None or port.type is None else port.type
            steps.append((m, m.work, self.member_stats[k],
                          None if want is None else want.np_dtype,
                          None if want is None else len(want.shape) + 1,
                          None if want is None else want.shape,
                          m.tag_propagation == "all",
                          # read-only: what leaves the chain, and what a block that may keep
                          # it made; an in-place block's output is fresh memory, free to reuse
                          k == last or not getattr(m, "inplace", False),
                          m.kind == "sink", port))
        return steps

    def _through(self, first: int, x, tags: list[Tag], offset: int,
                 block: bool = True) -> None:
        """The hot loop of a fused chain: per member a work call, its timing and checks."""
        clock = time.perf_counter
        ring = WORK_SAMPLES
        for m, work, st, dtype, ndim, shape, passes, protect, sink, port in \
                self._plan[first:]:
            n = len(x)
            m.offset = offset
            m.input_tags = tags if passes else []
            t0 = clock()
            try:
                out = work(x)
            except (Aborted, BlockFailure):
                raise
            except Exception as exc:  # noqa: BLE001 - named after the member, not the head
                raise _failure(m, exc) from None
            st._times[st.calls % ring] = clock() - t0  # BlockStats.record, inlined
            st.calls += 1
            st.items_in += n
            if sink:
                m._out_tags.clear()
                return
            if out.__class__ is not np.ndarray:
                out = self._not_an_array(m, out, n)
            got = len(out)
            if got != n and not (m._ended and got < n):
                raise _failure(m, CvstreamError(f"work() returned {got} items for {n} "
                                                "in (a sync block keeps the count)"))
            if dtype is not None and (out.dtype is not dtype or out.ndim != ndim or
                                      (ndim > 1 and out.shape[1:] != shape)):
                _check_array(out, port, m)
            if protect:
                out.flags.writeable = False
            if tags:
                if not passes:
                    tags = []
                elif got < n:
                    tags = [t for t in tags if t.offset < offset + got]
            if m._out_tags:
                tags = tags + [Tag(offset + i, key, v, m.name) for _, i, key, v in m._out_tags]
                m._out_tags.clear()
            st.items_out += got
            x = out
            if m._ended:
                self.block._ended = True  # the whole chain ends with it (e.g. head)
            if got == 0:
                return
        self._emit_tail(x, tags, block)

    @staticmethod
    def _not_an_array(m: Block, out, n: int):
        if out is None:
            raise _failure(m, CvstreamError(f"work() returned nothing for {n} in (a sync "
                                            "block keeps the count)"))
        return np.asarray(out)

    def _emit_tail(self, arr, tags: list[Tag], block: bool) -> None:
        port = self.tail_out[0]
        n = len(arr)
        chunk_tags = [t for t in tags if port.written <= t.offset < port.written + n]
        chunk = Chunk(arr, port.written, chunk_tags)
        for buf in port.buffers:
            if not self._put(buf, chunk, n, block):
                self.block.count("dropped_items", n)
        port.written += n
