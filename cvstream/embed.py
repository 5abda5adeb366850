"""Drive one block by hand, as the scheduler would: arrays and tags in, arrays and tags out.

For hosts that own the buffers and threads themselves (GNU Radio's scheduler in
``cvstream.gnuradio``). The rules are the runtime's (``runner.py``): a sync block keeps the
count and its tags; a rate block gets ``history`` + multiples of ``decim`` and its tags are
rebased by ``interp/decim``; a general block's tags keep their distance from the call's
first item, clamped into its output. Offsets are absolute item counts from the stream start.
Blocks may keep the arrays they are given: a caller that reuses its buffers passes copies.
"""
from __future__ import annotations

import numpy as np

from .block import Block, _as_outputs, _read_only
from .chunk import Tag, rebase_tags
from .errors import CvstreamError
from .rechunk import RateInput

Output = tuple[tuple[np.ndarray, ...], list[Tag]]  # arrays per stream output; their tags


class Driver:
    """Feeds ``block`` (started by the caller) with aligned input arrays.

    ``push(arrays, tags)`` returns what the block produced: one array per stream output (all
    the same length) and the output tags at absolute output offsets. ``flush()`` ends the
    stream: a rate block's partial chunk is zero-padded (output trimmed), then ``finish()``.
    """

    def __init__(self, block: Block, in_types: list[tuple], n_out: int):
        """``in_types``: per stream input, its numpy dtype and item shape."""
        self.block = block
        self.n_out = n_out
        self.read = 0          # input items consumed so far (per input; inputs are aligned)
        self.written = 0       # output items produced so far (per output)
        self._carried: list[Tag] = []
        if block.kind == "rate":
            self._accs = [RateInput(block.history, block.decim, dtype, shape)
                          for dtype, shape in in_types]
            self._tags: list[Tag] = []
            self._next = 0     # absolute input offset of the next item a work call gets

    # ---- feeding ---------------------------------------------------------------------------
    def push(self, arrays: list[np.ndarray], tags: list[Tag]) -> Output:
        n = len(arrays[0]) if arrays else 0
        if self.block.tag_propagation != "all":
            tags = []
        if self.block.kind == "rate":
            for acc, x in zip(self._accs, arrays):
                acc.push(x)
            self._tags.extend(tags)
            self.read += n
            return self._run_rate(final=False)
        start = self.read
        self.read += n
        self.block.offset = start
        self.block.input_tags = tags
        result = self.block.work(*[_read_only(x) for x in arrays])
        if self.block.kind == "general":
            return self._general_output(result, tags, start)
        return self._collect([result], tags, start)

    def flush(self) -> Output:
        if self.block.kind == "rate":
            return self._run_rate(final=True)
        result = self.block.finish()
        if self.block.kind == "general":
            return self._general_output(result, [], self.read)
        return self._collect([result], [], None)

    # ---- rate blocks -----------------------------------------------------------------------
    def _run_rate(self, final: bool) -> Output:
        block, results, tags = self.block, [], []
        step = block.decim * (block.max_chunks or 1 << 40)
        while True:
            n = min(a.available for a in self._accs)
            n = min(n - n % block.decim, step)
            if n <= 0:
                break
            tags += self._rate_call(n, [a.take(n) for a in self._accs], None, results)
        if final:
            rest = min(a.available for a in self._accs)
            if rest and block.pad_tail:
                keep = -(-rest * block.interp // block.decim)
                block.count("tail_padded", block.decim - rest)
                tags += self._rate_call(block.decim, [a.take_padded(block.decim)
                                                      for a in self._accs], keep, results)
            elif rest:
                block.count("tail_dropped", rest)
            results.append(block.finish())
        return self._collect(results, tags, None)

    def _rate_call(self, n: int, arrays, keep, results) -> list[Tag]:
        block = self.block
        out_start = self.written + sum(len(r[0]) for r in results if r)
        mine = [t for t in self._tags if t.offset < self._next + n]
        self._tags = [t for t in self._tags if t.offset >= self._next + n]
        tags = rebase_tags(mine, self._next, out_start, block.interp, block.decim)
        block.offset, block.input_tags = self._next, tags
        self._next += n
        result = block.work(*arrays)
        tags += [Tag(out_start + i, k, v, block.name) for _, i, k, v in block._out_tags]
        block._out_tags.clear()
        if result is None or not self.n_out:
            return tags
        outs = _as_outputs(result, self.n_out)
        expect = n * block.interp // block.decim
        if any(len(a) != expect for a in outs):
            raise CvstreamError(f"{block.name}: work() returned {[len(a) for a in outs]} "
                                f"items for {n} in (rate {block.interp}/{block.decim})")
        results.append(outs if keep is None else tuple(a[:keep] for a in outs))
        return tags

    # ---- outputs ---------------------------------------------------------------------------
    def _general_output(self, result, tags: list[Tag], in_start: int) -> Output:
        """Tags keep their distance from the call's first input item, clamped into the
        output; with no output this call they wait for the next one."""
        tags = [t._replace(offset=in_start) for t in self._carried] + tags
        outs = _as_outputs(result, self.n_out) if result is not None and self.n_out else ()
        n = len(outs[0]) if outs else 0
        if n == 0:
            self._carried = tags
            return self._collect([], [], None)
        self._carried = []
        placed = [t._replace(offset=self.written + min(max(t.offset - in_start, 0), n - 1))
                  for t in tags]
        return self._collect([outs], placed, None)

    def _collect(self, results: list, tags: list[Tag], in_start: int | None) -> Output:
        """Join one or more calls' outputs; ``in_start`` set: tags still at input offsets
        (a sync block: one item out per item in)."""
        block = self.block
        parts = [_as_outputs(r, self.n_out) for r in results if r is not None and self.n_out]
        parts = [p for p in parts if len(p[0])]
        if in_start is not None:
            tags = [t._replace(offset=t.offset - in_start + self.written) for t in tags]
        added = block._out_tags
        if added:
            # relative to the output of the call that made them (one call: not a rate block)
            tags = tags + [Tag(self.written + i, k, v, block.name) for _, i, k, v in added]
            added.clear()
        if not parts:
            return (), tags
        outs = tuple(np.concatenate(arrs) if len(arrs) > 1 else arrs[0] for arrs in zip(*parts))
        self.written += len(outs[0])
        return outs, [t for t in tags if t.offset < self.written]
