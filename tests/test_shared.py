"""The runtime's shared sample memory (cvstream/shared.py): arrays in blocks that a worker
process can map, each block back in the pool when the last array viewing it goes; the
file sources read their chunks into it."""
import numpy as np

from cvstream import shared
from cvstream.blocks.file_io import RawReader


ROWS = shared.MIN_BYTES // 8 // 1000 + 1   # (that many rows of 1001 complex64: over it)


def test_a_block_comes_back_to_the_pool_when_the_last_view_of_it_goes():
    """An array in a block, its views located in it (a strided one in none), and the block
    handed out again only once the last of them is gone."""
    a = shared.empty((ROWS, 1001), np.complex64)   # (a size no other test takes)
    block, offset = shared.locate(a)
    assert offset == 0 and block.size == a.nbytes
    assert a.shape == (ROWS, 1001) and a.dtype == np.complex64 and a.flags.writeable
    a[...] = 1 + 2j
    view = a[1]
    assert shared.locate(view) == (block, 1001 * 8)
    assert shared.locate(a[:, ::2]) is None   # not contiguous: not one span of it
    assert shared.locate(np.ones(1001, np.complex64)) is None   # numpy's own
    del a
    other = shared.empty((ROWS, 1001), np.complex64)
    assert shared.locate(other)[0] is not block   # the view still holds it
    assert np.all(view == 1 + 2j)
    del view
    again = shared.empty(ROWS * 1001, np.complex64)
    assert shared.locate(again)[0] is block   # back in the pool, handed out again


def test_small_arrays_and_those_past_its_limits_are_numpy_arrays(monkeypatch):
    small = shared.empty(shared.MIN_BYTES // 4 - 1, np.float32)
    assert shared.locate(small) is None and small.dtype == np.float32
    size = shared.MIN_BYTES // 4 + 3   # (a size no other test takes)
    monkeypatch.setattr(shared, "LIMIT", shared._pool.total + 100)
    a = shared.empty(size, np.float32)
    assert shared.locate(a) is None and a.shape == (size,) and a.dtype == np.float32
    monkeypatch.setattr(shared, "LIMIT", 1 << 40)
    monkeypatch.setattr(shared, "MAX_BLOCKS", len(shared._pool.blocks))
    assert shared.locate(shared.empty(size, np.float32)) is None
    monkeypatch.setattr(shared, "MAX_BLOCKS", len(shared._pool.blocks) + 1)
    assert shared.locate(shared.empty(size, np.float32)) is not None


def test_file_sources_read_float_samples_into_shared_blocks(tmp_path):
    """cf32 chunks land in shared blocks (a worker process reads them there); a format
    that is decoded comes out as numpy's arrays."""
    chunk = shared.MIN_BYTES // 8
    x = (np.arange(chunk + 5000) * (1 + 1j)).astype(np.complex64)
    x.tofile(tmp_path / "x.cf32")
    reader = RawReader(str(tmp_path / "x.cf32"), "cf32", chunk)
    first, rest = reader.read(), reader.read()
    assert shared.locate(first) is not None   # (the rest is small: numpy's)
    assert np.array_equal(np.concatenate([first, rest]), x)
    (x.view(np.float32) * 100).astype(np.int16).tofile(tmp_path / "x.ci16")
    decoded = RawReader(str(tmp_path / "x.ci16"), "ci16", chunk).read()
    assert shared.locate(decoded) is None and len(decoded) == chunk
