"""The scheduler on real graphs: offsets, tags, rate changes, fixed chunks, EOS, errors."""
import threading
import time

import numpy as np
import pytest

from cvstream import Graph, In, MsgIn, MsgOut, Out, RateBlock, Sink, Source, SyncBlock
from cvstream.errors import BlockFailure, EndOfStream
from cvstream.pool import DORMANT
from cvstream.scheduler import Scheduler
from cvstream.blocks.basic import Head, KeepOneInN, MultiplyConst, Repeat
from cvstream.blocks.signal_source import SignalSource


class ArraySource(Source):
    """Emit a given array in chunks of given sizes, with tags. Example: test only. Ports: out."""

    out = Out("complex64")

    def __init__(self, data, sizes, tags=(), **kw):
        super().__init__(**kw)
        self.data, self.sizes, self.tags = data, list(sizes), list(tags)

    def start(self):
        self.pos, self.i = 0, 0

    def work(self):
        if self.pos >= len(self.data):
            raise EndOfStream
        n = self.sizes[self.i % len(self.sizes)]
        self.i += 1
        part = self.data[self.pos:self.pos + n]
        for off, key, value in self.tags:
            if self.pos <= off < self.pos + len(part):
                self.add_tag(off - self.pos, key, value)
        self.pos += len(part)
        return part


class Collect(Sink):
    """Keep everything. Ports: in. Example: test only."""

    inp = In(None, None)

    def start(self):
        self.parts, self.tags, self.offsets = [], [], []

    def work(self, x):
        self.offsets.append(self.offset)
        self.parts.append(np.array(x))
        self.tags.extend(self.input_tags)

    @property
    def data(self):
        return np.concatenate(self.parts) if self.parts else np.zeros(0)


class FixedChunk(RateBlock):
    """Sees exactly 100 new items plus 28 of history, emits 10. Ports: in/out. Example: test."""

    inp = In("complex64")
    out = Out("complex64")
    decim, interp, history, max_chunks = 100, 10, 28, 1

    def start(self):
        self.seen = []

    def work(self, x):
        self.seen.append(x.copy())
        assert len(x) == 128
        return x[28::10].copy()


def build_graph(blocks: dict, *edges: tuple[str, str]) -> Graph:
    """A graph of named blocks and (src, dst) connections, in the order given."""
    g = Graph()
    for name, block in blocks.items():
        g.add(name, block)
    for src, dst in edges:
        g.connect(src, dst)
    return g


def run_chain(*blocks, capacity=None, fuse=True):
    g = Graph()
    names = []
    for i, b in enumerate(blocks):
        names.append(f"b{i}")
        g.add(names[-1], b)
    for a, b in zip(names, names[1:]):
        g.connect(a, b, buffer=capacity)
    sched = Scheduler(g, fuse=fuse)
    sched.run(timeout=60)
    return sched


def ramp(n):
    return (np.arange(n) + 1j * np.arange(n)).astype(np.complex64)


def test_sync_chain_keeps_data_offsets_and_tags():
    data = ramp(10000)
    tags = [(0, "rx_rate", 1e6), (1234, "burst", 7), (9999, "end", True)]
    src = ArraySource(data, [333, 1000, 7], tags)
    sink = Collect()
    run_chain(src, MultiplyConst(k=2), MultiplyConst(k=0.5), sink)
    np.testing.assert_array_equal(sink.data, data)
    assert [(t.offset, t.key, t.value) for t in sink.tags] == tags
    assert sink.offsets[0] == 0 and sink.offsets == sorted(sink.offsets)


def test_tags_rebased_through_rate_changes():
    data = ramp(4000)
    tags = [(0, "a", 1), (1001, "b", 2), (3999, "c", 3)]
    sink = Collect()
    run_chain(ArraySource(data, [777], tags), KeepOneInN(n=4), sink)
    np.testing.assert_array_equal(sink.data, data[::4])
    assert [(t.offset, t.key) for t in sink.tags] == [(0, "a"), (250, "b"), (999, "c")]
    sink2 = Collect()
    run_chain(ArraySource(data, [500], tags), Repeat(n=3), sink2)
    np.testing.assert_array_equal(sink2.data, np.repeat(data, 3))
    assert [t.offset for t in sink2.tags] == [0, 3003, 11997]


def test_fixed_chunk_block_gets_exact_chunks_with_history():
    data = ramp(1050)
    fixed = FixedChunk()
    sink = Collect()
    sched = run_chain(ArraySource(data, [37, 250]), fixed, sink)
    assert len(fixed.seen) == 11  # 10 full chunks + the zero-padded tail
    np.testing.assert_array_equal(fixed.seen[0][:28], 0)
    np.testing.assert_array_equal(fixed.seen[1][:28], data[72:100])
    np.testing.assert_array_equal(fixed.seen[2][28:], data[200:300])
    # 1050 items in -> 105 out; the tail chunk is padded, its output trimmed to 5 items
    assert len(sink.data) == 105
    np.testing.assert_array_equal(sink.data[:100], data[:1000:10])
    assert sched.snapshot()["blocks"]["b1"]["counters"]["tail_padded"] == 50


