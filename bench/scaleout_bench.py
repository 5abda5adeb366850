"""Scale-out figures: the spectrum segmenter with 1, 2 and 3 replicas on Ray, and what one
cross-fragment hop (a ZeroMQ link between two Ray actors) costs per chunk.

    python bench/scaleout_bench.py [--items 160000000] [--repeat 2]

Everything runs on a local Ray bound to 127.0.0.1. Each figure is the difference between
a long and a short run of the same graph (fastest of ``--repeat``), so deploying the actors
(seconds) cancels out and what remains is the streaming rate. The one-process run of the
same graph is the anchor.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from common import scratch_dir

RECORD = """
blocks:
  sky: {type: spectrum_synth_source, rate: 20e6, scenes: 8, seed: 3}
  rec: {type: file_sink, path: "%(path)s"}
connections: [sky -> rec]
"""

SEGMENT = """
fragments: {io: {}, det: {}}
blocks:
  src: {type: file_source, path: "%(path)s", repeat: true, chunk: 262144, rate: 20e6,
        fragment: io}
  head: {type: head, n: %(items)d, fragment: io}
  seg: {type: spectrum_segmenter, replicas: %(replicas)d, fragment: det}
  log: {type: message_sink, path: /dev/null, fragment: io}
connections: [src -> head, head -> seg, seg.detections -> log]
"""

HOP = """
blocks:
  src: {type: signal_source, rate: 1e6, chunk: %(chunk)d, items: %(items)d, fragment: a}
  snk: {type: null_sink, fragment: %(where)s}
connections: [src -> snk]
"""


def timed(text: str, ray_on: bool) -> float:
    """Seconds to run a graph given as text: on Ray (deploy included) or in one process."""
    from cvstream.loader import load_graph_text
    from cvstream.ray_run import Deployment
    from cvstream.scheduler import Scheduler
    graph = load_graph_text(text, "<bench>")
    graph.validate()
    t0 = time.perf_counter()
    if not ray_on:
        Scheduler(graph).run()
        return time.perf_counter() - t0
    dep = Deployment(graph, text, {}, [], "auto")
    try:
        dep.start()
        while dep.poll()[0]:
            time.sleep(0.02)
        if dep.failure:
            raise SystemExit(f"run failed: {dep.failure}")
    finally:
        dep.close()
    return time.perf_counter() - t0


def extra_time(make, long: int, short: int, ray_on: bool, repeat: int) -> float:
    """Seconds the long run takes beyond the short one."""
    t_long = min(timed(make(long), ray_on) for _ in range(repeat))
    t_short = min(timed(make(short), ray_on) for _ in range(repeat))
    return t_long - t_short


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=160_000_000,
                    help="samples through the segmenter in the long run (1/8 in the short)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--part", choices=("all", "segmenter", "hop"), default="all")
    args = ap.parse_args()
    from cvstream import ray_run
    ray_run._ray("auto")  # one local Ray for every run (each Deployment joins it)
    print(f"cores: {os.cpu_count()}; local Ray on 127.0.0.1", flush=True)

    if args.part == "hop":
        return hop_figures(args)
    path = os.path.join(scratch_dir("cvstream-scaleout-"), "sky.cf32")
    timed(RECORD % {"path": path}, False)  # 8 scenes of 20 Msps wideband IQ, played in a loop
    long, short = args.items, args.items // 8
    extra = long - short

    def seg(replicas):
        return lambda items: SEGMENT % {"path": path, "items": items, "replicas": replicas}

    base = extra_time(seg(1), long, short, False, args.repeat)
    print(f"segmenter, one process (anchor): {extra / base / 1e6:6.1f} Msps", flush=True)
    for n in (1, 2, 3):
        dt = extra_time(seg(n), long, short, True, args.repeat)
        print(f"segmenter on Ray, replicas {n}: {extra / dt / 1e6:6.1f} Msps "
              f"({base / dt:4.2f} x one process)", flush=True)

    if args.part == "all":
        hop_figures(args)


def hop_figures(args) -> None:
    chunk, long_items, short_items = 4096, 400_000_000, 40_000_000
    chunks = (long_items - short_items) / chunk

    def hop(where):
        return lambda items: HOP % {"chunk": chunk, "items": items, "where": where}

    local = extra_time(hop("a"), long_items, short_items, False, args.repeat)
    same = extra_time(hop("a"), long_items, short_items, True, args.repeat)
    cross = extra_time(hop("b"), long_items, short_items, True, args.repeat)
    print(f"chunks of {chunk} complex64 ({chunk * 8 // 1024} KiB): one process "
          f"{local / chunks * 1e6:6.1f} us/chunk; one fragment on Ray "
          f"{same / chunks * 1e6:6.1f} us/chunk; across a link {cross / chunks * 1e6:6.1f} "
          f"us/chunk")
    print(f"cross-fragment hop: {(cross - same) / chunks * 1e6:6.1f} us per chunk "
          f"({chunk * 8 * chunks / cross / 1e6:6.0f} MB/s through one link)")


if __name__ == "__main__":
    main()
