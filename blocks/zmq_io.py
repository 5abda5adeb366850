"""ZeroMQ stream and message blocks, wire-compatible with GNU Radio's gr-zeromq 3.10.

Streams: one frame per chunk of host-endian items, optionally prefixed by the pass_tags
header. Messages: JSON objects, or serialized PMT dicts (GNU Radio's *_msg_* blocks).
Malformed frames are dropped, counted and logged (at most once a second); the stream goes on.
"""
from __future__ import annotations

import json
import sys
import time
from collections import deque

import numpy as np
import zmq

from cvstream import EndOfStream, In, MsgIn, MsgOut, Out, Param, Sink, Source, pmt, register
from cvstream.chunk import Tag
from cvstream.dtypes import PortType
from cvstream.errors import CvstreamError
from cvstream.params import SHAPE
from cvstream.zmq_wire import FrameError, decode_header, encode_header

from .sinks import to_json

POLL_MS = 100


class RateLimitedLog:
    """Prints at most one line per ``period`` seconds, with the count of what it held back."""

    def __init__(self, prefix: str, period: float = 1.0):
        self.prefix = prefix
        self.period = period
        self._last = -1e9
        self._held = 0

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last < self.period:
            self._held += 1
            return
        more = f" (+{self._held} more)" if self._held else ""
        print(f"cvstream: {self.prefix}: {text}{more}", file=sys.stderr)
        self._last, self._held = now, 0


def _socket(kind: int, address: str, bind: bool, hwm: int, key: str = "", sub=False):
    ctx = zmq.Context.instance()
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 1000)
    if hwm >= 0:
        sock.setsockopt(zmq.SNDHWM if kind in (zmq.PUB, zmq.PUSH) else zmq.RCVHWM, hwm)
    if sub:
        sock.setsockopt(zmq.SUBSCRIBE, key.encode())
    try:
        (sock.bind if bind else sock.connect)(address)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise CvstreamError(f"cannot {'bind' if bind else 'connect'} {address}: {exc}") from None
    return sock


class _Receiver:
    """Polls a socket; returns the data frame or None after the poll timeout."""

    def __init__(self, sock):
        self.sock = sock
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)

    def recv(self):
        if not self.poller.poll(POLL_MS):
            return None
        return self._last_part()

    def recv_ready(self):
        """The next data frame if one has already arrived, else None (never waits)."""
        if not self.sock.get(zmq.EVENTS) & zmq.POLLIN:
            return None
        return self._last_part()

    def _last_part(self):
        """The message's last part (a key, when present, is the first)."""
        frame = self.sock.recv(copy=False)
        while frame.more:
            frame = self.sock.recv(copy=False)
        return frame


class _Sender:
    """Sends without ever hanging: retries while the peer is slow, gives up (counted) only
    when the graph is stopping and ``stop_timeout`` has passed, or at once in drop mode.

    Frames go out zero-copy; a tracker per frame tells when ZeroMQ is done with the memory,
    so ``drain()`` at stop waits for delivery instead of freeing buffers still queued."""

    def __init__(self, sock, block, drop: bool, key: str = "", stop_timeout: float = 2.0):
        self.sock = sock
        self.block = block
        self.drop = drop
        self.key = key.encode()
        self.stop_timeout = stop_timeout
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLOUT)
        self._pending: deque = deque()  # (tracker, items) not yet handed to the kernel
        self._stop_deadline: float | None = None

    def send(self, frames: list, items: int = 0) -> bool:
        if self.key:
            frames = [self.key] + frames
        while True:
            try:
                tracker = self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False,
                                                   track=True)
                break
            except zmq.Again:
                if self.drop or self._past_stop_deadline():
                    return False
            self.poller.poll(POLL_MS)
        pending = self._pending
        pending.append((tracker, items))
        while pending and pending[0][0].done:
            pending.popleft()
        return True

    def _past_stop_deadline(self) -> bool:
        """Once the graph stops, the peer gets ``stop_timeout`` seconds in all to keep up."""
        if not self.block.stopping:
            return False
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.stop_timeout
        return time.monotonic() > self._stop_deadline

    def drain(self) -> int:
        """Wait (up to stop_timeout) until queued frames are sent; returns items not sent."""
        deadline = self._stop_deadline or time.monotonic() + self.stop_timeout
        while self._pending:
            tracker, _ = self._pending[0]
            try:
                tracker.wait(max(0.0, deadline - time.monotonic()))
            except zmq.NotDone:
                break
            self._pending.popleft()
        lost = sum(items for _, items in self._pending)
        self._pending.clear()
        return lost

    def close(self) -> int:
        lost = self.drain()
        self.sock.close(linger=0 if lost else 1000)
        return lost