def test_standalone_process_equals_graph_output():
    data = ramp(1050)
    graph_sink = Collect()
    run_chain(ArraySource(data, [64]), FixedChunk(), graph_sink)
    block = FixedChunk()
    block.start()
    parts = [block.process(data[i:i + 301]) for i in range(0, 1050, 301)]
    parts.append(block.flush())
    standalone = np.concatenate([p for p in parts if p is not None])
    np.testing.assert_array_equal(standalone, graph_sink.data)


def test_head_ends_an_endless_source():
    sink = Collect()
    sched = run_chain(SignalSource(chunk=1000), Head(n=12345), sink)
    assert len(sink.data) == 12345
    assert not sched.running()


def test_bounded_buffers_hold_back_a_fast_source():
    class Slow(Sink):
        """Slow consumer. Ports: in. Example: test."""
        inp = In("complex64")

        def work(self, x):
            import time
            time.sleep(0.001)

    sched = run_chain(SignalSource(chunk=100, items=50000), Slow(), capacity=1000,
                      fuse=False)  # a buffer between them (fused, there is none)
    buf = next(iter(sched.buffers.values()))
    assert buf.max_fill <= 1000
    assert sched.snapshot()["blocks"]["b1"]["items_in"] == 50000


def test_block_exception_stops_graph_naming_block():
    class Boom(SyncBlock):
        """Fails at the third call. Ports: in/out. Example: test."""
        inp = In("complex64")
        out = Out("complex64")

        def start(self):
            self.calls = 0

        def work(self, x):
            self.calls += 1
            if self.calls == 3:
                raise ValueError("bad sample")
            return x

    g = build_graph({"src": SignalSource(chunk=100), "boom": Boom(), "snk": Collect()},
                    ("src", "boom"), ("boom", "snk"))
    sched = Scheduler(g)
    assert sched.groups == [["src", "boom", "snk"]]  # the member is named, not the chain
    with pytest.raises(BlockFailure) as err:
        sched.run(timeout=30)
    msg = str(err.value)
    assert msg.startswith("block 'boom'") and msg.endswith("ValueError: bad sample")
    assert not sched.running()


def test_two_input_sync_block_aligns_inputs():
    class Add(SyncBlock):
        """a + b. Ports: a, b -> out. Example: test."""
        a = In("complex64")
        b = In("complex64")
        out = Out("complex64")

        def work(self, a, b):
            return a + b

    d = ramp(5000)
    g = build_graph({"s1": ArraySource(d, [123]), "s2": ArraySource(d * 2, [1000, 17]),
                     "add": Add(), "snk": Collect()},
                    ("s2", "add.b"),  # listed before 'a' on purpose: work() still gets (a, b)
                    ("s1", "add.a"), ("add", "snk"))
    Scheduler(g).run(timeout=30)
    np.testing.assert_array_equal(g.nodes["snk"].block.data, d * 3)


def test_outputs_follow_declaration_order_not_connection_order():
    class Split(SyncBlock):
        """re/im parts. Ports: in -> re, im. Example: test."""
        inp = In("complex64")
        re = Out("float32")
        im = Out("float32")

        def work(self, x):
            return x.real.copy(), x.imag.copy()

    d = (np.arange(1000) - 2j * np.arange(1000)).astype(np.complex64)
    g = build_graph({"src": ArraySource(d, [100]), "split": Split(), "i": Collect(),
                     "r": Collect()},
                    ("src", "split"), ("split.im", "i"), ("split.re", "r"))
    Scheduler(g).run(timeout=30)
    np.testing.assert_array_equal(g.nodes["r"].block.data, d.real)
    np.testing.assert_array_equal(g.nodes["i"].block.data, d.imag)


def test_wrong_output_dtype_is_reported():
    class Bad(SyncBlock):
        """Returns float64. Ports: in/out. Example: test."""
        inp = In("complex64")
        out = Out("complex64")

        def work(self, x):
            return np.abs(x).astype(np.float64)

    with pytest.raises(BlockFailure, match="returned float64"):
        run_chain(SignalSource(items=100), Bad(), Collect())


