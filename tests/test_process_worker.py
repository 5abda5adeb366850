"""spectrum_segmenter's FFTs and model in a process of their own (``worker: process``):
the same numbers and detections as on its worker thread, and a worker that fails or dies
is a one-line error, not a hang."""
import contextlib
import gc
import mmap
import re

import numpy as np
import pytest

from cvstream import shared
from cvstream.blocks.fft_rows import backend
from cvstream.blocks.process_worker import ProcessWorker
from cvstream.blocks.process_worker import Arena, pack, unpack
from cvstream.blocks.segmenter import TILES, VIEWS, SpectrumSegmenter
from cvstream.errors import CvstreamError
from cvstream.models.spectrum.synth import SceneConfig, scene

#: seconds a worker process may take to start (imports, the model) on a busy CI machine
START = 60


def scenes(count: int) -> np.ndarray:
    """``count`` scenes of the synthesizer (262144 samples, 32 tiles each)."""
    return np.concatenate([scene(np.random.default_rng([5, k]), SceneConfig())[0]
                           for k in range(count)]).astype(np.complex64)


def assert_same(got, want) -> None:
    """Two ``compute`` results (tuples of arrays, None) hold the same numbers (of the
    tracks' PSDs, ``(which, rows...)``, the rows of the tiles ``which`` picks: the others
    are not set)."""
    if isinstance(want, tuple) and len(want) and getattr(want[0], "dtype", None) == bool:
        assert np.array_equal(got[0], want[0])
        got, want = (got[0], *(a[want[0]] for a in got[1:])), \
            (want[0], *(a[want[0]] for a in want[1:]))
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for a, b in zip(got, want):
            assert_same(a, b)
    elif want is None:
        assert got is None
    else:
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)


@pytest.fixture
def block():
    seg = SpectrumSegmenter(rate=20e6)
    seg.start()
    yield seg
    seg.stop()


@contextlib.contextmanager
def started(block, x, result_bytes=None):
    """A ProcessWorker for ``block``'s batches as long as ``x``, up and running; closed
    after."""
    worker = ProcessWorker(block, len(x), result_bytes or block._result_bytes(len(x)),
                           slots=2, overrides={"family": ""}, views=VIEWS)
    try:
        assert worker.ready(START)
        yield worker
    finally:
        worker.close()


