"""Cut a graph into fragments for a distributed run, and build one fragment's own graph.

Every block belongs to the fragment its ``fragment:`` names (``main`` when it names none).
A connection between two fragments becomes a ``Link``: a ZeroMQ PUSH/PULL pair with the tag
header (``pass_tags``: offsets and tags survive) and an end-of-stream frame (``eos``), or a
pair of message sockets for a message connection. Fragments start in ``order``; of a link's
two ends, the one in the fragment that starts first binds (to port ``*`` on its host: the
port is chosen there) and the other connects to what it reports, so links may run both ways
between two fragments. With ``curve`` the bound end is a CURVE server that admits only the
other fragment's key.

This module is plain data and graph surgery; ``ray_run.py`` deploys the result.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .graph import Connection, Graph

DEFAULT_FRAGMENT = "main"
LINK_HWM = 16  # frames in flight per link end (a frame is one chunk)


@dataclass
class Link:
    """One connection between two fragments."""

    id: str
    src: str  # block.port upstream
    dst: str  # block.port downstream
    src_fragment: str
    dst_fragment: str
    message: bool
    dtype: str = ""
    shape: tuple = ()
    rate: float = 0.0
    binder: str = ""  # the fragment whose end binds

    def sender(self) -> str:
        return f"{self.id}_tx"

    def receiver(self) -> str:
        return f"{self.id}_rx"


@dataclass
class Plan:
    fragments: dict[str, list[str]]  # fragment -> its blocks, in graph order
    order: list[str]  # start order
    links: list[Link]
    resources: dict[str, dict] = field(default_factory=dict)  # fragment -> Ray resources
    replicas: dict[str, int] = field(default_factory=dict)  # replicated block -> copies
    restartable: dict[str, bool] = field(default_factory=dict)  # see ``restartable``

    def links_of(self, fragment: str) -> list[Link]:
        return [k for k in self.links if fragment in (k.src_fragment, k.dst_fragment)]


def fragment_of(graph: Graph, name: str) -> str:
    return graph.nodes[name].fragment or DEFAULT_FRAGMENT


def plan(graph: Graph) -> Plan:
    """Fragments, their start order and the links between them (``graph`` validated)."""
    fragments: dict[str, list[str]] = {}
    for name in graph.nodes:
        fragments.setdefault(fragment_of(graph, name), []).append(name)
    # start downstream fragments first where the fragment graph allows it (their receiving
    # ends bind, so no frame waits for a connection); a cycle between fragments is fine
    upstream: dict[str, set[str]] = {f: set() for f in fragments}
    for conn in graph.connections:
        a, b = fragment_of(graph, conn.src), fragment_of(graph, conn.dst)
        if a != b:
            upstream[b].add(a)
    order = _sinks_first(upstream)
    rank = {f: i for i, f in enumerate(order)}
    links = []
    for conn in graph.connections:
        a, b = fragment_of(graph, conn.src), fragment_of(graph, conn.dst)
        if a == b:
            continue
        link = Link(f"link{len(links)}", f"{conn.src}.{conn.src_port}",
                    f"{conn.dst}.{conn.dst_port}", a, b, conn.is_message)
        if not conn.is_message:
            t = conn.type
            link.dtype, link.shape, link.rate = str(t.dtype), tuple(t.shape), t.rate or 0.0
        link.binder = a if rank[a] < rank[b] else b
        links.append(link)
    unknown = set(graph.fragments) - set(fragments)
    if unknown:
        raise graph.error(f"fragments: no block is in fragment(s) {', '.join(sorted(unknown))}")
    return Plan(fragments, order, links, {f: dict(graph.fragments.get(f, {}))
                                          for f in fragments},
                {n: node.replicas for n, node in graph.nodes.items() if node.replicas > 1},
                {f: restartable(graph, names) for f, names in fragments.items()})


def restartable(graph: Graph, names: list[str]) -> bool:
    """Whether a fragment can start again mid-stream and give what it would have: only
    stateless sync and rate blocks (no source, no sink, nothing kept from chunk to chunk).
    What was in flight when it died is lost, and counted downstream as a gap."""
    from .block import Block
    for name in names:
        block = graph.nodes[name].block
        if block.kind not in ("sync", "rate") or block.replica_problem() is not None or \
                type(block).absorb is not Block.absorb:
            return False
    return True


def _sinks_first(upstream: dict[str, set[str]]) -> list[str]:
    """Fragments ordered so that a fragment comes before those feeding it, where there is
    no cycle; ties keep graph order."""
    downstream: dict[str, set[str]] = {f: set() for f in upstream}
    for f, ups in upstream.items():
        for u in ups:
            downstream[u].add(f)
    order, placed = [], set()
    while len(order) < len(upstream):
        ready = [f for f in upstream if f not in placed and downstream[f] <= placed]
        pick = ready[0] if ready else next(f for f in upstream if f not in placed)
        order.append(pick)
        placed.add(pick)
    return order


@dataclass
class LinkEnd:
    """How one fragment's end of a link is set up at deploy time."""

    address: str  # bind: tcp://HOST:* ; connect: the bound end's endpoint
    bind: bool
    curve_key: str = ""  # this fragment's secret certificate
    curve_peer: str = ""  # connect: the server's public certificate; bind: a folder of the
    #                       client's public certificate