def _close_sender(block, counter: str) -> None:
    """Close a sink's socket after delivering what is queued; count what could not be."""
    if getattr(block, "_tx", None) is not None:
        lost = block._tx.close()
        if lost:
            block.count(counter, lost)
    elif getattr(block, "_sock", None) is not None:
        block._sock.close(0)


@register("zmq_source")
class ZmqSource(Source):
    """Receive a stream from ZeroMQ (gr-zeromq sub_sink / push_sink compatible).

    ``pattern: sub`` or ``pull``; connects by default (``bind: true`` to bind). With
    ``pass_tags`` each frame starts with the gr-zeromq tag header; sequence gaps are counted
    as ``lost_items`` and a restarted publisher as ``restarts``. Malformed, truncated and
    oversize frames are dropped and counted. ``overflow: drop`` drops (counted) instead of
    waiting when downstream is full. ``idle_timeout`` ends the stream after that many
    seconds without data (0: run until interrupted). Frames that have already arrived are
    joined into one chunk of up to ``coalesce`` bytes (GNU Radio sends a few thousand
    samples per frame: thousands of frames a second at 20 Msps, each a trip through the
    runtime otherwise). With ``gather`` the source sleeps that long after a frame arrives
    and then takes all that came meanwhile: one wake-up per chunk instead of per frame
    (keep ``gather`` x frames a second well under ``hwm``).
    Ports: out (``dtype``, item ``shape``). Latency: one frame, plus ``gather``.
    Example: ``rx: {type: zmq_source, address: "tcp://127.0.0.1:5555", pattern: pull}``
    """

    live = True
    out = Out("$dtype", "$shape")
    address = Param(str, doc="ZeroMQ endpoint, e.g. tcp://127.0.0.1:5555")
    pattern = Param(str, default="sub", choices=("sub", "pull"))
    dtype = Param(str, default="complex64", doc="item sample type")
    shape = Param(SHAPE, default=1, doc="item shape (vector length, or a list)")
    pass_tags = Param(bool, default=False, doc="frames carry the gr-zeromq tag header")
    hwm = Param(int, default=64, doc="receive high-water mark in messages (-1: ZeroMQ's)")
    bind = Param(bool, default=False, doc="bind instead of connect")
    key = Param(str, default="", doc="SUB topic filter (GNU Radio's key)")
    overflow = Param(str, default="block", choices=("block", "drop"),
                     doc="when downstream is full: wait, or drop and count")
    idle_timeout = Param(float, default=0.0, min=0.0, unit="s",
                         doc="end of stream after this long without data (0: never)")
    max_frame = Param(int, default=64 << 20, min=1, unit="bytes", doc="larger frames dropped")
    coalesce = Param(int, default=1 << 20, min=1, unit="bytes",
                     doc="join frames already received into chunks up to this size")
    gather = Param(float, default=0.0, min=0.0, max=1.0, unit="s",
                   doc="after a frame arrives, wait this long for more before sending it on")
    rate = Param(float, default=0.0, min=0.0, unit="Hz",
                 doc="sample rate of the stream, when known (checked by model blocks)")

    def output_types(self, in_types):
        return {"out": self.type.with_rate(self.rate or None)}

    def check(self):
        from cvstream.dtypes import canonical_dtype, normalize_shape
        from cvstream.errors import ParamError
        try:
            self.type = PortType(canonical_dtype(self.dtype), normalize_shape(self.shape))
        except ValueError as exc:
            raise ParamError("dtype", str(exc)) from None

    @property
    def drop_when_full(self) -> bool:
        return self.overflow == "drop"

    def start(self):
        kind = zmq.SUB if self.pattern == "sub" else zmq.PULL
        self._sock = _socket(kind, self.address, self.bind, self.hwm, self.key,
                             sub=self.pattern == "sub")
        self._rx = _Receiver(self._sock)
        self._log = RateLimitedLog(f"zmq_source '{self.name}'")
        self._next_remote = None
        self._written = 0
        self._last_data = time.monotonic()
        self._pending = None
        self._values = int(np.prod(self.type.shape, dtype=np.int64))  # numbers per item
        self._item_size, self._np_dtype = self.type.item_size, self.type.np_dtype

    def work(self):
        frame, self._pending = self._pending or self._rx.recv(), None
        now = time.monotonic()
        if frame is None:
            if self.idle_timeout and now - self._last_data > self.idle_timeout:
                raise EndOfStream
            return None
        self._last_data = now
        if self.gather:
            time.sleep(self.gather)
        parts, items = [], 0
        while frame is not None:
            try:
                x = self._decode(frame.buffer, base=items)
            except FrameError as exc:
                self.count(exc.kind)
                self._log(f"dropped frame: {exc}")
                x = None
            if x is not None:
                parts.append(x)
                items += len(x)
            full = items * self._item_size >= self.coalesce
            frame = None if full else self._rx.recv_ready()
            if frame is not None and items and self._holds_no_items(frame):
                self._pending = frame  # its tags belong to the next chunk's first item
                break
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _holds_no_items(self, frame) -> bool:
        buf = frame.buffer
        try:
            start = decode_header(buf)[2] if self.pass_tags else 0
        except FrameError:
            return False  # decoded (and counted) as it comes
        return len(buf) - start < self._item_size

    def _decode(self, buf: memoryview, base: int = 0):
        """The frame's items (None if it holds none); its tags are added ``base`` items
        into the chunk being built."""
        nbytes = len(buf)
        if nbytes > self.max_frame:
            raise FrameError("oversize", f"{nbytes} bytes > max_frame {self.max_frame}")
        tags: list[Tag] = []
        start = 0
        if self.pass_tags:
            remote, tags, start = decode_header(buf)
        payload = nbytes - start
        size = self._item_size
        if payload % size:
            raise FrameError("malformed", f"{payload} payload bytes is not a multiple of the "
                             f"item size {size} ({self.type})")
        n = payload // size
        if self.pass_tags:
            self._track_sequence(remote, n)
            for tag in tags:
                rel = tag.offset - remote
                if not 0 <= rel < max(n, 1):
                    self.count("tags_outside_frame")
                    rel = min(max(rel, 0), max(n - 1, 0))
                self.add_tag(base + rel, tag.key, tag.value)
        if n == 0:
            return None
        x = np.frombuffer(buf, dtype=self._np_dtype, count=n * self._values, offset=start)
        self._written += n
        return x.reshape(n, *self.type.shape)

    def _track_sequence(self, remote: int, n: int) -> None:
        if self._next_remote is not None and remote != self._next_remote:
            if remote > self._next_remote:
                self.count("lost_items", remote - self._next_remote)
                self._log(f"sequence gap: {remote - self._next_remote} items lost")
            else:
                self.count("restarts")
                self._log("publisher restarted (offset went back)")
        self._next_remote = remote + n

    def stop(self):
        sock = getattr(self, "_sock", None)
        if sock is not None:
            sock.close(0)


