"""ZeroMQ plumbing shared by the zmq blocks: endpoint checks, CURVE keys, sockets with byte
bounds, a receiver that never raises for what a peer sends, a sender that never hangs (both
on ``zmq_peers``' peer counts and gate), and a rate-limited log."""
from __future__ import annotations

import ipaddress
import os
import re
import sys
import time
from collections import deque

import zmq

from cvstream.errors import CvstreamError, ParamError

from .zmq_peers import Gated, GatedPeers, PeerGate, PeerMonitor

POLL_MS = 100
ENDPOINT_RE = re.compile(r"^(tcp|ipc|inproc)://(.+)$")


def endpoint_problem(address: str, bind: bool) -> str | None:
    """Why ``address`` is not a usable ZeroMQ endpoint (None when it is)."""
    m = ENDPOINT_RE.match(address)
    if not m:
        return (f"'{address}' is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH or "
                "inproc://NAME)")
    transport, rest = m.groups()
    if transport != "tcp":
        return None
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        return f"'{address}': a tcp endpoint needs HOST:PORT"
    if port == "*" and bind:
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"'{address}': port '{port}' is not a number from 1 to 65535"
    if host == "*" and not bind:
        return f"'{address}': '*' (any interface) is for binding; connect to a host"
    return None


def is_loopback(address: str) -> bool:
    m = ENDPOINT_RE.match(address)
    if not m or m.group(1) != "tcp":
        return True
    host = m.group(2).rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Curve:
    """ZeroMQ CURVE on one socket: this end's certificate pair, and either the server's
    public key (this end is the client) or, on the server, the public keys of the clients it
    admits (None: any client that knows the server's key). Certificates are ZeroMQ's files
    (``cvstream keys new NAME``: NAME.key public, NAME.key_secret secret)."""

    def __init__(self, key: str, server: str = "", clients: str = ""):
        import zmq.auth
        import zmq.utils.z85
        if not zmq.has("curve"):
            raise CvstreamError("this pyzmq/libzmq was built without CURVE")
        self.public, self.secret = _certificate(key, secret=True)
        self.server_key = _certificate(server)[0] if server else None
        self.allowed = None
        if clients:
            if not os.path.isdir(clients):
                raise CvstreamError(f"curve_clients '{clients}' is not a directory")
            # ZeroMQ's ZAP request carries a client's key in binary; certificates hold Z85
            self.allowed = {zmq.utils.z85.decode(k) for k in zmq.auth.load_certificates(clients)}
            if not self.allowed:
                raise CvstreamError(f"curve_clients '{clients}' holds no public certificate "
                                    "(NAME.key)")

    @classmethod
    def of(cls, block) -> "Curve | None":
        """From a block's ``curve_key``, ``curve_server`` and ``curve_clients``."""
        if not block.curve_key:
            if block.curve_server or block.curve_clients:
                raise ParamError("curve_key", "CURVE needs this end's secret certificate "
                                 "(curve_key: NAME.key_secret)")
            return None
        if block.curve_server and block.curve_clients:
            raise ParamError("curve_clients", "a CURVE client (curve_server set) admits no "
                             "clients; give curve_clients on the server")
        try:
            return cls(block.curve_key, block.curve_server, block.curve_clients)
        except CvstreamError as exc:
            raise ParamError("curve_key", str(exc)) from None

    @property
    def is_server(self) -> bool:
        return self.server_key is None

    def apply(self, sock) -> None:
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        if self.is_server:
            sock.curve_server = True
        else:
            sock.curve_serverkey = self.server_key


def _certificate(path: str, secret: bool = False) -> tuple[bytes, bytes | None]:
    import zmq.auth
    try:
        public, private = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise CvstreamError(f"cannot read the certificate '{path}': {exc}") from None
    if secret and private is None:
        raise CvstreamError(f"'{path}' is a public certificate; this end needs its secret one "
                            "(NAME.key_secret)")
    return public, private


def warn_if_open(block, curve: "Curve | None") -> None:
    """One line on stderr when a block binds beyond loopback without CURVE."""
    if block.bind and curve is None and not is_loopback(block.address):
        print(f"cvstream: {block.type_name} '{block.name}': binds {block.address} beyond "
              "loopback without CURVE: anyone who can reach it can connect (curve_key)",
              file=sys.stderr)


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


