"""Runtime throughput and latency against GNU Radio, measured side by side in one run.

    python bench/runtime_bench.py [--seconds 4] [--chunk 65536] [--repeat 3]
    python bench/runtime_bench.py --shapes C --rounds 4 --shapes-only   # C's spread

1. graph shapes from the command line, `cvstream run` on a YAML graph against the same GNU
   Radio flow graph, both file_source (repeating) -> head(N) -> k x multiply_const ->
   null_sink, complex64; start-up removed (the fastest long run minus the fastest short one
   of --repeat each):
   A: k = 1, 65536-item chunks; B: k = 6, 65536-item chunks; C: k = 6, 4096-item chunks;
   and C with fusion off (`--no-fuse`: a task per block on the worker pool), and also
   without the pool (`--workers 0`: a thread per block, as before both existed);
2. in process: signal_source -> multiply_const -> null_sink, against analog.sig_source_c ->
   blocks.multiply_const_cc -> blocks.null_sink, counted at the sink over SECONDS after a
   1 s warm-up;
3. across processes: zmq_sink(push) -> zmq_source(pull) over tcp loopback, vs GNU Radio's
   push_sink -> pull_source;
4. latency of one chunk through a paced source -> 6 x multiply_const -> sink (p50, p99).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cvstream import Graph, In, Sink, register  # noqa: F401
from cvstream.blocks.basic import MultiplyConst
from cvstream.blocks.signal_source import SignalSource
from cvstream.blocks.sinks import NullSink
from cvstream.blocks.zmq_io import ZmqSource
from cvstream.scheduler import Scheduler

from common import GR_PYTHON, free_port, gnuradio_available, scratch_dir

HERE = Path(__file__).parent


SHAPES = (("A: 1 multiply_const, 65536-item chunks", 1, 65536, ()),
          ("B: 6 multiply_const in series, 65536-item chunks", 6, 65536, ()),
          ("C: 6 in series, 4096-item chunks", 6, 4096, ()),
          ("C, --no-fuse: a task per block, 2 workers", 6, 4096, ("--no-fuse",)),
          ("C, --no-fuse --workers 0: a thread per block", 6, 4096,
           ("--no-fuse", "--workers", "0")))


def chain_graph(tmp: Path, data: Path, k: int, chunk: int) -> Path:
    muls = "".join(f"  m{i}: {{type: multiply_const, k: 0.999}}\n" for i in range(k))
    names = ["src", "head"] + [f"m{i}" for i in range(k)] + ["snk"]
    path = tmp / f"chain_{k}_{chunk}.yml"
    path.write_text(
        "variables: {n: 1e6}\n"
        "blocks:\n"
        f"  src: {{type: file_source, path: {data}, repeat: true, chunk: {chunk}}}\n"
        "  head: {type: head, n: \"${n}\"}\n" + muls +
        "  snk: {type: null_sink}\n"
        f"connections: [{', '.join(f'{a} -> {b}' for a, b in zip(names, names[1:]))}]\n")
    return path


def timed(command: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def startup_free_msps(command, short: float, long: float, repeat: int) -> float:
    """Items per second of the long run minus the short one (start-up and teardown cancel):
    the fastest of ``repeat`` long runs minus the fastest of ``repeat`` short ones (the
    best pair's difference would reward a short run slowed by noise)."""
    longs, shorts = [], []
    for _ in range(repeat):
        longs.append(timed(command(long)))
        shorts.append(timed(command(short)))
    return (long - short) / max(min(longs) - min(shorts), 1e-9) / 1e6


def gr_chain_seconds(data: Path, n: float, k: int) -> list[str]:
    return [GR_PYTHON, str(HERE / "gr_flowgraphs.py"), "chain", str(data), f"{n:.0f}", str(k)]


def shapes(repeat: int, which: str = "ABC") -> None:
    tmp = scratch_dir("cvstream-rt-")
    data = tmp / "in.cf32"
    rng = np.random.default_rng(0)
    rng.standard_normal(2 << 20, dtype=np.float32).tofile(data)  # 1 Mi complex64 items
    gr_ok = gnuradio_available()
    for label, k, chunk, flags in SHAPES:
        if label[0] not in which:
            continue
        graph = chain_graph(tmp, data, k, chunk)
        ours = startup_free_msps(
            lambda n: [sys.executable, "-m", "cvstream", "run", str(graph), "--set",
                       f"n={n:.0f}", *flags], 2e7, 2.2e8, repeat)
        ref = None
        if gr_ok and not flags:
            ref = startup_free_msps(lambda n: gr_chain_seconds(data, n, k), 2e7, 2.2e8, repeat)
        print(row(label, ours, ref), flush=True)


def measure(sched: Scheduler, sink_name: str, seconds: float) -> float:
    stats = sched.stats_of(sink_name)
    sched.start()
    time.sleep(1.0)
    n0, t0 = stats.items_in, time.perf_counter()
    time.sleep(seconds)
    n1, t1 = stats.items_in, time.perf_counter()
    sched.stop()
    sched.wait(10)
    return (n1 - n0) / (t1 - t0) / 1e6


def cvstream_inproc(seconds: float, chunk: int) -> float:
    g = Graph()
    g.add("src", SignalSource(rate=20e6, freq=1e6, chunk=chunk))
    g.add("mul", MultiplyConst(k=0.5))
    g.add("snk", NullSink())
    g.connect("src", "mul")
    g.connect("mul", "snk")
    return measure(Scheduler(g), "snk", seconds)


def cvstream_zmq(seconds: float, chunk: int) -> float:
    port = free_port()
    graph = HERE / "_zmq_tx.yml"
    graph.write_text(
        "blocks:\n"
        f"  src: {{type: signal_source, waveform: constant, chunk: {chunk}}}\n"
        f"  tx: {{type: zmq_sink, address: 'tcp://127.0.0.1:{port}', pattern: push}}\n"
        "connections: [src -> tx]\n")
    tx = subprocess.Popen([sys.executable, "-m", "cvstream", "run", str(graph)],
                          stderr=subprocess.DEVNULL)
    try:
        g = Graph()
        g.add("rx", ZmqSource(address=f"tcp://127.0.0.1:{port}", pattern="pull"))
        g.add("snk", NullSink())
        g.connect("rx", "snk")
        return measure(Scheduler(g), "snk", seconds)
    finally:
        tx.terminate()
        tx.wait(10)
        graph.unlink()


class LatencySink(Sink):
    """Records now - the chunk's creation time (a 't0' tag). Ports: in. Example: bench."""

    inp = In("complex64")

    def start(self):
        self.lat = []

    def work(self, x):
        for tag in self.input_tags:
            if tag.key == "t0":
                self.lat.append(time.perf_counter() - tag.value)


class PacedStampedSource(SignalSource):
    """A signal_source paced to ``rate`` that tags each chunk with its emission time.
    Ports: out. Example: bench."""

    blocking = True  # it sleeps: a thread of its own, not a pool worker

    def work(self):
        if not hasattr(self, "_t_start"):
            self._t_start = time.perf_counter()
        due = self._t_start + self._n / self.rate
        while time.perf_counter() < due:
            time.sleep(max(0.0, min(due - time.perf_counter(), 0.01)))
        out = super().work()
        self.add_tag(0, "t0", time.perf_counter())
        return out


def cvstream_latency(seconds: float, chunk: int, rate: float,
                     fuse: bool = True) -> tuple[float, float]:
    """p50, p99 of one chunk's trip; unfused, a thread per block (``workers=0``)."""
    g = Graph()
    g.add("src", PacedStampedSource(rate=rate, chunk=chunk))
    names = ["src"]
    for i in range(6):
        names.append(g.add(f"m{i}", MultiplyConst(k=0.5)).name)
    g.add("snk", LatencySink())
    names.append("snk")
    for a, b in zip(names, names[1:]):
        g.connect(a, b)
    sched = Scheduler(g, fuse=fuse, workers=None if fuse else 0)
    sched.start()
    time.sleep(seconds + 1)
    sched.stop()
    sched.wait(10)
    lat = np.array(g.nodes["snk"].block.lat[10:]) * 1e6
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def gnuradio(*args: str, timeout: float = 60) -> float | None:
    if not os.path.exists(GR_PYTHON):
        return None
    res = subprocess.run([GR_PYTHON, str(HERE / "gr_flowgraphs.py"), *args],
                         capture_output=True, text=True, timeout=timeout)
    if res.returncode:
        print(f"  GNU Radio failed: {res.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])["msps"]


def gnuradio_zmq(seconds: float) -> float | None:
    port = free_port()
    tx = subprocess.Popen([GR_PYTHON, str(HERE / "gr_flowgraphs.py"), "zmq_tx",
                           f"tcp://127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
    try:
        return gnuradio("zmq_rx", f"tcp://127.0.0.1:{port}", str(seconds))
    finally:
        tx.kill()
        tx.wait()


def row(name: str, ours: float, ref: float | None) -> str:
    if ref is None:
        return f"{name:<52}{ours:>10.1f}{'n/a':>12}{'n/a':>8}"
    return f"{name:<52}{ours:>10.1f}{ref:>12.1f}{ours / ref:>7.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=3, help="runs per shape (best is kept)")
    ap.add_argument("--shapes", default="ABC", help="which graph shapes to run")
    ap.add_argument("--rounds", type=int, default=1, help="times to run the shapes")
    ap.add_argument("--shapes-only", action="store_true", help="skip parts 2-4")
    args = ap.parse_args()
    print(f"cvstream runtime benchmark: {os.cpu_count()} CPUs, chunk {args.chunk} items, "
          f"{args.seconds:g} s windows after 1 s warm-up")
    print(f"{'flow graph (complex64)':<52}{'cvstream':>10}{'GNU Radio':>12}{'ratio':>8}")
    print(f"{'':<52}{'Msps':>10}{'Msps':>12}")
    for _ in range(args.rounds):
        shapes(args.repeat, args.shapes)
    if args.shapes_only:
        return
    ours = cvstream_inproc(args.seconds, args.chunk)
    ref = gnuradio("inproc", str(args.seconds))
    print(row("signal_source -> multiply_const -> null_sink", ours, ref))
    ours = cvstream_zmq(args.seconds, args.chunk)
    ref = gnuradio_zmq(args.seconds)
    print(row("zmq push -> pull, tcp loopback, 2 processes", ours, ref))
    for chunk, rate, fuse in ((4096, 10e6, True), (4096, 10e6, False), (1024, 1e6, True)):
        p50, p99 = cvstream_latency(args.seconds, chunk, rate, fuse)
        how = "fused" if fuse else "a thread per block"
        print(f"latency, one {chunk}-item chunk, source -> 6 x multiply_const -> sink at "
              f"{rate / 1e6:g} Msps ({how}): p50 {p50:.0f} us, p99 {p99:.0f} us")


if __name__ == "__main__":
    main()