@register("zmq_sink")
class ZmqSink(Sink):
    """Send a stream over ZeroMQ (gr-zeromq sub_source / pull_source compatible).

    ``pattern: pub`` or ``push``; binds by default. One frame per chunk. With ``pass_tags``
    every frame carries the gr-zeromq tag header (offset and tags). PUB with ``drop: true``
    drops frames at the high-water mark and counts them (``dropped_items``); otherwise the
    sink waits for the peers (PUB uses ZMQ_XPUB_NODROP, so nothing is lost silently).
    Ports: in (any type). Latency: one chunk.
    Example: ``tx: {type: zmq_sink, address: "tcp://127.0.0.1:5556", pattern: push}``
    """

    inp = In(None, None)
    address = Param(str, doc="ZeroMQ endpoint, e.g. tcp://127.0.0.1:5556")
    pattern = Param(str, default="pub", choices=("pub", "push"))
    pass_tags = Param(bool, default=False, doc="prefix each frame with the tag header")
    hwm = Param(int, default=64, doc="send high-water mark in messages (-1: ZeroMQ's)")
    bind = Param(bool, default=True, doc="bind (default) or connect")
    key = Param(str, default="", doc="PUB topic sent as a first frame (GNU Radio's key)")
    drop = Param(bool, default=False, doc="PUB: drop at the high-water mark (counted)")

    def start(self):
        kind = zmq.PUB if self.pattern == "pub" else zmq.PUSH
        self._sock = _socket(kind, self.address, self.bind, self.hwm)
        if kind == zmq.PUB:
            self._sock.setsockopt(zmq.XPUB_NODROP, 1)
        self._tx = _Sender(self._sock, self, self.drop and kind == zmq.PUB, self.key)

    def work(self, x):
        data = np.ascontiguousarray(x)
        frames = [memoryview(data).cast("B")]
        if self.pass_tags:
            frames = [encode_header(self.offset, self.input_tags) + data.tobytes()]
        if not self._tx.send(frames, len(x)):
            self.count("dropped_items", len(x))

    def stop(self):
        _close_sender(self, "undelivered_items")


