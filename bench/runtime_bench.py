"""Runtime throughput and latency against GNU Radio, measured side by side in one run.

    python bench/runtime_bench.py [--seconds 4] [--chunk 65536]

1. in process: signal_source -> multiply_const -> null_sink (complex64), vs the same GNU Radio
   flow graph (analog.sig_source_c -> blocks.multiply_const_cc -> blocks.null_sink);
2. across processes: zmq_sink(push) -> zmq_source(pull) over tcp loopback, vs GNU Radio's
   push_sink -> pull_source;
3. latency of one chunk through signal_source -> multiply_const -> sink, at a paced rate.
Each throughput is counted at the sink over SECONDS after a 1 s warm-up.
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

from common import GR_PYTHON, free_port

HERE = Path(__file__).parent


def measure(sched: Scheduler, sink_name: str, seconds: float) -> float:
    runner = sched.runners[sink_name]
    sched.start()
    time.sleep(1.0)
    n0, t0 = runner.stats.items_in, time.perf_counter()
    time.sleep(seconds)
    n1, t1 = runner.stats.items_in, time.perf_counter()
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

    def work(self):
        if not hasattr(self, "_t_start"):
            self._t_start = time.perf_counter()
        due = self._t_start + self._n / self.rate
        while time.perf_counter() < due:
            time.sleep(max(0.0, min(due - time.perf_counter(), 0.01)))
        out = super().work()
        self.add_tag(0, "t0", time.perf_counter())
        return out


def cvstream_latency(seconds: float, chunk: int, rate: float) -> tuple[float, float]:
    g = Graph()
    g.add("src", PacedStampedSource(rate=rate, chunk=chunk))
    g.add("mul", MultiplyConst(k=0.5))
    g.add("snk", LatencySink())
    g.connect("src", "mul")
    g.connect("mul", "snk")
    sched = Scheduler(g)
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
        return f"{name:<44}{ours:>10.1f}{'n/a':>12}{'n/a':>8}"
    return f"{name:<44}{ours:>10.1f}{ref:>12.1f}{ours / ref:>7.2f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--chunk", type=int, default=65536)
    args = ap.parse_args()
    print(f"cvstream runtime benchmark: {os.cpu_count()} CPUs, chunk {args.chunk} items, "
          f"{args.seconds:g} s windows after 1 s warm-up")
    print(f"{'flow graph (complex64)':<44}{'cvstream':>10}{'GNU Radio':>12}{'ratio':>8}")
    print(f"{'':<44}{'Msps':>10}{'Msps':>12}")
    ours = cvstream_inproc(args.seconds, args.chunk)
    ref = gnuradio("inproc", str(args.seconds))
    print(row("signal_source -> multiply_const -> null_sink", ours, ref))
    ours = cvstream_zmq(args.seconds, args.chunk)
    ref = gnuradio_zmq(args.seconds)
    print(row("zmq push -> pull, tcp loopback, 2 processes", ours, ref))
    for chunk, rate in ((4096, 10e6), (1024, 1e6)):
        p50, p99 = cvstream_latency(args.seconds, chunk, rate)
        print(f"latency, one {chunk}-item chunk through 3 blocks at {rate / 1e6:g} Msps: "
              f"p50 {p50:.0f} us, p99 {p99:.0f} us")


if __name__ == "__main__":
    main()