def open_socket(kind: int, address: str, bind: bool, hwm: int, key: str = "",
                max_frame: int = -1, prepare=None, curve: Curve | None = None):
    """A socket bound or connected to ``address``. ``max_frame`` (bytes) makes ZeroMQ close
    a connection whose peer sends a larger frame before buffering it, so a receiver holds at
    most ``hwm x max_frame`` bytes per connection."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 1000)
    receiving = kind in (zmq.SUB, zmq.PULL)
    if hwm >= 0:
        sock.setsockopt(zmq.RCVHWM if receiving else zmq.SNDHWM, hwm)
    if receiving and max_frame > 0:
        sock.setsockopt(zmq.MAXMSGSIZE, max_frame)
    if kind == zmq.SUB:
        sock.setsockopt(zmq.SUBSCRIBE, key.encode())
    if curve is not None:
        curve.apply(sock)
    if prepare is not None:
        prepare(sock)
    try:
        (sock.bind if bind else sock.connect)(address)
    except zmq.ZMQError as exc:
        sock.close(0)
        raise CvstreamError(f"cannot {'bind' if bind else 'connect'} {address}: {exc}") from None
    return sock


class Links:
    """The peers of a receiving socket. A bound one admits at most ``max_peers`` (the
    PeerGate); a connecting one connects again when ZeroMQ will not. ``poll()`` tells the
    disconnects and refused peers since the last call."""

    def __init__(self, kind: int, address: str, bind: bool, hwm: int, key: str,
                 max_frame: int, max_peers: int, curve: Curve | None = None):
        self.address = address
        self.entry = None
        allowed = curve.allowed if curve is not None and curve.is_server else None

        def gate(sock):
            self.entry = PeerGate.shared().admit(sock, max_peers, allowed)
        self.sock = open_socket(kind, address, bind, hwm, key, max_frame,
                                prepare=gate if bind else None, curve=curve)
        self.monitor = None if bind else PeerMonitor(self.sock)
        self._seen = (0, 0, 0)

    def poll(self) -> tuple[int, int, int]:
        """(disconnects, peers refused past max_peers, peers refused for their CURVE key)
        since the last call."""
        if self.entry is not None:
            now = (self.entry.disconnects, self.entry.refused, self.entry.refused_keys)
        else:
            self.monitor.poll()
            if self.monitor.stranded():
                self.monitor.reconnect(self.address)
            now = (self.monitor.disconnects, 0, 0)
        delta = tuple(a - b for a, b in zip(now, self._seen))
        self._seen = now
        return delta

    def close(self) -> None:
        if self.entry is not None:
            PeerGate.shared().release(self.sock, self.entry)
        else:
            self.monitor.close()
        self.sock.close(0)


def open_sender(kind: int, address: str, bind: bool, hwm: int,
                curve: Curve | None = None):
    """A sending socket, and its PeerGate entry when it is a CURVE server that admits only
    some clients (its ``refused_keys`` count the others), else None."""
    entry = None
    allowed = curve.allowed if curve is not None and curve.is_server else None

    def gate(sock):
        nonlocal entry
        entry = PeerGate.shared().admit(sock, 1 << 30, allowed)
    sock = open_socket(kind, address, bind, hwm, prepare=gate if allowed else None,
                       curve=curve)
    return sock, entry


class Receiver:
    """Polls a socket; ``recv`` returns the data frames of one message ([] after the poll
    timeout). A first part that is a SUB topic (GNU Radio's key) is not data."""

    def __init__(self, sock, topic: bool):
        self.sock = sock
        self.topic = topic
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)

    def recv(self) -> list:
        if not self.poller.poll(POLL_MS):
            return []
        return self._parts()

    def recv_ready(self) -> list:
        """The next message's data frames if one has already arrived, else [] (never waits)."""
        if not self.sock.get(zmq.EVENTS) & zmq.POLLIN:
            return []
        return self._parts()

    def _parts(self) -> list:
        parts = [self.sock.recv(copy=False)]
        while parts[-1].more:
            parts.append(self.sock.recv(copy=False))
        if self.topic and len(parts) > 1:
            del parts[0]
        return parts


class Sender:
    """Sends without ever hanging: retries while the peer is slow, gives up (counted) only
    when the graph is stopping and ``stop_timeout`` has passed (at once when no peer is
    connected), or at once in drop mode.

    Frames go out zero-copy; a tracker per frame tells when ZeroMQ is done with the memory,
    so ``drain()`` at stop waits for delivery instead of freeing buffers still queued."""

    def __init__(self, sock, block, drop: bool, key: str = "", stop_timeout: float = 2.0,
                 gate: "Gated | None" = None):
        self.sock = sock
        self.block = block
        self.drop = drop
        self.key = key.encode()
        self.stop_timeout = stop_timeout
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLOUT)
        # a socket has one monitor: under the PeerGate, the gate's count of its peers
        self.peers = PeerMonitor(sock) if gate is None else GatedPeers(gate)
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
        """Once the graph stops, the peer gets ``stop_timeout`` seconds in all to keep up;
        with no peer connected there is nobody to wait for."""
        if not self.block.stopping:
            return False
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.stop_timeout
        self.peers.poll()
        return self.peers.peers == 0 or time.monotonic() > self._stop_deadline

    def drain(self) -> int:
        """Wait (up to stop_timeout, not at all without a peer) until queued frames are
        sent; returns items not sent."""
        deadline = self._stop_deadline or time.monotonic() + self.stop_timeout
        while self._pending:
            tracker, _ = self._pending[0]
            self.peers.poll()
            if self.peers.peers == 0:
                break
            try:
                tracker.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            except zmq.NotDone:
                if time.monotonic() >= deadline:
                    break
                continue
            self._pending.popleft()
        lost = sum(items for _, items in self._pending)
        self._pending.clear()
        return lost

    def close(self) -> int:
        lost = self.drain()
        self.peers.close()
        self.sock.close(linger=0 if lost else 1000)
        return lost
