"""Fused chains: which blocks fuse, and that a fused graph gives exactly what the same graph
gives with a thread per block (data, offsets, tags, end of stream, stats, failures)."""
import numpy as np
import pytest

from cvstream import Graph, In, MsgOut, Out, SyncBlock
from cvstream.blocks.basic import Head, KeepOneInN, MultiplyConst
from cvstream.blocks.signal_source import SignalSource
from cvstream.blocks.sinks import NullSink
from cvstream.fusion import plan_chains
from cvstream.loader import load_graph_text
from cvstream.scheduler import Scheduler

from test_runtime import ArraySource, Collect, ramp


class Marker(SyncBlock):
    """Tags every 1000th item it passes. Ports: in/out. Example: test only."""

    inp = In("complex64")
    out = Out("complex64")

    def work(self, x):
        for i in range(len(x)):
            if (self.offset + i) % 1000 == 0:
                self.add_tag(i, "mark", self.offset + i)
        return x * 1


class Talker(SyncBlock):
    """A sync block with a message output. Ports: in/out, msgs. Example: test only."""

    inp = In("complex64")
    out = Out("complex64")
    msgs = MsgOut()

    def work(self, x):
        return x


def graph_of(*pairs):
    g = Graph()
    for name, block in pairs:
        g.add(name, block)
    return g


def test_chains_follow_one_to_one_links_only():
    g = graph_of(("src", SignalSource(items=10)), ("a", MultiplyConst()),
                 ("b", MultiplyConst()), ("c", MultiplyConst()), ("d", NullSink()),
                 ("dec", KeepOneInN(n=2)), ("f", NullSink()),
                 ("t", Talker()), ("g", NullSink()))
    g.connect("src", "a")
    g.connect("a", "b")
    g.connect("b", "c")   # b fans out: c and dec start chains of their own
    g.connect("b", "dec")
    g.connect("c", "d")
    g.connect("dec", "f")  # a rate block is never fused
    g.connect("t", "g")    # message ports keep a block to itself
    g.add("s2", SignalSource(items=10))
    g.connect("s2", "t")
    assert plan_chains(g) == [["src", "a", "b"], ["c", "d"], ["dec"], ["f"], ["t"], ["g"],
                              ["s2"]]
    assert plan_chains(g, enabled=False) == [[n] for n in g.nodes]


def test_fuse_false_on_a_block_and_in_options():
    text = """
options: {fuse: %s}
blocks:
  src: {type: signal_source, items: 100}
  a: {type: multiply_const, fuse: %s}
  b: {type: multiply_const}
  snk: {type: null_sink}
connections: [src -> a, a -> b, b -> snk]
"""
    assert plan_chains(load_graph_text(text % ("true", "true"))) == [["src", "a", "b", "snk"]]
    assert plan_chains(load_graph_text(text % ("true", "false"))) == [["src"], ["a"],
                                                                       ["b", "snk"]]
    g = load_graph_text(text % ("false", "true"))
    assert Scheduler(g).groups == [["src"], ["a"], ["b"], ["snk"]]


@pytest.mark.parametrize("fuse", [True, False])
def test_fused_and_unfused_give_the_same_stream(fuse):
    data = ramp(20000)
    tags = [(0, "rx_rate", 1e6), (1234, "burst", 7), (15000, "late", "x")]
    g = graph_of(("src", ArraySource(data, [333, 1000, 7], tags)), ("m", Marker()),
                 ("gain", MultiplyConst(k=2)), ("head", Head(n=17000)), ("snk", Collect()))
    for a, b in (("src", "m"), ("m", "gain"), ("gain", "head"), ("head", "snk")):
        g.connect(a, b)
    sched = Scheduler(g, fuse=fuse)
    sched.run(timeout=60)
    assert len(sched.tasks) == (1 if fuse else 5)
    sink = g.nodes["snk"].block
    np.testing.assert_array_equal(sink.data, 2 * data[:17000])
    got = [(t.offset, t.key, t.value) for t in sink.tags]
    marks = [(k, "mark", k) for k in range(0, 17000, 1000)]
    assert sorted(got, key=lambda t: (t[0], t[1])) == sorted(
        [(0, "rx_rate", 1e6), (1234, "burst", 7), (15000, "late", "x")] + marks,
        key=lambda t: (t[0], t[1]))
    assert sink.offsets == sorted(sink.offsets)
    snap = sched.snapshot()["blocks"]
    assert snap["gain"]["items_in"] == snap["gain"]["items_out"]
    assert snap["snk"]["items_in"] == 17000
    assert snap["m"]["work_calls"] >= snap["gain"]["work_calls"] > 10  # head may end gain early
    assert snap["m"]["fused_with"] == (["src", "gain", "head", "snk"] if fuse else [])


def test_in_place_work_inside_a_chain_never_touches_shared_memory():
    """Multiply-consts in a chain write over the array the previous one made (it is theirs
    alone), never over the source's own memory nor over a caller's array in process()."""
    data = ramp(5000)
    kept = data.copy()
    src = ArraySource(data, [1000])  # hands out views of its own array
    seen = []

    class Spy(Collect):
        def work(self, x):
            seen.append(x)
            super().work(x)

    g = graph_of(("src", src), ("a", MultiplyConst(k=2)), ("b", MultiplyConst(k=3)),
                 ("c", MultiplyConst(k=0.5)))
    g.add("snk", Spy(), fuse=False)  # sees what leaves the chain through a buffer
    for x, y in (("src", "a"), ("a", "b"), ("b", "c"), ("c", "snk")):
        g.connect(x, y)
    sched = Scheduler(g)
    assert sched.groups == [["src", "a", "b", "c"], ["snk"]]
    sched.run(timeout=30)
    np.testing.assert_array_equal(data, kept)  # the source's memory is untouched
    np.testing.assert_array_equal(g.nodes["snk"].block.data, 3 * kept)
    assert not any(x.flags.writeable for x in seen)  # what leaves a chain is read-only
    caller = ramp(10)
    assert np.array_equal(MultiplyConst(k=2).process(caller), 2 * ramp(10))
    np.testing.assert_array_equal(caller, ramp(10))
