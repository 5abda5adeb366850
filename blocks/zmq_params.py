"""What every zmq block shares: its CURVE and end-of-stream parameters (``CurveParams``,
``EndParams``) and the steps around its socket: the endpoint check, the endpoint peers
reach, the end-of-stream frame, and a sender's close that delivers what is queued and
counts what it could not."""
from __future__ import annotations

import zmq

from cvstream import Param
from cvstream.errors import ParamError

from .zmq_peers import PeerGate
from .zmq_sockets import Curve, endpoint_problem


STOP_QUIET = 2.0  # s: a stopping graph's eos receiver waits this long for more data


class CurveParams:
    """ZeroMQ CURVE parameters, shared by the zmq blocks: encryption, and on a server the
    clients it admits (``refused_keys`` counts the others)."""

    curve_key = Param(str, default="", doc="this end's secret certificate (NAME.key_secret "
                      "from 'cvstream keys new NAME'): CURVE on")
    curve_server = Param(str, default="", doc="the server's public certificate (NAME.key): "
                         "this end is the CURVE client")
    curve_clients = Param(str, default="", doc="CURVE server: a directory of the public "
                          "certificates of the clients admitted (empty: any client)")

    def _check_curve(self) -> None:
        self._curve = Curve.of(self)


class EndParams:
    """End of stream over ZeroMQ, between cvstream peers (GNU Radio sends no such thing): a
    sender sends one empty frame after its last item when its stream ends (not when the graph
    aborts); a receiver ends its stream there, and a graph asked to stop keeps receiving
    until it comes (or nothing came for STOP_QUIET s), so what was sent drains through
    (the links between the fragments of a distributed run work so)."""

    eos = Param(bool, default=False, doc="send / end at an end-of-stream frame (an empty "
                "frame; cvstream peers only)")

    @property
    def ends_by_peer(self) -> bool:
        return self.eos

    def _quiet_for(self, seconds: float) -> bool:
        """A receiver's stream ends after ``idle_timeout`` without data, or, once the graph
        is stopping, after STOP_QUIET without data when the end frame has not come."""
        if self.idle_timeout and seconds > self.idle_timeout:
            return True
        return self.eos and self.stopping and seconds > STOP_QUIET


def bound_endpoint(sock, block) -> str:
    """The endpoint peers reach: with bind to port ``*``, the port ZeroMQ chose."""
    if block.bind:
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return block.address


def send_end(block) -> None:
    """The end-of-stream frame, after everything queued, unless the graph aborted."""
    runtime = block._runtime
    if block.eos and getattr(block, "_tx", None) is not None and not (
            runtime is not None and runtime.abort.is_set()):
        block._tx.send([b""], 0)


def count_refused_keys(block) -> None:
    entry = getattr(block, "_gate", None)
    if entry is not None and entry.refused_keys:
        block.counters["refused_keys"] = entry.refused_keys


def close_sender(block, counter: str) -> None:
    """Close a sink's socket after delivering what is queued; count what could not be."""
    tx = getattr(block, "_tx", None)
    lost = tx.drain() if tx is not None else 0  # the gate counts the peers meanwhile
    count_refused_keys(block)
    if getattr(block, "_gate", None) is not None:
        PeerGate.shared().release(block._sock, block._gate)
        block._gate = None
    if tx is not None:
        lost += tx.close()
        if lost:
            block.count(counter, lost)
    elif getattr(block, "_sock", None) is not None:
        block._sock.close(0)


def check_endpoint(block) -> None:
    problem = endpoint_problem(block.address, block.bind)
    if problem:
        raise ParamError("address", problem)