def fragment_graph(graph: Graph, p: Plan, fragment: str, ends: dict[str, LinkEnd]) -> Graph:
    """The part of ``graph`` that runs in ``fragment``: its blocks (the same instances),
    its inner connections, and a ZeroMQ block for each end of its links."""
    from .registry import lookup
    sub = Graph(graph.source)
    sub.fuse, sub.workers = graph.fuse and not p.restartable.get(fragment), graph.workers
    mine = set(p.fragments[fragment])
    for name in p.fragments[fragment]:
        node = graph.nodes[name]
        sub.nodes[name] = node
    for conn in graph.connections:
        if conn.src in mine and conn.dst in mine:
            sub.connections.append(Connection(conn.src, conn.src_port, conn.dst, conn.dst_port,
                                              conn.buffer, conn.line))
    for link in p.links_of(fragment):
        end = ends[link.id]
        curve = {}
        if end.curve_key:
            curve = {"curve_key": end.curve_key,
                     ("curve_clients" if end.bind else "curve_server"): end.curve_peer}
        common = dict(address=end.address, bind=end.bind, eos=True, **curve)
        if link.src_fragment == fragment:
            kind = "zmq_msg_sink" if link.message else "zmq_sink"
            extra = {} if link.message else {"pass_tags": True, "hwm": LINK_HWM}
            block = lookup(kind)(name=link.sender(), pattern="push", **common, **extra)
            sub.add(link.sender(), block, fuse=False)
            sub.connect(link.src, f"{link.sender()}.inp")
        else:
            if link.message:
                block = lookup("zmq_msg_source")(name=link.receiver(), pattern="pull",
                                                 max_peers=1, **common)
            else:
                block = lookup("zmq_source")(
                    name=link.receiver(), pattern="pull", dtype=link.dtype,
                    shape=list(link.shape) or 1, rate=link.rate, pass_tags=True,
                    hwm=LINK_HWM, max_peers=1, max_frame=1 << 30, **common)
            sub.add(link.receiver(), block, fuse=False)
            sub.connect(f"{link.receiver()}.out", link.dst)
    sub.validate()
    return sub


def bind_address(host: str) -> str:
    return f"tcp://{host}:*"


def write_public_certificate(folder: str, name: str, public_key: str) -> str:
    """A public certificate file in ZeroMQ's format (what ``zmq.auth`` reads) for a key
    received from a peer."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.key")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("#   ZeroMQ CURVE Public Certificate (cvstream link peer)\n\n"
                 f"metadata\ncurve\n    public-key = \"{public_key}\"\n")
    return path
