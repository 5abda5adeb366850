"""Echo canceller speed and latency.

    python bench/aec_bench.py [--seconds 30]

1. Real-time factor of the aec block on one core (processing time / audio duration), beside
   WebRTC AEC3, Speex and nlms_aec on the same audio.
2. Per-hop latency through graphs/aec_zmq.yml in a second process: 10 ms frames of mic and
   reference are pushed in real time over ZeroMQ; for each cleaned hop that comes back, the
   time since the input hop it completes was sent (p50 / p99). The algorithmic latency
   (20 ms window + 10 ms hop) comes on top.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zmq

from cvstream.models.aec.evaluate import cancellers
from cvstream.models.aec.synth import scene

from common import free_port

GRAPH = Path(__file__).parent.parent / "graphs" / "aec_zmq.yml"
HOP = 160


def rtf(seconds: float) -> None:
    sig, _ = scene(np.random.default_rng(9), seconds, "dt")
    print(f"real-time factor on {seconds:g} s of double talk (one core):")
    for name, cancel in cancellers().items():
        t0 = time.perf_counter()
        cancel(sig["mic"], sig["ref"])
        print(f"  {name:<32} {(time.perf_counter() - t0) / seconds:.4f}")


def latency(seconds: float) -> None:
    ports = [free_port() for _ in range(3)]
    proc = subprocess.Popen([sys.executable, "-m", "cvstream", "run", str(GRAPH),
                             "--set", f"mic=tcp://127.0.0.1:{ports[0]}",
                             "--set", f"ref=tcp://127.0.0.1:{ports[1]}",
                             "--set", f"out=tcp://127.0.0.1:{ports[2]}",
                             "--set", "mic.idle_timeout=2", "--set", "ref.idle_timeout=2"],
                            stderr=subprocess.DEVNULL)
    ctx = zmq.Context.instance()
    mic, ref = ctx.socket(zmq.PUSH), ctx.socket(zmq.PUSH)
    mic.bind(f"tcp://127.0.0.1:{ports[0]}")
    ref.bind(f"tcp://127.0.0.1:{ports[1]}")
    out = ctx.socket(zmq.PULL)
    out.connect(f"tcp://127.0.0.1:{ports[2]}")
    sig, _ = scene(np.random.default_rng(10), seconds, "dt")
    hops = len(sig["mic"]) // HOP
    sent = np.zeros(hops)
    received, lat = 0, []
    time.sleep(1.0)
    t_start = time.perf_counter()
    for k in range(hops):
        due = t_start + k * HOP / 16000
        while time.perf_counter() < due:
            if out.poll(0):
                received = _drain(out, received, sent, lat)
            time.sleep(0.0005)
        mic.send(sig["mic"][k * HOP:(k + 1) * HOP].tobytes())
        ref.send(sig["ref"][k * HOP:(k + 1) * HOP].tobytes())
        sent[k] = time.perf_counter()
    deadline = time.perf_counter() + 3
    while time.perf_counter() < deadline:
        if out.poll(100):
            received = _drain(out, received, sent, lat)
    proc.wait(30)
    for s in (mic, ref, out):
        s.close(0)
    lat_ms = np.array(lat) * 1e3
    print(f"per-hop latency over ZeroMQ ({len(lat)} hops): p50 {np.percentile(lat_ms, 50):.2f} "
          f"ms, p99 {np.percentile(lat_ms, 99):.2f} ms (+ 30 ms algorithmic)")


def _drain(sock, received: int, sent: np.ndarray, lat: list) -> int:
    now = time.perf_counter()
    while sock.poll(0):
        received += len(sock.recv()) // 4
        hop = received // HOP  # output hops complete; hop h needed input hop h
        if 0 < hop <= len(sent) and sent[hop - 1]:
            lat.append(now - sent[hop - 1])
    return received


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    rtf(args.seconds)
    latency(min(args.seconds, 10.0))


if __name__ == "__main__":
    main()
