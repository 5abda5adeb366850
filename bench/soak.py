"""Soak: a paced ZeroMQ stream through the spectrum segmenter for a long time, watching
memory, drops and latency minute by minute.

A sender process (file_source repeating a synthetic recording -> throttle -> zmq_sink PUSH
with the tag header) feeds graphs/spectrum_zmq.yml, run in this process (PULL instead of
SUB, so no start-up frames are missed); a SUB socket here timestamps the detections. Each
minute prints the receiver's resident memory and its worker process's, the samples
received, dropped at a full buffer and lost on the wire, the detections and their latency
(arrival time minus the time the detection's last sample was due from the paced sender;
the stream's start is estimated as the earliest moment the received count allows, so the
figure is a lower bound), and the segmenter's work time. At the end: the memory drift
(both together) from minute 2 on, as a least-squares slope.

    python bench/soak.py                 # 10 minutes at 10 Msps, bursts of many kinds
    python bench/soak.py --minutes 3 --rate 20e6 --signal carrier
``--signal carrier`` sends a tone that never ends over noise (a beacon, a carrier): one
detection track that lasts as long as the stream.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import zmq

from cvstream.loader import load_graph
from cvstream.scheduler import Scheduler

from common import free_port, rss_mb, scratch_dir
from spectrum_bench import recording

HERE = Path(__file__).parent


def workers_rss_mb(sender: int) -> float:
    """The resident memory of this process's children but the sender: the segmenter's
    worker process (0 with none)."""
    pids = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            pids.update((task / "children").read_text().split())
        except OSError:
            pass
    pids.discard(str(sender))
    return sum(rss_mb(pid) for pid in pids)


def carrier_recording(tmp: Path) -> str:
    """A continuous tone at +1/8 of the band, 10 dB above the noise in its bin, whole cycles
    so the repeated file has no seam."""
    n = 1 << 20
    rng = np.random.default_rng(5)
    tone = 0.05 * np.exp(2j * np.pi * (n // 8) * np.arange(n) / n)
    noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * 0.01
    path = tmp / "carrier.cf32"
    (tone + noise).astype(np.complex64).tofile(path)
    return str(path)


def sender_command(data: str, port: int, rate: float, tmp: Path) -> list[str]:
    graph = tmp / "soak_tx.yml"
    graph.write_text(f"""
blocks:
  rec: {{type: file_source, path: {data}, repeat: true, chunk: 8192}}
  pace: {{type: throttle, rate: {rate}}}
  tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{port}", pattern: push, pass_tags: true}}
connections: [rec -> pace, pace -> tx]
""")
    return [sys.executable, "-m", "cvstream", "run", str(graph)]


class DetectionClock:
    """Subscribes to the detections; records (arrival, end sample) of each until ``take``
    hands them over (so the bench's own memory stays flat)."""

    def __init__(self, port: int):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.seen: list[tuple[float, int]] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            if self.sock.poll(200):
                msg = json.loads(self.sock.recv())
                self.seen.append((time.monotonic(),
                                  int(msg["sample_start"]) + int(msg["sample_count"])))

    def take(self) -> list[tuple[float, int]]:
        seen, self.seen = self.seen, []
        return seen

    def close(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10e6, help="samples per second")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per report")
    parser.add_argument("--signal", choices=("scenes", "carrier"), default="scenes",
                        help="synthetic scenes of bursts, or one endless carrier")
    args = parser.parse_args()
    tmp = scratch_dir("cvstream-soak-")   # removed when it exits
    if args.signal == "carrier":
        data = carrier_recording(tmp)
    else:
        data = recording(tmp, 8).replace(".sigmf-meta", ".sigmf-data")
    iq, det = free_port(), free_port()
    graph = load_graph(str(HERE.parent / "graphs" / "spectrum_zmq.yml"), {
        "iq": f"tcp://127.0.0.1:{iq}", "detections": f"tcp://127.0.0.1:{det}",
        "sdr.pattern": "pull", "seg.rate": args.rate})
    sched = Scheduler(graph)
    clock = DetectionClock(det)
    sched.start()
    sender = subprocess.Popen(sender_command(data, iq, args.rate, tmp))
    print(f"soak: {args.minutes:g} min at {args.rate / 1e6:g} Msps of {args.signal}, "
          f"graphs/spectrum_zmq.yml (PULL), sender pid {sender.pid}", flush=True)
    print(f"{'min':>5} {'RSS MB':>8} {'worker MB':>9} {'Msamples':>9} {'dropped':>9} {'lost':>7} "
          f"{'dets':>6} {'lat p50 ms':>10} {'lat p99 ms':>10} {'work p99 ms':>11}", flush=True)
    t_start = time.monotonic()
    first_data = None
    history = []
    try:
        end = t_start + 60 * args.minutes
        next_report = t_start + args.interval
        while time.monotonic() < end and sched.running():
            time.sleep(0.2)
            snap = sched.snapshot()["blocks"]
            if snap["sdr"]["items_out"]:  # the paced stream's start: never after this
                due0 = time.monotonic() - snap["sdr"]["items_out"] / args.rate
                first_data = due0 if first_data is None else min(first_data, due0)
            if time.monotonic() < next_report:
                continue
            next_report += args.interval
            dets = clock.take()
            lat = [1e3 * (t - (first_data + s / args.rate)) for t, s in dets] or [float("nan")]
            counters = snap["sdr"]["counters"]
            worker = workers_rss_mb(sender.pid)
            row = (round((time.monotonic() - t_start) / 60, 2), rss_mb() + worker)
            history.append(row)
            print(f"{row[0]:>5.1f} {row[1] - worker:>8.1f} {worker:>9.1f} "
                  f"{snap['sdr']['items_out'] / 1e6:>9.1f} "
                  f"{counters.get('dropped_items', 0):>9} {counters.get('lost_items', 0):>7} "
                  f"{len(dets):>6} {np.percentile(lat, 50):>10.1f} "
                  f"{np.percentile(lat, 99):>10.1f} {snap['seg']['work_p99_us'] / 1e3:>11.2f}",
                  flush=True)
    finally:
        sender.terminate()
        sender.wait(10)
        sched.stop()
        sched.wait(10)
        clock.close()
    late = [(m, r) for m, r in history if m >= 2]
    if len(late) >= 2:
        slope = np.polyfit(*zip(*late), 1)[0]
        print(f"memory drift (with the worker process's) from minute 2 on: {slope:+.2f} MB/min "
              f"({late[0][1]:.1f} -> {late[-1][1]:.1f} MB)")


if __name__ == "__main__":
    main()