def test_compute_in_a_process_equals_compute_here(block):
    x = scenes(2)
    with started(block, x) as worker:
        calls = [worker.submit(x, psds) for psds in (True, False)]
        for call, psds in zip(calls, (True, False)):
            got = call.result()
            assert_same(got, block.compute(x, psds))
            assert got[6] is None if not psds else not got[6][1].flags.owndata
            # what the detections only read lies where it is (till the slot is rewritten)
            assert not got[TILES].flags.owndata and got[1].flags.owndata
        # computed into an arena of a slot: the same numbers, the large ones in place
        memory = memoryview(mmap.mmap(-1, block._result_bytes(len(x))))   # as a slot
        arena = Arena(memory)
        got = block.compute(x, True, arena.empty)
        assert_same(got, block.compute(x, True))
        inside = np.frombuffer(memory, np.uint8)
        assert all(np.shares_memory(a, inside) for a in (got[0], got[4], got[TILES],
                                                         *got[6][1:]))
        assert x.nbytes < arena.used <= len(memory)   # the tiles alone are as big as x
        # the slots go round: a third call reuses the first's
        assert_same(worker.submit(x[: len(x) // 2], True).result(),
                    block.compute(x[: len(x) // 2], True))


def test_samples_in_a_shared_block_are_read_there_not_copied(block):
    """Samples a source read into the runtime's shared memory (``cvstream.shared``) go to
    the worker process as their block and offset: the call's samples are the caller's
    array itself, not a copy in its slot, and the results the same as computed here; the
    block's file goes to the process once. A plain array still goes through the slot."""
    x = scenes(2)
    held = shared.empty(len(x) + 64, np.complex64)
    held[64:] = x
    view = held[64:]   # (an offset into its block)
    with started(block, x) as worker:
        parts = (view, view[: len(x) // 2])
        calls = [worker.submit(part, psds) for part, psds in zip(parts, (True, False))]
        assert calls[0].samples is view and calls[1].samples is parts[1]
        for call, part, psds in zip(calls, parts, (True, False)):
            assert_same(call.result(), block.compute(part.copy(), psds))
        assert worker._blocks == {shared.locate(view)[0].number}   # mapped once
        plain = x.copy()
        call = worker.submit(plain, True)
        assert not np.shares_memory(call.samples, plain)
        assert_same(call.result(), block.compute(plain, True))


def test_a_result_stays_readable_after_its_worker_closes(block):
    """The arrays a result views in its slot outlive the worker's close: the slot's memory
    goes when the last of them does, not under them (numpy's arrays hold the map itself,
    so closing it would leave them pointing at nothing)."""
    x = scenes(1)
    with started(block, x) as worker:
        got = worker.submit(x, True).result()
    gc.collect()
    assert_same(got, block.compute(x, True))


def test_unpack_copies_all_but_the_views_and_what_they_hold():
    """A result's arrays come back copied out of the slot, but for the items ``views``
    (top-level), arrays inside such an item that is a tuple included; an array that is
    another earlier in the result comes back as that one (a copy or a view, as there)."""
    memory = memoryview(bytearray(1 << 16))
    a, b, c, d = np.arange(5.0), np.ones((2, 3), np.float32), np.arange(4), np.arange(3)
    got = unpack(pack((a, (b, c, a), c, d, None, 7), memory), memory, views=(1,))
    def lists(v):
        return [lists(e) for e in v] if isinstance(v, tuple) else np.asarray(v).tolist()
    assert lists(got) == [a.tolist(), [b.tolist(), c.tolist(), a.tolist()], c.tolist(),
                          d.tolist(), None, 7]
    assert got[0].flags.owndata and got[3].flags.owndata   # copies
    assert not got[1][0].flags.owndata and not got[1][1].flags.owndata   # views
    assert got[1][2] is got[0] and got[2] is got[1][1]   # each as it came first


def test_pack_leaves_what_an_arena_of_its_slot_holds_where_it_is():
    """Arrays from an ``Arena`` of the slot (and contiguous views of them) are named where
    they lie, not written again; the rest is written after the arena's part, a strided
    view of an arena's array included; a full arena hands out plain arrays."""
    memory = memoryview(bytearray(1 << 12))
    arena = Arena(memory)
    a = arena.empty((4, 8), np.float32)
    a[...] = np.arange(32).reshape(4, 8)
    b = arena.empty(3, np.int64)
    b[...] = 7
    other = np.arange(5.0)
    layout = pack((a, a.reshape(-1), a[:, ::2], other, b), memory, arena.used)
    offsets = [entry[1] for entry in layout[1]]
    assert offsets[0] == offsets[1] == 0 and offsets[4] == 128   # where the arena put them
    assert all(at >= arena.used for at in offsets[2:4])          # written after it
    got = unpack(layout, memory, views=(0, 1, 2, 3, 4))
    assert [np.asarray(g).tolist() for g in got] == \
        [a.tolist(), a.reshape(-1).tolist(), a[:, ::2].tolist(), other.tolist(), [7] * 3]
    a[0, 0] = -1.0   # the same memory: pack copied nothing of it
    assert got[0][0, 0] == -1.0 and got[1][0] == -1.0 and got[2][0, 0] == 0.0
    big = arena.empty(1 << 12, np.uint8)
    assert big.flags.owndata and arena.used == 152


def test_a_result_too_big_for_its_slot_is_computed_here(block):
    x = scenes(1)
    with started(block, x, result_bytes=4096) as worker:
        assert_same(worker.submit(x, True).result(), block.compute(x, True))


def test_a_worker_process_runs_one_blas_thread_unless_told_otherwise(block, monkeypatch):
    """OpenBLAS's pool of a thread a core costs CPU at each start, for 3 x 3 matrices."""
    def blas_threads(worker) -> str | None:
        env = open(f"/proc/{worker._proc.pid}/environ", "rb").read().split(b"\0")
        return next((v.split(b"=", 1)[1].decode() for v in env
                     if v.startswith(b"OPENBLAS_NUM_THREADS=")), None)
    x = scenes(1)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with started(block, x) as worker:
        assert blas_threads(worker) == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")   # the user's own setting stands
    with started(block, x) as worker:
        assert blas_threads(worker) == "2"


@pytest.mark.skipif(backend() != "fftw", reason="without pyFFTW its FFTs are scipy's")
def test_a_worker_process_computes_without_importing_scipy(block):
    """scipy takes a third of a second to import, which a worker's start would cost a
    graph that has begun to stream: with pyFFTW, none of scipy's libraries is loaded in
    the process that computed a batch."""
    x = scenes(1)
    with started(block, x) as worker:
        assert_same(worker.submit(x, True).result(), block.compute(x, True))
        maps = open(f"/proc/{worker._proc.pid}/maps").read()
    assert "/onnxruntime/" in maps and "/pyfftw/" in maps   # (what it did load)
    assert "/scipy/" not in maps
    assert "/scipy/" in open("/proc/self/maps").read()   # (seen where they are)


def test_a_worker_process_that_dies_is_a_one_line_error(block):
    x = scenes(1)
    with started(block, x) as worker:
        worker._proc.kill()   # as the kernel's OOM killer would
        with pytest.raises(CvstreamError, match=r"^its worker process ended \(exit code -9\)$"):
            worker.submit(x, True).result()


def test_a_worker_process_that_fails_names_the_error_in_one_line(block):
    x = scenes(1)
    with started(block, x) as worker:
        # a batch of the wrong length: a tile cut short, which compute cannot reshape
        with pytest.raises(CvstreamError) as err:
            worker.submit(x[:1000], True).result()
        assert str(err.value).startswith("its worker process failed: ValueError")
        assert "\n" not in str(err.value)
        assert re.search(r"\(\S+/blocks/fft_rows\.py:\d+\)$", str(err.value))   # where it failed
        # and it goes on with the next batch
        assert_same(worker.submit(x, True).result(), block.compute(x, True))
    assert worker._proc.poll() == 0   # closed: the process ended of itself


def test_the_segmenter_in_a_process_finds_what_it_finds_on_a_thread():
    x = scenes(12)
    found = {}
    for kind in ("thread", "process"):
        seg = SpectrumSegmenter(rate=20e6, worker=kind, max_batch=16)
        try:
            seg.process(x[:65536])   # starts it: this batch on the thread
            assert seg._pool.ready(START)
            for k in range(65536, len(x), 131072):   # as a graph's chunks come
                seg.process(x[k:k + 131072])
            seg.flush()
            found[kind] = seg.take_messages()
            counted = seg.counters.get("process_batches", 0)
        finally:
            seg.stop()
        assert counted == (0 if kind == "thread" else -(-(len(x) - 65536) // 131072))
    assert len(found["thread"]) >= 10
    assert found["process"] == found["thread"]


def test_a_replica_that_only_computes_starts_no_worker_process():
    """Replicas call ``compute`` on copies of the block: no batch is submitted, so no
    process is started for them (it starts with the first batch submitted)."""
    seg = SpectrumSegmenter(rate=20e6, worker="process")
    seg.start()
    try:
        seg.compute(scenes(1))
        assert seg._pool._process is None
        seg.work(scenes(1))   # a batch submitted: now it starts
        assert seg._pool._process is not None
    finally:
        seg.stop()


def test_a_worker_process_where_there_is_no_memfd_is_a_parameter_error(monkeypatch):
    """Without Linux's memfd (macOS, Windows) ``worker: process`` is refused up front, with
    the parameter named."""
    import os

    from cvstream.errors import ParamError
    monkeypatch.delattr(os, "memfd_create")
    with pytest.raises(ParamError, match="needs Linux") as err:
        SpectrumSegmenter(worker="process")
    assert err.value.field == "worker"
    SpectrumSegmenter(worker="thread")   # the thread needs nothing


@pytest.mark.parametrize("stop", ["ctrl_c", "service_stop"])
def test_a_stop_signal_reaches_the_graph_not_its_worker_process(graph_file, tmp_path, stop):
    """A terminal's Ctrl-C goes to its whole foreground process group (``ctrl_c``: SIGINT
    to the graph's group; the graph runs in a session of its own here, as a job would in a
    terminal); a service manager's stop sends SIGTERM to every process of the service
    (``service_stop``: to the graph and to its worker). The worker is in a session of its
    own and ignores both: the graph drains through it and closes it, with no traceback
    from it and no 'worker process ended' error, and it does not outlive the graph."""
    import json
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    from conftest import cvstream_cmd
    out, stats = tmp_path / "d.jsonl", tmp_path / "s.json"
    path = graph_file(f"""
    blocks:
      sky: {{type: spectrum_synth_source, rate: 4e6, scenes: 1000, seed: 3}}
      pace: {{type: throttle, rate: 4e6}}
      det: {{type: spectrum_segmenter, worker: process, max_batch: 8}}
      out: {{type: message_sink, path: {out}}}
    connections: [sky -> pace, pace -> det, det.detections -> out]
    """)
    proc = subprocess.Popen(cvstream_cmd("run", str(path), "--stats-json", str(stats)),
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    workers = []
    try:
        deadline = time.monotonic() + START
        while not workers and time.monotonic() < deadline:
            time.sleep(0.05)
            # the children of any of its threads (the block's thread starts the worker)
            for task in Path(f"/proc/{proc.pid}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    workers += [int(pid) for pid in task.read_text().split() if
                                "process_worker" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert workers, "the segmenter started no worker process"
        time.sleep(1.5)   # on its way: importing, or serving batches
        if stop == "ctrl_c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            for pid in (proc.pid, *workers):
                os.kill(pid, signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert "draining" in err and "Traceback" not in err and "worker process" not in err, err
    counters = json.loads(stats.read_text())["blocks"]["det"]["counters"]
    lines = out.read_text().splitlines()
    assert counters.get("process_batches", 0) + len(lines) > 0
    assert all(json.loads(line)["label"] for line in lines)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{workers[0]}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{workers[0]}").exists(), "the worker outlived the graph"


def test_a_worker_whose_graph_dies_mid_batch_ends_quietly():
    """The graph's process killed while its worker computes a batch (an OOM kill, a
    crash): the worker finds no one to answer, stops and exits, without a traceback on
    the terminal they shared (stderr is inherited). Reading the child's stderr to its end
    waits for the worker too, which holds it open until it exits."""
    import subprocess
    import sys
    code = ("import os, numpy as np\n"
            "from cvstream.blocks.segmenter import SpectrumSegmenter\n"
            "from cvstream.blocks.process_worker import ProcessWorker\n"
            "seg = SpectrumSegmenter(rate=20e6, max_batch=8)\n"
            "worker = ProcessWorker(seg, 16 * 8192, 16 << 20, 2)\n"
            f"assert worker.ready({START})\n"
            "worker.submit(np.ones(16 * 8192, np.complex64), True)\n"
            "os._exit(0)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=2 * START)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
