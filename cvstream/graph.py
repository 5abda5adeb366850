"""The flow graph as data: named block instances and connections between their ports.

``Graph.validate()`` checks structure (ports, connections, cycles) and resolves the type of
every stream edge before any data flows. It knows nothing of YAML; the loader attaches the
source line of each node and connection so errors read ``file:line: message``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .block import Block
from .dtypes import PortType
from .errors import CvstreamError, GraphError, GraphErrors
from .ports import BoundPort

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_BUFFER_BYTES = 4 << 20
MESSAGE_BUFFER = 10000
MAX_ERRORS = 20  # mistakes listed at once


@dataclass
class Node:
    name: str
    block: Block
    line: int | None = None
    ports: dict[str, BoundPort] = field(default_factory=dict)
    fuse: bool = True  # may run fused with its neighbours (``fuse: false`` in YAML: never)
    replicas: int = 1  # copies sharing the stream (``replicas: N``; stateless blocks only)
    fragment: str | None = None  # the part of a distributed run it belongs to (``--ray``)


@dataclass
class Connection:
    src: str
    src_port: str
    dst: str
    dst_port: str
    buffer: int | None = None  # capacity in items (messages for message edges)
    line: int | None = None
    type: PortType | None = None  # resolved by validate(); None for message edges

    def __str__(self) -> str:
        return f"{self.src}.{self.src_port} -> {self.dst}.{self.dst_port}"

    @property
    def is_message(self) -> bool:
        return self.type is None

    def capacity(self) -> int:
        if self.buffer is not None:
            return self.buffer
        if self.type is None:
            return MESSAGE_BUFFER
        return max(1, DEFAULT_BUFFER_BYTES // max(1, self.type.item_size))


def replicas_refused(name: str, block: Block, replicas: int) -> str | None:
    """Why block ``name`` cannot run as ``replicas`` copies (None when it can)."""
    problem = block.replica_problem() if replicas > 1 else None
    if problem:
        return f"block '{name}': replicas: {replicas} needs a stateless block ({problem})"
    return None


class Graph:
    """Blocks and connections. Build in code (``add``/``connect``) or load from YAML."""

    def __init__(self, source: str | None = None):
        self.source = source
        self.fuse = True  # blocks may run fused in chains (options: {fuse: false} to debug)
        self.workers: int | None = None  # pool threads (options: {workers: N}; 0: one a task)
        self.nodes: dict[str, Node] = {}
        #: resources each fragment asks of Ray (``fragments:`` in YAML; see ``fragments.py``)
        self.fragments: dict[str, dict] = {}
        self.connections: list[Connection] = []

    def error(self, message: str, line: int | None = None) -> GraphError:
        return GraphError(message, self.source, line)

    def add(self, name: str, block: Block, line: int | None = None,
            fuse: bool = True, replicas: int = 1, fragment: str | None = None) -> Block:
        if not NAME_RE.match(name):
            raise self.error(f"block name '{name}' must be an identifier", line)
        if name in self.nodes:
            raise self.error(f"block '{name}' defined twice", line)
        block.name = name
        refusal = replicas_refused(name, block, replicas)
        if refusal:
            raise self.error(refusal, line)
        node = Node(name, block, line, fuse=fuse and replicas == 1, replicas=replicas,
                    fragment=fragment)
        try:
            node.ports = {p.name: p for p in block.ports()}
        except CvstreamError as exc:
            raise self.error(f"block '{name}': {exc}", line) from None
        self.nodes[name] = node
        return block

    def connect(self, src: str, dst: str, buffer: int | None = None,
                line: int | None = None) -> Connection:
        """Connect ``"block[.port]"`` to ``"block[.port]"``; a port may be left out when the
        block has exactly one port on that side."""
        s_block, s_port = self._endpoint(src, "out", line)
        d_block, d_port = self._endpoint(dst, "in", line)
        conn = Connection(s_block, s_port, d_block, d_port, buffer, line)
        self.connections.append(conn)
        return conn

    def _endpoint(self, text: str, direction: str, line):
        name, _, port = text.strip().partition(".")
        if name not in self.nodes:
            raise self.error(f"connection names unknown block '{name}'", line)
        node = self.nodes[name]
        side = [p for p in node.ports.values() if p.direction == direction]
        word = "output" if direction == "out" else "input"
        if port:
            if port not in node.ports or node.ports[port].direction != direction:
                names = ", ".join(p.name for p in side) or "none"
                raise self.error(f"block '{name}' has no {word} port '{port}' "
                                 f"({word}s: {names})", line)
            return name, port
        stream = [p for p in side if not p.is_message]
        candidates = stream if stream else side
        if len(candidates) != 1:
            names = ", ".join(p.name for p in side) or "none"
            raise self.error(f"block '{name}' has {len(candidates)} {word} ports ({names}); "
                             f"name one as {name}.PORT", line)
        return name, candidates[0].name

    # ---- validation ----------------------------------------------------------------------
    def validate(self, partial: frozenset | set = frozenset()) -> None:
        """Raise GraphErrors listing every problem found; resolve edge types on success.
        ``partial``: blocks that lost a connection to an earlier error (their unconnected
        ports are not reported again)."""
        errors: list[GraphError] = []
        self._check_ports(errors, partial)
        order = self._topological_order(errors)
        unreadable = set()
        for node in self.nodes.values():
            for fieldname, msg in node.block.file_problems():
                errors.append(self.error(f"block '{node.name}': parameter '{fieldname}': {msg}",
                                         node.line))
                unreadable.add(node.name)
        if order:
            self._resolve_types([n for n in order if n not in unreadable], errors)
        if errors:
            raise GraphErrors(errors[:MAX_ERRORS], len(errors))

    def _check_ports(self, errors, partial=frozenset()):
        fed: dict[tuple[str, str], Connection] = {}
        used: set[tuple[str, str]] = set()
        for c in self.connections:
            sp = self.nodes[c.src].ports[c.src_port]
            dp = self.nodes[c.dst].ports[c.dst_port]
            if sp.is_message != dp.is_message:
                kinds = ("message", "stream") if sp.is_message else ("stream", "message")
                errors.append(self.error(f"{c}: cannot connect a {kinds[0]} port to a "
                                         f"{kinds[1]} port", c.line))
            key = (c.dst, c.dst_port)
            if key in fed and not dp.is_message:
                errors.append(self.error(f"{c}: input already fed by {fed[key]}", c.line))
            fed[key] = c
            used.add((c.src, c.src_port))
            used.add(key)
        for node in self.nodes.values():
            for port in node.ports.values():
                if (node.name, port.name) not in used and not port.optional and \
                        node.name not in partial:
                    word = "input" if port.direction == "in" else "output"
                    errors.append(self.error(f"block '{node.name}': {word} port '{port.name}' "
                                             f"is not connected", node.line))

    def _topological_order(self, errors) -> list[str]:
        indeg = {n: 0 for n in self.nodes}
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        for c in self.connections:
            indeg[c.dst] += 1
            succ[c.src].append(c.dst)
        ready = [n for n, d in indeg.items() if d == 0]
        order = []
        while ready:
            n = ready.pop(0)
            order.append(n)
            for m in succ[n]:
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
        if len(order) != len(self.nodes):
            stuck = [n for n in self.nodes if n not in order]
            first = self.nodes[stuck[0]]
            errors.append(self.error(f"the graph has a cycle through {', '.join(stuck)}",
                                     first.line))
            return []
        return order

    def _resolve_types(self, order, errors):
        out_types: dict[tuple[str, str], PortType] = {}
        for name in order:
            node = self.nodes[name]
            in_types: dict[str, PortType] = {}
            for c in self.incoming(name):
                dp = node.ports[c.dst_port]
                if dp.is_message:
                    continue
                upstream = out_types.get((c.src, c.src_port))
                if upstream is None:
                    continue
                c.type = upstream
                problem = _mismatch(dp, upstream)
                if problem:
                    errors.append(self.error(f"{c}: {problem}", c.line))
                in_types[c.dst_port] = upstream
            fed = {c.dst_port for c in self.incoming(name)}
            if any(p.direction == "in" and not p.optional and p.name not in fed
                   for p in node.ports.values()):
                continue  # reported as not connected; its types cannot be known
            try:
                resolved = node.block.output_types(in_types)
            except CvstreamError as exc:
                errors.append(self.error(f"block '{name}': {exc}", node.line))
                continue
            for port, ptype in resolved.items():
                out_types[(name, port)] = ptype

    def run(self, timeout: float | None = None, fuse: bool | None = None,
            workers: int | None = None) -> dict:
        """Validate and run the graph to its end; returns the stats (``--stats-json``'s
        dict). Raises GraphErrors for a bad graph, BlockFailure when a block fails."""
        from .scheduler import Scheduler
        sched = Scheduler(self, fuse=fuse, workers=workers)
        sched.run(timeout)
        return sched.snapshot()

    def incoming(self, name: str) -> list[Connection]:
        return [c for c in self.connections if c.dst == name]

    def outgoing(self, name: str) -> list[Connection]:
        return [c for c in self.connections if c.src == name]


def _mismatch(port: BoundPort, upstream: PortType) -> str | None:
    if port.dtype is not None and port.dtype != upstream.dtype:
        return f"type mismatch: upstream gives {upstream}, '{port.name}' takes {port.describe()}"
    if port.shape is not None and tuple(port.shape) != upstream.shape:
        return (f"item shape mismatch: upstream gives {upstream}, "
                f"'{port.name}' takes {port.describe()}")
    return None
