"""Who is connected to a ZeroMQ socket: a peer count and the disconnects from ZeroMQ's
socket monitor (``PeerMonitor``), and the ZAP handler that admits at most so many peers
and, under CURVE, only the clients a server allows (``PeerGate``, whose count of a socket's
peers ``GatedPeers`` reads). ``zmq_sockets`` builds its receivers and senders on them."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import parse_monitor_message


class PeerMonitor:
    """Counts the socket's connected peers and the disconnects, from ZeroMQ's monitor, and
    tells when a connecting socket was left without a connection that ZeroMQ will retry
    (after a protocol error, such as a frame over ZMQ_MAXMSGSIZE, it does not)."""

    EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
              | zmq.EVENT_CONNECT_RETRIED)
    SETTLE = 0.2  # seconds for ZeroMQ's retry to show after a disconnect

    def __init__(self, sock):
        self.sock = sock
        self.monitor = sock.get_monitor_socket(self.EVENTS)
        self.peers = 0
        self.disconnects = 0
        self._unretried_since: float | None = None

    def poll(self) -> int:
        """Read the events that arrived; returns the disconnects among them."""
        before = self.disconnects
        while self.monitor.get(zmq.EVENTS) & zmq.POLLIN:
            event = parse_monitor_message(self.monitor.recv_multipart())["event"]
            if event == zmq.EVENT_DISCONNECTED:
                self.peers = max(0, self.peers - 1)
                self.disconnects += 1
                self._unretried_since = time.monotonic()
            elif event == zmq.EVENT_CONNECT_RETRIED:
                self._unretried_since = None
            else:
                self.peers += 1
                self._unretried_since = None
        return self.disconnects - before

    def stranded(self) -> bool:
        """A connection dropped a while ago and ZeroMQ is not retrying it."""
        since = self._unretried_since
        return since is not None and time.monotonic() - since > self.SETTLE

    def reconnect(self, address: str) -> None:
        """Connect again where ZeroMQ will not (see ``stranded``)."""
        try:
            self.sock.disconnect(address)
        except zmq.ZMQError:
            pass
        self.sock.connect(address)
        self._unretried_since = None

    def close(self) -> None:
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(0)


class GatedPeers:
    """The peer count of a socket under the PeerGate, read like a PeerMonitor's."""

    def __init__(self, entry: "Gated"):
        self.entry = entry

    @property
    def peers(self) -> int:
        return self.entry.connected

    def poll(self) -> int:
        return 0

    def close(self) -> None:
        pass


@dataclass
class Gated:
    """One bound receiving socket under the PeerGate: its limit and what happened."""

    domain: str
    max_peers: int
    monitor: object
    connected: int = 0
    disconnects: int = 0
    refused: int = 0
    allowed: set | None = None   # CURVE: the client keys admitted (None: any)
    refused_keys: int = 0


class PeerGate:
    """Admits at most ``max_peers`` connections to each bound receiving socket, so a socket
    holds at most ``max_peers x hwm x max_frame`` bytes however many peers connect.

    ZeroMQ asks a ZAP handler (here: one thread per process, on ZeroMQ's fixed in-process
    endpoint) before it accepts a connection to a socket with a ZAP domain; the gate counts
    each socket's connections from its monitor and refuses those past the limit (a refused
    peer retries later and may get in when another leaves)."""

    _shared: "PeerGate | None" = None
    _lock = threading.Lock()

    def __init__(self):
        self.rep = zmq.Context.instance().socket(zmq.REP)
        self.rep.setsockopt(zmq.LINGER, 0)
        self.rep.bind("inproc://zeromq.zap.01")
        self.gated: dict[str, Gated] = {}
        self.closing: list[Gated] = []
        self.guard = threading.Lock()
        threading.Thread(target=self._serve, name="cvstream:peer-gate", daemon=True).start()

    @classmethod
    def shared(cls) -> "PeerGate":
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def admit(self, sock, max_peers: int, allowed: set | None = None) -> Gated:
        """Put ``sock`` (not yet bound) under the gate; with CURVE, ``allowed`` client keys
        only."""
        domain = f"cvstream-{id(sock)}"
        sock.setsockopt(zmq.ZAP_DOMAIN, domain.encode())
        entry = Gated(domain, max_peers, sock.get_monitor_socket(
            zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED), allowed=allowed)
        with self.guard:
            self.gated[domain] = entry
        return entry

    def release(self, sock, entry: Gated) -> None:
        """Before ``sock`` closes: its monitor is closed by the gate's own thread."""
        try:
            sock.disable_monitor()
        except zmq.ZMQError:
            pass
        with self.guard:
            self.gated.pop(entry.domain, None)
            self.closing.append(entry)

    def _serve(self) -> None:
        while True:
            ready = self.rep.poll(100)
            with self.guard:
                for entry in self.closing:
                    entry.monitor.close(0)
                self.closing.clear()
                for entry in self.gated.values():
                    self._count(entry)
                if ready:
                    self._answer(self.rep.recv_multipart())

    @staticmethod
    def _count(entry: Gated) -> None:
        while entry.monitor.get(zmq.EVENTS) & zmq.POLLIN:
            event = parse_monitor_message(entry.monitor.recv_multipart())["event"]
            if event == zmq.EVENT_ACCEPTED:
                entry.connected += 1
            else:
                entry.connected = max(0, entry.connected - 1)
                entry.disconnects += 1

    def _answer(self, msg: list[bytes]) -> None:
        version, request_id, domain, _, _, mechanism, key = (msg + [b""] * 7)[:7]
        entry = self.gated.get(domain.decode(errors="replace"))
        why = ""
        if entry is not None and entry.allowed is not None and (
                mechanism != b"CURVE" or key not in entry.allowed):
            entry.refused_keys += 1
            why = "unknown key"
        elif entry is not None and entry.connected > entry.max_peers:  # the new one counted
            entry.refused += 1
            why = "too many peers"
        self.rep.send_multipart([b"1.0", request_id, b"400" if why else b"200",
                                 why.encode() or b"OK", b"", b""])
