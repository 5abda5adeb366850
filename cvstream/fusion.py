"""Operator chaining: which blocks of a graph run fused in one task.

A chain starts at a source or a sync block and follows one-to-one stream connections
through sync blocks, optionally ending in a sink: each link is the only connection of the
upstream block's only stream output and the only input of the downstream block. Blocks
with message ports, rate-changing and general blocks, and blocks marked ``fuse: false``
end a chain (they keep a task of their own), so fan-out, fan-in, rate changes and messages
work as before: a chain has one input side (its head's) and one output side (its tail's).
"""
from __future__ import annotations

from .graph import Graph


def _fusible_member(graph: Graph, name: str) -> bool:
    """Can ``name`` run inside a chain, after its upstream block?"""
    node = graph.nodes[name]
    block = node.block
    if not node.fuse or block.kind not in ("sync", "sink"):
        return False
    ports = list(node.ports.values())
    if any(p.is_message for p in ports):
        return False
    ins = [p for p in ports if p.direction == "in"]
    outs = [p for p in ports if p.direction == "out"]
    return len(ins) == 1 and len(outs) == (0 if block.kind == "sink" else 1)


def _fusible_head(graph: Graph, name: str) -> bool:
    node = graph.nodes[name]
    if not node.fuse or node.block.kind not in ("source", "sync"):
        return False
    return not any(p.is_message for p in node.ports.values())


def plan_chains(graph: Graph, enabled: bool = True) -> list[list[str]]:
    """Every block in exactly one group, in graph order; groups of two or more run fused."""
    nxt: dict[str, str] = {}
    if enabled:
        for name, node in graph.nodes.items():
            outs = [p for p in node.ports.values() if p.direction == "out"]
            conns = graph.outgoing(name)
            if len(outs) != 1 or len(conns) != 1 or node.block.kind == "sink":
                continue
            dst = conns[0].dst
            if len(graph.incoming(dst)) != 1 or not _fusible_member(graph, dst):
                continue
            if _fusible_head(graph, name):
                nxt[name] = dst
    inner = set(nxt.values())
    groups = []
    for name in graph.nodes:
        if name in inner:
            continue
        group = [name]
        while group[-1] in nxt:
            group.append(nxt[group[-1]])
        groups.append(group)
    return groups
