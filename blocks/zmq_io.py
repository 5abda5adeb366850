"""ZeroMQ stream and message blocks, wire-compatible with GNU Radio's gr-zeromq 3.10.

Streams: one frame per chunk of host-endian items, optionally prefixed by the pass_tags
header. Messages: JSON objects, or serialized PMT dicts (GNU Radio's *_msg_* blocks).
Malformed frames are dropped, counted and logged (at most once a second); the stream goes on.
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np
import zmq

from cvstream import EndOfStream, In, MsgIn, MsgOut, Out, Param, Sink, Source, pmt, register
from cvstream.chunk import Tag
from cvstream.dtypes import PortType
from cvstream.errors import ParamError
from cvstream.messages import MessageError, decode_json, dumps
from cvstream.params import SHAPE
from cvstream.zmq_wire import MAGIC, VERSION, FrameError, decode_header, encode_header

from .zmq_params import (CurveParams, EndParams, bound_endpoint, check_endpoint,
                         close_sender, count_refused_keys, send_end)
from .zmq_sockets import Links, RateLimitedLog, Receiver, Sender, open_sender, warn_if_open


HEAD_START = MAGIC.to_bytes(2, "little") + bytes([VERSION])  # a tag header's first bytes


@register("zmq_source")
class ZmqSource(EndParams, CurveParams, Source):
    """Receive a stream from ZeroMQ (gr-zeromq sub_sink / push_sink compatible).

    ``pattern: sub`` or ``pull``; connects by default (``bind: true`` to bind). With
    ``pass_tags`` each frame starts with the gr-zeromq tag header; sequence gaps are counted
    as ``lost_items``, what a publisher sent before this subscriber joined as
    ``lost_at_start``, and a restarted publisher as ``restarts`` (raw frames carry no
    offsets: their losses cannot be known). Malformed and truncated frames, empty frames and
    undecodable tags are dropped and counted per cause; a peer that sends a frame over
    ``max_frame`` bytes is disconnected by ZeroMQ before the frame is buffered (counted in
    ``peer_disconnects`` with every other closed connection). Memory: at most ``hwm`` x
    ``max_frame`` bytes are queued per connection (64 x 4 MiB by default), plus one chunk of
    ``coalesce`` bytes; a bound source admits ``max_peers`` connections at once
    (``refused_peers`` counts the others), so the socket holds at most ``max_peers`` times
    that.
    ``overflow: drop`` drops (counted) instead of waiting when downstream is full.
    ``idle_timeout`` ends the stream after that many seconds without data (0: run until
    interrupted). Frames that have already arrived are joined into one chunk of up to
    ``coalesce`` bytes (GNU Radio sends a few thousand samples per frame: thousands of
    frames a second at 20 Msps, each a trip through the runtime otherwise). With ``gather``
    the source sleeps that long after a frame arrives and then takes all that came
    meanwhile: one wake-up per chunk instead of per frame (keep ``gather`` x frames a second
    well under ``hwm``). Multipart messages: a SUB topic part (GNU Radio's key) is skipped,
    every other part is a frame. CURVE (``curve_key`` with ``curve_server`` or
    ``curve_clients``) encrypts the link and authenticates the peers (``refused_keys``).
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
    hwm = Param(int, default=64, min=1, doc="frames queued per connection at most")
    bind = Param(bool, default=False, doc="bind instead of connect")
    key = Param(str, default="", doc="SUB topic filter (GNU Radio's key)")
    overflow = Param(str, default="block", choices=("block", "drop"),
                     doc="when downstream is full: wait, or drop and count")
    idle_timeout = Param(float, default=0.0, min=0.0, unit="s",
                         doc="end of stream after this long without data (0: never)")
    max_frame = Param(int, default=4 << 20, min=64, unit="bytes",
                      doc="a peer sending a larger frame is disconnected")
    max_peers = Param(int, default=4, min=1, doc="with bind: connections admitted at once")
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
        try:
            self.type = PortType(canonical_dtype(self.dtype), normalize_shape(self.shape))
        except ValueError as exc:
            raise ParamError("dtype", str(exc)) from None
        check_endpoint(self)
        self._check_curve()

    @property
    def drop_when_full(self) -> bool:
        return self.overflow == "drop"

    def start(self):
        kind = zmq.SUB if self.pattern == "sub" else zmq.PULL
        warn_if_open(self, self._curve)
        self._links = Links(kind, self.address, self.bind, self.hwm, self.key,
                            self.max_frame, self.max_peers, self._curve)
        self.endpoint = bound_endpoint(self._links.sock, self)
        self._rx = Receiver(self._links.sock, topic=kind == zmq.SUB)
        self._log = RateLimitedLog(f"zmq_source '{self.name}'")
        self._end_seen = False
        self._next_remote = None
        self._last_data = time.monotonic()
        self._frames: deque = deque()  # received, not yet decoded
        self._values = int(np.prod(self.type.shape, dtype=np.int64))  # numbers per item
        self._item_size, self._np_dtype = self.type.item_size, self.type.np_dtype

    def work(self):
        frames = self._frames
        if self._end_seen:
            raise EndOfStream
        if not frames:
            frames.extend(self._rx.recv())
        now = time.monotonic()
        self._watch_peers()
        if not frames:
            if self._quiet_for(now - self._last_data):
                raise EndOfStream
            return None
        self._last_data = now
        if self.gather:
            time.sleep(self.gather)
        parts, items = [], 0
        while True:
            if not frames:
                if items * self._item_size >= self.coalesce:
                    break
                frames.extend(self._rx.recv_ready())
                if not frames:
                    break
            if self.eos and len(frames[0]) == 0:
                self._end_seen = True
                frames.clear()
                break
            if items and self._holds_no_items(frames[0]):
                break  # its tags belong to the next chunk's first item
            x = self._decode_counted(frames.popleft().buffer, base=items)
            if x is not None:
                parts.append(x)
                items += len(x)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _watch_peers(self) -> None:
        gone, refused, bad_keys = self._links.poll()
        if gone:
            self.count("peer_disconnects", gone)
            if not self.eos:  # a cvstream peer ends with an end-of-stream frame
                self._log(f"a peer disconnected ({self.counters['peer_disconnects']} so far: "
                          f"it ended, or sent a frame over max_frame {self.max_frame} bytes)")
        if refused:
            self.count("refused_peers", refused)
            self._log(f"refused a connection: {self.max_peers} peers already (max_peers)")
        if bad_keys:
            self.count("refused_keys", bad_keys)
            self._log("refused a connection: its CURVE key is not in curve_clients")

    def _decode_counted(self, buf: memoryview, base: int):
        try:
            return self._decode(buf, base)
        except FrameError as exc:
            self.count(exc.kind)
            self._log(f"dropped frame: {exc}")
            return None

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
        if nbytes == 0:
            raise FrameError("empty_frames", "empty frame")
        tags: list[Tag] = []
        start = 0
        if self.pass_tags:
            remote, tags, start = decode_header(buf)
        payload = nbytes - start
        size = self._item_size
        if payload % size:
            hint = ""
            if not self.pass_tags and bytes(buf[:3]) == HEAD_START:
                hint = " (the sender seems to use pass_tags: true; set it here too)"
            raise FrameError("malformed", f"{payload} payload bytes is not a multiple of the "
                             f"item size {size} ({self.type}){hint}")
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
        return x.reshape(n, *self.type.shape)

    def _track_sequence(self, remote: int, n: int) -> None:
        expected = self._next_remote
        if expected is None and self.eos:
            # a cvstream peer: the stream's offsets go on from where the sender is (a
            # restarted fragment), and a gap after this is counted as lost_items
            self.first_offset = remote
        elif expected is None and remote > 0:
            self.count("lost_at_start", remote)
            self._log(f"joined a running stream: the {remote} items sent before are missed")
        elif expected is not None and remote != expected:
            if remote > expected:
                self.count("lost_items", remote - expected)
                self._log(f"sequence gap: {remote - expected} items lost")
            else:
                self.count("restarts")
                self._log("publisher restarted (offset went back)")
        self._next_remote = remote + n

    def stop(self):
        if getattr(self, "_links", None) is not None:
            self._links.close()


@register("zmq_sink")
class ZmqSink(EndParams, CurveParams, Sink):
    """Send a stream over ZeroMQ (gr-zeromq sub_source / pull_source compatible).

    ``pattern: pub`` or ``push``; binds by default. One frame per chunk. With ``pass_tags``
    every frame carries the gr-zeromq tag header (offset and tags). PUB with ``drop: true``
    drops frames at the high-water mark and counts them (``dropped_items``); otherwise the
    sink waits for the peers (PUB uses ZMQ_XPUB_NODROP, so nothing is lost silently). At
    stop it waits up to 2 s for a slow peer to take what is queued, not at all when no peer
    is connected; what stays undelivered is counted (``undelivered_items``). CURVE as on
    ``zmq_source``: as a server with ``curve_clients`` it admits only those keys.
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

    def check(self):
        check_endpoint(self)
        self._check_curve()

    def start(self):
        kind = zmq.PUB if self.pattern == "pub" else zmq.PUSH
        warn_if_open(self, self._curve)
        self._sock, self._gate = open_sender(kind, self.address, self.bind, self.hwm,
                                             self._curve)
        self.endpoint = bound_endpoint(self._sock, self)
        if kind == zmq.PUB:
            self._sock.setsockopt(zmq.XPUB_NODROP, 1)
        # with eos the peer is part of the same run: it gets all the time it needs
        self._tx = Sender(self._sock, self, self.drop and kind == zmq.PUB, self.key,
                          stop_timeout=float("inf") if self.eos else 2.0, gate=self._gate)

    def work(self, x):
        data = np.ascontiguousarray(x)
        frames = [memoryview(data).cast("B")]
        if self.pass_tags:
            frames = [encode_header(self.offset, self.input_tags) + data.tobytes()]
        count_refused_keys(self)
        if not self._tx.send(frames, len(x)):
            self.count("dropped_items", len(x))

    def stop(self):
        send_end(self)
        close_sender(self, "undelivered_items")


def decode_message(raw: bytes, fmt: str) -> dict:
    """A message from a peer as a dict; raises MessageError (only), ``kind`` naming why."""
    if len(raw) == 0:
        raise MessageError("empty_messages", "empty message")
    if fmt == "json":
        value = decode_json(raw)
    else:
        try:
            value = pmt.deserialize(raw)
        except pmt.PMTError as exc:
            raise MessageError(exc.kind, str(exc)) from None
        if isinstance(value, pmt.Pair):  # a PDU: (metadata dict, data vector)
            value = {"meta": value.car, "data": value.cdr}
    return value if isinstance(value, dict) else {"value": value}


@register("zmq_msg_sink")
class ZmqMsgSink(EndParams, CurveParams, Sink):
    """Send messages over ZeroMQ, one per frame, as JSON or as serialized PMT dicts.

    PMT frames are what GNU Radio's ``sub_msg_source`` / ``pull_msg_source`` read. A message
    that has no PMT form (a value of a type PMT lacks) is counted (``unencodable_messages``)
    and logged, not sent.

    Ports: in (message). Example: ``out: {type: zmq_msg_sink, address: "tcp://*:5557"}``
    """

    inp = MsgIn()
    address = Param(str, doc="ZeroMQ endpoint")
    pattern = Param(str, default="pub", choices=("pub", "push"))
    format = Param(str, default="json", choices=("json", "pmt"))
    bind = Param(bool, default=True, doc="bind (default) or connect")
    hwm = Param(int, default=1000, doc="send high-water mark in messages")

    def check(self):
        check_endpoint(self)
        self._check_curve()

    def start(self):
        kind = zmq.PUB if self.pattern == "pub" else zmq.PUSH
        warn_if_open(self, self._curve)
        self._sock, self._gate = open_sender(kind, self.address, self.bind, self.hwm,
                                             self._curve)
        self.endpoint = bound_endpoint(self._sock, self)
        self._tx = Sender(self._sock, self, drop=False,
                          stop_timeout=float("inf") if self.eos else 2.0, gate=self._gate)
        self._log = RateLimitedLog(f"zmq_msg_sink '{self.name}'")

    def on_message(self, port, msg):
        try:
            raw = dumps(msg).encode() if self.format == "json" else pmt.serialize(msg)
        except pmt.PMTError as exc:
            self.count("unencodable_messages")
            self._log(f"message not sent: {exc}")
            return
        count_refused_keys(self)
        if not self._tx.send([raw], 1):
            self.count("dropped_messages")

    def stop(self):
        send_end(self)
        close_sender(self, "undelivered_messages")


@register("zmq_msg_source")
class ZmqMsgSource(EndParams, CurveParams, Source):
    """Receive messages from ZeroMQ: JSON objects or serialized PMTs.

    PMT frames come e.g. from GNU Radio's ``pub_msg_sink``; a PDU becomes
    ``{"meta": ..., "data": ...}``. Messages that cannot be decoded or exceed the limits
    (nesting 32, 65536 elements, ``max_message`` bytes) are dropped and counted by cause:
    ``bad_json``, ``bad_pmt``, ``too_deep``, ``too_large``, ``empty_messages``; a peer that
    sends more than ``max_message`` bytes in one frame is disconnected by ZeroMQ
    (``peer_disconnects``). Memory: at most ``hwm`` x ``max_message`` bytes queued per
    connection, and with ``bind`` at most ``max_peers`` connections (``refused_peers``).

    Ports: out (message). Example: ``rx: {type: zmq_msg_source, address: "tcp://h:5557"}``
    """

    live = True
    out = MsgOut(optional=False)
    address = Param(str, doc="ZeroMQ endpoint")
    pattern = Param(str, default="sub", choices=("sub", "pull"))
    format = Param(str, default="json", choices=("json", "pmt"))
    bind = Param(bool, default=False, doc="bind instead of connect")
    hwm = Param(int, default=100, min=1, doc="messages queued per connection at most")
    max_message = Param(int, default=1 << 20, min=64, unit="bytes",
                        doc="a peer sending a larger message is disconnected")
    max_peers = Param(int, default=4, min=1, doc="with bind: connections admitted at once")
    idle_timeout = Param(float, default=0.0, min=0.0, unit="s",
                         doc="end of stream after this long without messages (0: never)")

    def check(self):
        check_endpoint(self)
        self._check_curve()

    def start(self):
        kind = zmq.SUB if self.pattern == "sub" else zmq.PULL
        warn_if_open(self, self._curve)
        self._links = Links(kind, self.address, self.bind, self.hwm, "", self.max_message,
                            self.max_peers, self._curve)
        self.endpoint = bound_endpoint(self._links.sock, self)
        self._rx = Receiver(self._links.sock, topic=kind == zmq.SUB)
        self._log = RateLimitedLog(f"zmq_msg_source '{self.name}'")
        self._last = time.monotonic()

    def work(self):
        frames = self._rx.recv()
        now = time.monotonic()
        gone, refused, bad_keys = self._links.poll()
        if gone:
            self.count("peer_disconnects", gone)
        if refused:
            self.count("refused_peers", refused)
        if bad_keys:
            self.count("refused_keys", bad_keys)
        if not frames:
            if self._quiet_for(now - self._last):
                raise EndOfStream
            return None
        self._last = now
        for frame in frames:
            if self.eos and len(frame) == 0:
                self.end_stream()
                break
            try:
                msg = decode_message(frame.bytes, self.format)
            except MessageError as exc:
                self.count(exc.kind)
                self._log(f"dropped message: {exc}")
                continue
            self.emit(msg)
        return None

    def stop(self):
        if getattr(self, "_links", None) is not None:
            self._links.close()
