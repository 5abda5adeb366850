"""Radar imaging speed: frames per second end to end through ``cvstream run``.

    python bench/radar_bench.py [--sweeps 48] [--methods unrolled unrolled-0 deep2s ...]

For each configuration (small: target >= 30 fps; published: target >= 10 fps) and each
method (the unrolled network; the same without its FISTA-L1 steps, ``unrolled-0``; the
support-prior network; Deep2S, complex variant, Kirchhoff migration), ``cvstream run
graphs/radar_files.yml`` (or the same graph with ``radar_migration``) images a .npy of
synthesized sweeps into a .npy of images, in a fresh process. Runs with N and 2N sweeps (the
fastest of three each) separate the start-up cost (imports, model load, table build) from
the steady state: fps = N / (t(2N) - t(N)); when that difference is under half a second (a
fast method, where the start-up's own jitter would dominate), N grows fourfold (the sweeps
repeated) and the runs are made again.
Also printed: end-to-end fps of the 2N run including start-up, the model time per frame from
the block's counters, and the ratio against the target and against the anchor pipeline
(adjoint + the 32/64/128 U-Net, ~140 ms per published frame on 2 threads; ANCHORS.md).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cvstream.models.radar.synth import make_scenes

ROOT = Path(__file__).resolve().parents[1]
TARGET_FPS = {"small": 30.0, "published": 10.0}
ANCHOR_MS = {"published": 140.0}
MIGRATION = """
variables: {input: sweeps.npy, output: images.npy, config: small}
blocks:
  sweeps: {type: npy_source, path: "${input}", chunk: 4}
  image: {type: radar_migration, config: "${config}", method: kirchhoff}
  out: {type: npy_sink, path: "${output}"}
connections: [sweeps -> image, image -> out]
"""


#: the unrolled network without its FISTA steps (``polish: 0``): the speed it trades for them
FAST = "unrolled-0"


def run(graph: str, tmp: Path, sweeps: str, config: str, method: str) -> tuple[float, dict]:
    stats = tmp / "stats.json"
    cmd = [sys.executable, "-m", "cvstream", "run", graph, "--set", f"input={sweeps}",
           "--set", f"output={tmp / 'images.npy'}", "--set", f"config={config}",
           "--stats-json", str(stats)]
    if method == FAST:
        cmd += ["--set", "method=unrolled", "--set", "polish=0"]
    elif method != "kirchhoff":
        cmd += ["--set", f"method={method}"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return wall, json.loads(stats.read_text())["blocks"]["image"]["counters"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=48, help="N (the second run uses 2N)")
    methods = ["unrolled", FAST, "support", "deep2s", "complex", "kirchhoff"]
    ap.add_argument("--methods", nargs="+", default=methods, choices=methods)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "migration.yml").write_text(MIGRATION)
        print(f"{'config':<10} {'method':<10} {'fps':>7} {'e2e fps':>8} {'model ms':>9} "
              f"{'vs target':>10} {'vs anchor':>10}")
        for config, target in TARGET_FPS.items():
            base, _, _ = make_scenes(config, 2 * args.sweeps, seed=99)
            data = {}

            def sweeps_file(n: int) -> str:
                if n not in data:
                    data[n] = tmp / f"{config}_{n}.npy"
                    np.save(data[n], np.resize(base, (n, *base.shape[1:])))  # repeated
                return str(data[n])

            for method in args.methods:
                graph = (str(tmp / "migration.yml") if method == "kirchhoff"
                         else str(ROOT / "graphs" / "radar_files.yml"))
                n = args.sweeps
                while True:
                    t1 = min(run(graph, tmp, sweeps_file(n), config, method)[0]
                             for _ in range(3))
                    runs = [run(graph, tmp, sweeps_file(2 * n), config, method)
                            for _ in range(3)]
                    t2, counters = min(runs, key=lambda r: r[0])
                    if t2 - t1 >= 0.5 or n >= 64 * args.sweeps:
                        break
                    n *= 4
                fps = n / max(t2 - t1, 1e-9)
                model_ms = counters["compute_us"] / 1e3 / counters["frames"]
                anchor = (f"{fps / (1e3 / ANCHOR_MS[config]):9.2f}x" if config in ANCHOR_MS
                          else f"{'-':>10}")
                print(f"{config:<10} {method:<10} {fps:7.1f} {2 * n / t2:8.1f} "
                      f"{model_ms:9.1f} {fps / target:9.2f}x {anchor}   (N = {n})",
                      flush=True)


if __name__ == "__main__":
    main()