def _encode_message(msg, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(msg, default=to_json).encode()
    return pmt.serialize(msg)


def _decode_message(raw: bytes, fmt: str) -> dict:
    if fmt == "json":
        value = json.loads(raw)
    else:
        value = pmt.deserialize(raw)
        if isinstance(value, pmt.Pair):  # a PDU: (metadata dict, data vector)
            value = {"meta": value.car, "data": value.cdr}
    return value if isinstance(value, dict) else {"value": value}


@register("zmq_msg_sink")
class ZmqMsgSink(Sink):
    """Send messages over ZeroMQ, one per frame, as JSON or as serialized PMT dicts.

    PMT frames are what GNU Radio's ``sub_msg_source`` / ``pull_msg_source`` read.

    Ports: in (message). Example: ``out: {type: zmq_msg_sink, address: "tcp://*:5557"}``
    """

    inp = MsgIn()
    address = Param(str, doc="ZeroMQ endpoint")
    pattern = Param(str, default="pub", choices=("pub", "push"))
    format = Param(str, default="json", choices=("json", "pmt"))
    bind = Param(bool, default=True, doc="bind (default) or connect")
    hwm = Param(int, default=1000, doc="send high-water mark in messages")

    def start(self):
        kind = zmq.PUB if self.pattern == "pub" else zmq.PUSH
        self._sock = _socket(kind, self.address, self.bind, self.hwm)
        self._tx = _Sender(self._sock, self, drop=False)

    def on_message(self, port, msg):
        if not self._tx.send([_encode_message(msg, self.format)], 1):
            self.count("dropped_messages")

    def stop(self):
        _close_sender(self, "undelivered_messages")


@register("zmq_msg_source")
class ZmqMsgSource(Source):
    """Receive messages from ZeroMQ: JSON objects or serialized PMTs.

    PMT frames come e.g. from GNU Radio's ``pub_msg_sink``; a PDU becomes
    ``{"meta": ..., "data": ...}``. Undecodable frames are dropped and counted
    (``bad_messages``).

    Ports: out (message). Example: ``rx: {type: zmq_msg_source, address: "tcp://h:5557"}``
    """

    live = True
    out = MsgOut(optional=False)
    address = Param(str, doc="ZeroMQ endpoint")
    pattern = Param(str, default="sub", choices=("sub", "pull"))
    format = Param(str, default="json", choices=("json", "pmt"))
    bind = Param(bool, default=False, doc="bind instead of connect")
    idle_timeout = Param(float, default=0.0, min=0.0, unit="s",
                         doc="end of stream after this long without messages (0: never)")

    def start(self):
        kind = zmq.SUB if self.pattern == "sub" else zmq.PULL
        self._sock = _socket(kind, self.address, self.bind, -1, sub=kind == zmq.SUB)
        self._rx = _Receiver(self._sock)
        self._log = RateLimitedLog(f"zmq_msg_source '{self.name}'")
        self._last = time.monotonic()

    def work(self):
        frame = self._rx.recv()
        now = time.monotonic()
        if frame is None:
            if self.idle_timeout and now - self._last > self.idle_timeout:
                raise EndOfStream
            return None
        self._last = now
        try:
            self.emit(_decode_message(frame.bytes, self.format))
        except (ValueError, pmt.PMTError) as exc:
            self.count("bad_messages")
            self._log(f"dropped message: {exc}")
        return None

    def stop(self):
        if getattr(self, "_sock", None) is not None:
            self._sock.close(0)
