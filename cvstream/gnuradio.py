"""cvstream blocks as native GNU Radio 3.10 blocks, beside GNU Radio's own in a top_block.

    from gnuradio import gr, blocks
    import cvstream.gnuradio as cg

    tb = gr.top_block()
    fft = cg.block("fft", size=1024)             # stream in and out, tags both ways
    seg = cg.block("spectrum_segmenter", rate=20e6)  # detections on message port 'detections'
    tb.connect(src, fft, sink)

``block(TYPE, **params)`` builds the registered cvstream block and wraps it by kind: a sync
block becomes a ``gr.sync_block``, a source a ``gr.sync_block`` with no inputs, a sink (or a
block whose only outputs are messages) a ``gr.sync_block`` with no outputs, a rate-changing
or general block a ``gr.basic_block`` that buffers its output. Stream tags cross both ways at
their item offsets (the block's own propagation rules, ``cvstream.embed``); message ports
carry PMT dicts, converted through cvstream's PMT codec (what the ZeroMQ blocks use).

A port that accepts any type takes ``in_types`` (``"float32"``, ``("complex64", 256)``, or a
dict per input port); otherwise complex64 items, GNU Radio's usual stream. GNU Radio gives a
block no call after its last input, so the block's ``finish()`` runs at ``stop()``: messages it
sends then are published and counted as ``messages_at_stop`` (GNU Radio 3.10 has stopped the
receivers of a finished flow graph by then), stream items it would add are counted as
``lost_at_stop``; both are printed on stderr.

Runs on GNU Radio's Python (Debian's python3): install cvstream into a venv made with
``python3 -m venv --system-site-packages``; cvstream's requirements admit Debian's numpy 1.24.
"""
from __future__ import annotations

import sys
import time
from functools import partial
from typing import Any

import numpy as np

from . import pmt as cvpmt
from .block import Block, _as_outputs
from .chunk import Tag
from .dtypes import DTYPES, PortType, canonical_dtype, normalize_shape
from .embed import Driver
from .errors import CvstreamError, EndOfStream
from .registry import lookup

TypeSpec = Any  # "float32" | ("complex64", 256) | PortType


def block(type_name: str, name: str | None = None, in_types: TypeSpec | dict | None = None,
          expect: dict | None = None, **params):
    """A native GNU Radio block running the cvstream block ``type_name`` with ``params``.

    ``expect`` maps output ports to the (dtype, vector length) a caller declared for them
    (GRC files do; None: any); a block that computes something else says so."""
    inner = lookup(type_name)(name=name or type_name, **params)
    problems = inner.file_problems()
    if problems:
        field, msg = problems[0]
        raise CvstreamError(f"{type_name}: parameter '{field}': {msg}")
    stream_in = [p for p in inner.inputs() if not p.is_message]
    ins = {p.name: _input_type(p, in_types) for p in stream_in}
    try:
        outs = inner.output_types(ins)
    except CvstreamError as exc:
        taken = ", ".join(f"{k}: {v}" for k, v in ins.items())
        raise CvstreamError(f"{type_name}: {exc} (inputs taken as {taken}; GNU Radio does not "
                            "tell a block what is connected: give in_types=)") from None
    out_types = [outs[p.name] for p in inner.outputs() if not p.is_message]
    for port, (dtype, vlen) in (expect or {}).items():
        got = outs[port]
        size = int(np.prod(got.shape, dtype=np.int64))
        if (dtype is not None and canonical_dtype(dtype) != got.dtype) or \
                (vlen is not None and int(vlen) != size):
            raise CvstreamError(f"{type_name}: output '{port}' carries {got.dtype} x {size} "
                                f"with these parameters, declared {dtype} x {vlen}")
    adapter = _adapter_class(inner, bool(stream_in), bool(out_types))
    return adapter(inner, [ins[p.name] for p in stream_in], out_types)


def _input_type(port, given) -> PortType:
    if isinstance(given, dict):
        given = given.get(port.name)
    if given is None:
        dtype = port.dtype if port.dtype and not port.dtype.startswith("$") else "complex64"
        shape = port.shape if isinstance(port.shape, tuple) else ()
        return PortType(dtype, shape)
    if isinstance(given, PortType):
        return given
    if isinstance(given, str):
        return PortType(canonical_dtype(given), ())
    dtype, shape = given
    return PortType(canonical_dtype(dtype), normalize_shape(shape))


def _signature(t: PortType):
    """GNU Radio's io signature entry: a numpy dtype, or (dtype, vlen) for vector items."""
    size = int(np.prod(t.shape, dtype=np.int64))
    return DTYPES[t.dtype] if not t.shape else (DTYPES[t.dtype], size)


