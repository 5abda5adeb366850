"""Memory of a ZeroMQ receiver flooded by a peer: resident memory growth against the bound.

    python bench/zmq_flood.py

A `cvstream run` receiver (zmq_source PULL -> throttle at 1e5 items/s -> null_sink) gets 30
frames of max_frame bytes (every tenth 4x larger) as fast as the peer can send them. Printed
per setting: the growth of the receiver's RSS over 8 s and the documented bound (hwm x
max_frame queued in ZeroMQ, the 4 MiB runtime buffer, one chunk in flight). The second
setting is the old defaults' scale (hwm 64, max_frame 64 MiB): there the flood is what
bounds memory.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from common import free_port, rss_mb

FRAME = 8 << 20


def flood(max_frame: int, hwm: int) -> tuple[float, float, int, int]:
    """(RSS growth MB, bound MiB, frames sent, the receiver's exit status)."""
    port = free_port()
    graph = Path(tempfile.mkdtemp()) / "rx.yml"
    graph.write_text(f"""
blocks:
  rx: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull,
       max_frame: {max_frame}, hwm: {hwm}}}
  slow: {{type: throttle, rate: 1e5}}
  snk: {{type: null_sink}}
connections: [rx -> slow, slow -> snk]
""")
    proc = subprocess.Popen([sys.executable, "-m", "cvstream", "run", str(graph)],
                            stderr=subprocess.DEVNULL)
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 1000)
    sock.bind(f"tcp://127.0.0.1:{port}")
    # the base once the receiver has started (its imports take seconds on a slow machine):
    # its source connected, so the PUSH socket can send
    if not sock.poll(30_000, zmq.POLLOUT):
        proc.kill()
        raise RuntimeError("the receiver did not connect within 30 s")
    time.sleep(0.5)
    base = peak = rss_mb(proc.pid)
    payload = np.zeros(FRAME // 8, np.complex64).tobytes()
    oversize = np.zeros(FRAME // 2, np.complex64).tobytes()
    sent, deadline = 0, time.monotonic() + 8
    while time.monotonic() < deadline:
        if sent < 30:
            try:
                sock.send(oversize if sent % 10 == 9 else payload, zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                pass
        peak = max(peak, rss_mb(proc.pid))
        time.sleep(0.02)
    proc.terminate()
    status = proc.wait(30)
    sock.close(0)
    bound = (hwm * max_frame + (4 << 20) + 2 * max_frame) / (1 << 20)
    return peak - base, bound, sent, status


def main() -> None:
    print(f"30 frames of {FRAME >> 20} MiB (every tenth 4x larger) into a slow receiver")
    for max_frame, hwm in ((FRAME, 4), (64 << 20, 64)):
        grew, bound, _, _ = flood(max_frame, hwm)
        print(f"max_frame {max_frame >> 20} MiB, hwm {hwm}: RSS grew {grew:.0f} MB "
              f"(bound {bound:.0f} MiB + kernel socket buffers)", flush=True)


if __name__ == "__main__":
    main()