def test_stop_drains_and_ends_cleanly():
    import threading
    g = build_graph({"src": SignalSource(chunk=1000), "snk": Collect()}, ("src", "snk"))
    sched = Scheduler(g)
    sched.start()
    threading.Timer(0.3, sched.stop).start()
    assert sched.wait(timeout=10)
    assert sched.failure is None
    sink = g.nodes["snk"].block
    produced = sched.snapshot()["blocks"]["src"]["items_out"]
    assert len(sink.data) == produced > 0  # everything produced reached the sink


def test_param_kinds_drive_the_chunk_block_docs():
    from cvstream.docs import render
    assert "rate block" in render(KeepOneInN)


def test_rate_block_waits_for_a_lagging_input():
    """One input ends early with plenty accumulated; the block must wait for the other."""
    class Slow(ArraySource):
        def work(self):
            import time
            time.sleep(0.01)
            return super().work()

    class Pair(RateBlock):
        """a + b in blocks of 100. Ports: a, b -> out. Example: test."""
        a = In("complex64")
        b = In("complex64")
        out = Out("complex64")
        decim = interp = 100

        def work(self, a, b):
            return a + b

    d = ramp(3000)
    g = build_graph({"fast": ArraySource(d, [3000]), "slow": Slow(d, [50]), "pair": Pair(),
                     "snk": Collect()},
                    ("fast", "pair.a"), ("slow", "pair.b"), ("pair", "snk"))
    Scheduler(g).run(timeout=30)
    np.testing.assert_array_equal(g.nodes["snk"].block.data, 2 * d)


def test_graph_run_and_cvstream_run(tmp_path):
    import cvstream
    g = Graph()
    g.add("src", SignalSource(items=5000))
    g.add("snk", Collect())
    g.connect("src", "snk")
    stats = g.run(timeout=30)
    assert stats["blocks"]["snk"]["items_in"] == 5000
    path = tmp_path / "g.yml"
    path.write_text(f"""
variables: {{n: 10}}
blocks:
  src: {{type: signal_source, items: "${{n}}"}}
  snk: {{type: npy_sink, path: {tmp_path / 'o.npy'}}}
connections: [src -> snk]
""")
    stats = cvstream.run(str(path), n=777, overrides={"src.freq": 5.0})
    assert stats["blocks"]["snk"]["items_in"] == 777
    assert np.load(tmp_path / "o.npy").shape == (777,)



class BurstSource(Source):
    """Once ``may_send()`` is true: sends ``count`` messages in one work call, then waits
    ``linger`` seconds before it returns. Ports: msgs. Example: test only."""

    msgs = MsgOut()

    def __init__(self, count, linger=0.0, may_send=lambda: True, **kw):
        super().__init__(**kw)
        self.count_, self.linger, self.may_send = count, linger, may_send

    def start(self):
        self.sent = False
        self.returned = threading.Event()

    def work(self):
        if self.sent:
            raise EndOfStream
        deadline = time.monotonic() + 10
        while not self.may_send() and time.monotonic() < deadline:
            time.sleep(0.005)
        self.sent = True
        for k in range(self.count_):
            self.emit({"k": k})
        time.sleep(self.linger)
        self.returned.set()
        return None


class WaitingBurstSource(BurstSource):
    """BurstSource on a thread of its own (``blocking``). Ports: msgs. Example: test only."""

    blocking = True


class Inbox(Sink):
    """Keeps each message and whether ``source``'s work call had returned when it came.
    Ports: msgs. Example: test only."""

    msgs = MsgIn()

    def __init__(self, source, **kw):
        super().__init__(**kw)
        self.source = source

    def start(self):
        self.got, self.after = [], []

    def on_message(self, port, msg):
        self.got.append(msg["k"])
        self.after.append(self.source.returned.is_set())


@pytest.mark.parametrize("source, room", [(BurstSource, None), (WaitingBurstSource, 3)])
def test_a_burst_of_messages_wakes_its_consumer_once_the_call_returns(source, room):
    """Messages sent in one work call wake their (pooled) consumer once the call returns,
    all of them in order; a producer on a thread of its own with room for 3 of 20 wakes the
    consumer to drain the buffer rather than wait for room forever. The burst comes once
    the consumer has had its first round and sleeps."""
    sched = None

    def consumer_asleep():
        return sched is not None and \
            sched.pool.state[id(sched.runners["inbox"])] == DORMANT
    src = source(20, linger=0.2, may_send=consumer_asleep)
    inbox = Inbox(src)
    g = Graph()
    g.add("src", src)
    g.add("inbox", inbox)
    g.connect("src", "inbox", buffer=room)
    sched = Scheduler(g, workers=2)
    assert [t.block.name for t in sched.own_thread] == (["src"] if room else [])
    sched.run(timeout=30)
    assert inbox.got == list(range(20))
    if room is None:   # all queued before the call returned: none seen before it did
        assert all(inbox.after)
    else:              # the consumer drained the full buffer while the call went on
        assert not inbox.after[0]
