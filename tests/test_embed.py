"""cvstream.embed.Driver (what cvstream.gnuradio runs blocks with) feeds a block exactly as
the scheduler does: same items, same tags at the same offsets, whatever the chunking."""
import numpy as np
import pytest

from cvstream import GeneralBlock, In, Out, Tag
from cvstream.blocks import STFT, KeepOneInN, MultiplyConst, Repeat
from cvstream.embed import Driver
from test_runtime import ArraySource, Collect, FixedChunk, ramp, run_chain


class Framer(GeneralBlock):
    """Mean of every 10 items, kept across calls. Ports: in/out. Example: test only."""
    inp = In("complex64")
    out = Out("complex64")

    def start(self):
        self._rest = np.zeros(0, np.complex64)

    def work(self, x):
        x = np.concatenate([self._rest, x])
        n = len(x) // 10 * 10
        self._rest = x[n:]
        if n:
            self.add_tag(0, "frame", True)
        return x[:n].reshape(-1, 10).mean(axis=1).astype(np.complex64)


def drive(block, data, sizes, tags):
    block.start()
    driver = Driver(block, [(np.dtype(np.complex64), ())], 1)
    outs, got, pos, i = [], [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        i += 1
        mine = [Tag(o, k, v) for o, k, v in tags if pos <= o < pos + n]
        part, t = driver.push([data[pos:pos + n]], mine)
        outs += list(part[:1])
        got += t
        pos += n
    part, t = driver.flush()
    outs += list(part[:1])
    got += t
    block.stop()
    return np.concatenate(outs), got


@pytest.mark.parametrize("make", [lambda: MultiplyConst(k=2), lambda: KeepOneInN(n=4),
                                  lambda: Repeat(n=3), lambda: STFT(size=64, hop=16),
                                  FixedChunk, Framer], ids=lambda f: getattr(f, "__name__", ""))
def test_driver_matches_the_scheduler(make):
    data = ramp(4000)
    tags = [(0, "a", 1), (1001, "b", 2), (3999, "c", 3)]
    sink = Collect()
    run_chain(ArraySource(data, [777], tags), make(), sink)
    # a general block places tags per call (clamped into the call's output): same calls
    sizes = [777] if make is Framer else [123, 1000, 1, 64]
    out, got = drive(make(), data, sizes, tags)
    np.testing.assert_array_equal(out, sink.data)
    assert [(t.offset, t.key) for t in got] == [(t.offset, t.key) for t in sink.tags]
