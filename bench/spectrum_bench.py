"""Spectrum segmentation speed: can the graphs keep up with 20 Msps (HackRF) and 56 Msps
(USRP B210) on this machine?

    python bench/spectrum_bench.py [--scenes 64]

1. sigmf_source -> spectrum_segmenter -> sigmf_sink (annotations), on a synthesized 20 Msps
   recording, end to end through the runtime: Msps.
2. The same with cfar_detector.
3. zmq_source (pull) -> spectrum_segmenter -> zmq_msg_sink, a second process streaming the
   recording as fast as it can: Msps.
4. Per-call latency of the segmenter (p50/p99 of work over max_batch tiles) and the time one
   4096-sample tile needs (model call / tiles).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cvstream.loader import load_graph_text
from cvstream.models.spectrum.synth import SceneConfig, scene, write_sigmf
from cvstream.scheduler import Scheduler


def recording(tmp: Path, scenes: int) -> str:
    parts = [scene(np.random.default_rng([11, k]), SceneConfig())[0] for k in range(scenes)]
    return write_sigmf(str(tmp / "bench"), np.concatenate(parts), [], 20e6, 2.45e9)


def run_graph(text: str) -> tuple[float, dict]:
    sched = Scheduler(load_graph_text(text))
    t0 = time.perf_counter()
    sched.run()
    return time.perf_counter() - t0, sched.snapshot()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=64, help="262144-sample scenes recorded")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    meta = recording(tmp, args.scenes)
    n = args.scenes * 262144
    print(f"recording: {n} samples ({n / 20e6:.2f} s at 20 Msps)")
    for det in ("spectrum_segmenter", "cfar_detector"):
        secs, snap = run_graph(f"""
blocks:
  rec: {{type: sigmf_source, path: {meta}, chunk: 262144}}
  det: {{type: {det}}}
  out: {{type: sigmf_sink, path: {tmp / 'out.sigmf-meta'}}}
connections: [rec -> det, rec -> out, det.detections -> out.annotations]
""")
        b = snap["blocks"]["det"]
        print(f"sigmf_source -> {det:<19} -> sigmf_sink: {n / secs / 1e6:6.1f} Msps "
              f"({n / secs / 20e6:.2f}x 20 Msps, {n / secs / 56e6:.2f}x 56 Msps); work p50 "
              f"{b['work_p50_us'] / 1e3:.1f} ms p99 {b['work_p99_us'] / 1e3:.1f} ms, "
              f"{b['messages_out']} detections")
    port = 5700 + int(time.time()) % 200
    tx_graph = tmp / "tx.yml"
    tx_graph.write_text(f"""
blocks:
  rec: {{type: sigmf_source, path: {meta}, chunk: 65536}}
  tx: {{type: zmq_sink, address: "tcp://127.0.0.1:{port}", pattern: push}}
connections: [rec -> tx]
""")
    rx = f"""
blocks:
  sdr: {{type: zmq_source, address: "tcp://127.0.0.1:{port}", pattern: pull, idle_timeout: 1,
        rate: 20e6}}
  seg: {{type: spectrum_segmenter}}
  out: {{type: zmq_msg_sink, address: "tcp://127.0.0.1:{port + 1}", pattern: pub}}
connections: [sdr -> seg, seg.detections -> out]
"""
    sched = Scheduler(load_graph_text(rx))
    sched.start()
    sender = subprocess.Popen([sys.executable, "-m", "cvstream", "run", str(tx_graph)])
    sched.wait()
    sender.wait()
    snap = sched.snapshot()["blocks"]
    secs = snap["seg"]["seconds"] - 1.0  # minus the idle timeout that ended the stream
    print(f"zmq_source -> spectrum_segmenter -> zmq_msg_sink: "
          f"{snap['seg']['items_in'] / secs / 1e6:6.1f} Msps (2 processes)")
    from cvstream.blocks.segmenter import SpectrumSegmenter
    seg = SpectrumSegmenter()
    seg.start()
    x = np.fromfile(str(meta).replace("-meta", "-data"), np.complex64)[:seg.decim * 16]
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        seg.work(x)
        times.append(time.perf_counter() - t0)
    p50, p99 = np.percentile(times, [50, 99]) * 1e3
    print(f"segmenter call, 16 tiles (65536 samples): p50 {p50:.2f} ms p99 {p99:.2f} ms; "
          f"latency of a tile at 20 Msps: {seg.decim / 20e6 * 1e3:.3f} ms to fill + "
          f"{p50 / 16:.2f} ms to process")


if __name__ == "__main__":
    main()