def _adapter_class(inner: Block, has_in: bool, has_out: bool):
    classes = _classes()
    if inner.kind == "source":
        return classes["source"]
    if not has_out:
        return classes["sink"] if has_in else classes["message"]
    if inner.kind == "sync":
        return classes["sync"]
    return classes["buffered"]


_CLASSES: dict = {}


def _classes() -> dict:
    """The adapter classes, made on first use (GNU Radio is imported only here)."""
    if _CLASSES:
        return _CLASSES
    import pmt as grpmt
    from gnuradio import gr

    def to_gr(value):
        return grpmt.deserialize_str(cvpmt.serialize(value))

    def from_gr(value):
        return cvpmt.deserialize(grpmt.serialize_str(value))

    class Adapter:
        """What every wrapped block shares: life cycle, messages, tags, item shapes."""

        def _setup(self, inner: Block, in_types, out_types):
            self.inner, self.in_types, self.out_types = inner, in_types, out_types
            self.driver = Driver(inner, [(t.np_dtype, t.shape) for t in in_types],
                                 len(out_types))
            self._finished = False
            self._sent = 0  # messages published
            inner._emit_hook = self._emit
            self._msg_out = [p.name for p in inner.outputs() if p.is_message]
            for p in inner.ports():
                if p.is_message and p.direction == "in":
                    self.message_port_register_in(grpmt.intern(p.name))
                    # GNU Radio calls a handler by its name, as an attribute of the block
                    handler = partial(self._on_msg, p.name)
                    handler.__name__ = f"_handle_{p.name}"
                    setattr(self, handler.__name__, handler)
                    self.set_msg_handler(grpmt.intern(p.name), handler)
                elif p.is_message:
                    self.message_port_register_out(grpmt.intern(p.name))
            self.set_tag_propagation_policy(gr.TPP_DONT)  # the Driver places tags

        @property
        def counters(self) -> dict[str, int]:
            return dict(self.inner.counters)

        def start(self):
            self.inner.start()
            return True

        def stop(self):
            if not self._finished:
                self._finished = True
                sent = self._sent
                outs, _ = self.driver.flush()
                if outs and len(outs[0]):
                    self.inner.count("lost_at_stop", len(outs[0]))
                if self._sent > sent:
                    self.inner.count("messages_at_stop", self._sent - sent)
                lost = {k: v for k, v in self.inner.counters.items() if k.endswith("at_stop")}
                if lost:
                    print(f"cvstream {self.inner.name}: at stop {lost} (GNU Radio calls "
                          "nothing after a block's last input; receivers may be gone)",
                          file=sys.stderr)
            self.inner.stop()
            return True

        # ---- messages ------------------------------------------------------------------
        def _on_msg(self, port: str, msg) -> None:
            try:
                value = from_gr(msg)
            except cvpmt.PMTError as exc:
                self.inner.count(exc.kind)
                return
            if isinstance(value, cvpmt.Pair):  # a PDU: (metadata dict, data vector)
                value = {"meta": value.car, "data": value.cdr}
            self.inner.on_message(port, value if isinstance(value, dict) else {"value": value})

        def _emit(self, port: str | None, msg) -> None:
            if port is None:
                if not self._msg_out:
                    raise CvstreamError(f"{self.inner.name}: emit() without a message port")
                port = self._msg_out[0]
            self.message_port_pub(grpmt.intern(port), to_gr(msg))
            self._sent += 1

        # ---- items and tags -------------------------------------------------------------
        def _inputs(self, input_items, n: int) -> list[np.ndarray]:
            """Copies: GNU Radio reuses its buffers, and blocks may keep what they get."""
            return [np.array(x[:n]).reshape((n, *t.shape))
                    for x, t in zip(input_items, self.in_types)]

        def _tags_in(self, n: int) -> list[Tag]:
            tags = []
            for i in range(len(self.in_types)):
                for t in self.get_tags_in_window(i, 0, n):
                    try:
                        tags.append(Tag(t.offset, grpmt.symbol_to_string(t.key),
                                        from_gr(t.value), from_gr(t.srcid)))
                    except (cvpmt.PMTError, RuntimeError, TypeError, ValueError):
                        self.inner.count("bad_tags")
            return tags

        def _tags_out(self, tags: list[Tag]) -> None:
            for t in tags:
                key, value = grpmt.intern(t.key), to_gr(t.value)
                src = grpmt.intern(str(t.srcid if t.srcid is not None else self.inner.name))
                for i in range(len(self.out_types)):
                    self.add_item_tag(i, t.offset, key, value, src)

        def _write(self, output_items, outs, start: int, m: int) -> None:
            for o, a in zip(output_items, outs):
                o[:m] = a[start:start + m].reshape(o[:m].shape)

    def sigs(in_types, out_types):
        return [_signature(t) for t in in_types] or None, \
               [_signature(t) for t in out_types] or None

    class SyncAdapter(Adapter, gr.sync_block):
        """One item out per item in (a cvstream SyncBlock)."""

        def __init__(self, inner, in_types, out_types):
            i, o = sigs(in_types, out_types)
            gr.sync_block.__init__(self, name=f"cvstream_{inner.type_name}", in_sig=i, out_sig=o)
            self._setup(inner, in_types, out_types)

        def work(self, input_items, output_items):
            if self.inner._ended:
                return -1  # WORK_DONE (e.g. head has passed its items)
            n = len(output_items[0])
            outs, tags = self.driver.push(self._inputs(input_items, n), self._tags_in(n))
            m = len(outs[0]) if outs else 0
            self._write(output_items, outs, 0, m)
            self._tags_out(tags)
            return m if m or not self.inner._ended else -1

    class SourceAdapter(Adapter, gr.sync_block):
        """A cvstream Source: what one work() returns waits until GNU Radio takes it."""

        def __init__(self, inner, in_types, out_types):
            gr.sync_block.__init__(self, name=f"cvstream_{inner.type_name}", in_sig=None,
                                   out_sig=sigs(in_types, out_types)[1])
            self._setup(inner, in_types, out_types)
            self._pending, self._at, self._done = (), 0, False

        def work(self, input_items, output_items):
            if self._at >= (len(self._pending[0]) if self._pending else 0):
                if self._done:
                    return -1
                try:
                    result = self.inner.work()
                except EndOfStream:
                    self._done = True
                    return -1
                if result is None:
                    time.sleep(0.001)  # a live source with nothing yet
                    return 0
                start = self.driver.written
                self._pending = tuple(np.asarray(a) for a in _as_outputs(result,
                                                                       len(self.out_types)))
                self._at = 0
                self.driver.written += len(self._pending[0])
                added = [Tag(start + i, k, v, self.inner.name)
                         for _, i, k, v in self.inner._out_tags]
                self.inner._out_tags.clear()
                self._tags_out(added)
            m = min(len(output_items[0]), len(self._pending[0]) - self._at)
            self._write(output_items, self._pending, self._at, m)
            self._at += m
            return m

    class SinkAdapter(Adapter, gr.sync_block):
        """A sink, or a block whose only outputs are messages (a detector)."""

        def __init__(self, inner, in_types, out_types):
            gr.sync_block.__init__(self, name=f"cvstream_{inner.type_name}",
                                   in_sig=sigs(in_types, out_types)[0], out_sig=None)
            self._setup(inner, in_types, out_types)

        def work(self, input_items, output_items):
            n = len(input_items[0])
            self.driver.push(self._inputs(input_items, n), self._tags_in(n))
            return n

    class MessageAdapter(Adapter, gr.basic_block):
        """A block with message ports only."""

        def __init__(self, inner, in_types, out_types):
            gr.basic_block.__init__(self, name=f"cvstream_{inner.type_name}", in_sig=None,
                                    out_sig=None)
            self._setup(inner, in_types, out_types)

    class BufferedAdapter(Adapter, gr.basic_block):
        """A rate-changing or general block: it takes every input item offered (the Driver
        keeps history and partial chunks) and hands out its output as room allows; it takes
        no new input while output is waiting, so what it holds stays one call's worth."""

        def __init__(self, inner, in_types, out_types):
            i, o = sigs(in_types, out_types)
            gr.basic_block.__init__(self, name=f"cvstream_{inner.type_name}", in_sig=i,
                                    out_sig=o)
            self._setup(inner, in_types, out_types)
            self._pending, self._at, self._tags = (), 0, []

        def _waiting(self) -> int:
            return len(self._pending[0]) - self._at if self._pending else 0

        def forecast(self, noutput_items, ninputs):
            return [0 if self._waiting() else 1] * ninputs

        def general_work(self, input_items, output_items):
            if not self._waiting():
                n = min(len(x) for x in input_items)
                if n == 0:
                    return 0
                outs, tags = self.driver.push(self._inputs(input_items, n), self._tags_in(n))
                self.consume_each(n)
                self._pending, self._at = outs, 0
                self._tags += tags
                if not self._waiting():
                    return 0
            m = min(len(output_items[0]), self._waiting())
            self._write(output_items, self._pending, self._at, m)
            self._at += m
            end = self.nitems_written(0) + m
            self._tags_out([t for t in self._tags if t.offset < end])
            self._tags = [t for t in self._tags if t.offset >= end]
            return m

    _CLASSES.update(sync=SyncAdapter, source=SourceAdapter, sink=SinkAdapter,
                    message=MessageAdapter, buffered=BufferedAdapter)
    return _CLASSES
