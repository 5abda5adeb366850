"""The worker pool: tasks run one step at a time on a few threads; blocks that may wait keep
threads of their own; a producer whose consumer is behind waits without holding a worker."""
import time

import numpy as np
import pytest

from cvstream import Graph, In, Sink
from cvstream.blocks.basic import MultiplyConst, Throttle
from cvstream.blocks.signal_source import SignalSource
from cvstream.blocks.sinks import NullSink
from cvstream.loader import load_graph_text
from cvstream.scheduler import Scheduler

from test_runtime import ArraySource, Collect, ramp


def chain(*pairs, fuse=False, workers=None):
    g = Graph()
    for name, block in pairs:
        g.add(name, block)
    for (a, _), (b, _) in zip(pairs, pairs[1:]):
        g.connect(a, b)
    return g, Scheduler(g, fuse=fuse, workers=workers)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_a_graph_gives_the_same_stream_on_any_number_of_workers(workers):
    data = ramp(30000)
    tags = [(0, "rx_rate", 1e6), (777, "burst", 1)]
    g, sched = chain(("src", ArraySource(data, [100, 4096, 3])), ("a", MultiplyConst(k=2)),
                     ("b", MultiplyConst(k=0.5)), ("snk", Collect()), workers=workers)
    g.nodes["src"].block.tags = tags
    assert len(sched.own_thread) == (4 if workers == 0 else 0)
    assert (sched.pool is None) == (workers == 0)
    sched.run(timeout=60)
    sink = g.nodes["snk"].block
    np.testing.assert_array_equal(sink.data, data)
    assert [(t.offset, t.key) for t in sink.tags] == [(0, "rx_rate"), (777, "burst")]


def test_blocks_that_may_wait_get_threads_of_their_own():
    g, sched = chain(("src", SignalSource(items=100000)), ("pace", Throttle(rate=1e6)),
                     ("gain", MultiplyConst()), ("snk", NullSink()), fuse=True, workers=2)
    assert [t.block.name for t in sched.own_thread] == ["pace"]
    assert sched.groups == [["src"], ["pace"], ["gain", "snk"]]
    assert sched.pool.workers == 2
    sched.run(timeout=30)
    assert sched.snapshot()["blocks"]["snk"]["items_in"] == 100000


def test_a_slow_consumer_holds_a_pooled_producer_back_without_a_worker():
    """One worker, a fast source and a slow sink: the source waits while the buffer is full
    (it would otherwise hold the only worker and the sink would never run)."""
    class Slow(Sink):
        """Slow consumer. Ports: in. Example: test only."""
        inp = In("complex64")

        def work(self, x):
            time.sleep(0.0005)

    g = Graph()
    g.add("src", SignalSource(chunk=100, items=20000))
    g.add("snk", Slow())
    g.connect("src", "snk", buffer=1000)
    sched = Scheduler(g, fuse=False, workers=1)
    sched.run(timeout=30)
    buf = next(iter(sched.buffers.values()))
    assert buf.max_fill <= 1000
    assert sched.snapshot()["blocks"]["snk"]["items_in"] == 20000


def test_workers_option_and_validation():
    text = """
options: {workers: %s}
blocks:
  src: {type: signal_source, items: 1000}
  snk: {type: null_sink}
connections: [src -> snk]
"""
    assert Scheduler(load_graph_text(text % 0)).pool is None
    assert Scheduler(load_graph_text(text % 3)).pool.workers == 1  # never more than tasks
    with pytest.raises(Exception, match="option 'workers' must be int >= 0"):
        load_graph_text(text % -1)


def test_a_task_woken_before_the_pool_starts_runs_on_one_worker_at_a_time():
    """A live source's data can wake a pooled consumer before the pool starts: the task is
    queued once, and two workers never run it at the same time."""
    class Exclusive(Sink):
        """Fails if two threads are inside work at once. Ports: in. Example: test only."""
        inp = In("complex64")

        def start(self):
            self.inside, self.overlaps = 0, 0

        def work(self, x):
            self.inside += 1
            if self.inside > 1:
                self.overlaps += 1
            time.sleep(0.0002)
            self.inside -= 1

    g = Graph()
    g.add("src", SignalSource(chunk=64, items=64 * 300))
    g.add("snk", Exclusive())
    g.connect("src", "snk")
    sched = Scheduler(g, fuse=False, workers=2)
    sink_task = sched.runners["snk"]
    sched.pool.schedule(sink_task)  # woken early, as by a producer on its own thread
    sched.pool.schedule(sink_task)
    sched.run(timeout=30)
    snk = g.nodes["snk"].block
    assert snk.overlaps == 0
    assert sched.snapshot()["blocks"]["snk"]["items_in"] == 64 * 300
