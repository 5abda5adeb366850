"""Model-only speed of the segmenter variants of the README's ablation (needs torch).

    python bench/segmenter_variants_bench.py [--frames 16]

Each (activation, width) is built with its initial weights (speed does not depend on the
values), exported to ONNX and run by ONNX Runtime as the block runs it: one intra-op
thread, 64 K samples per call. Prints Msps and the ratio to the shipped variant. The
network runs once per tile, so its work per sample falls as the tile grows: ``--frames``
sets the FFT frames per tile (the shipped model has 32; the README's ablation was run at
16).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from cvstream.blocks.onnx_model import make_session
from cvstream.models.export import export_model
from cvstream.models.spectrum import segmenter as seg

from common import scratch_dir


def msps(path: str, frames: int, seconds: float = 2.0) -> float:
    session = make_session(path, threads=1)
    batch = 65536 // (frames * seg.FFT)
    x = np.random.default_rng(0).standard_normal((batch, frames, seg.FFT, 2))
    x = x.astype(np.float32)
    for _ in range(5):
        session.run(None, {"frames": x})
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        session.run(None, {"frames": x})
        runs += 1
    return runs * batch * frames * seg.FFT / (time.perf_counter() - t0) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=seg.FRAMES, help="FFT frames per tile")
    frames = ap.parse_args().frames
    tmp = scratch_dir()
    figures = {}
    for activation, width in seg.VARIANTS:
        path = str(tmp / f"{activation}_{width}.onnx")
        export_model(seg.build(width, activation, frames).eval(),
                     seg.contract(frames=frames), path)
        figures[activation, width] = msps(path, frames)
    shipped = figures[seg.ACTIVATION, seg.WIDTH]
    print(f"segmenter variant      Msps (model only, 1 thread, {frames} frames a tile, "
          "64 K samples per call)")
    for (activation, width), value in figures.items():
        shipped_kind = (activation, width) == (seg.ACTIVATION, seg.WIDTH)
        mark = "  (shipped)" if shipped_kind and frames == seg.FRAMES else ""
        print(f"{activation:<8} width {width:<3} {value:7.1f}   {value / shipped:.2f}x{mark}")


if __name__ == "__main__":
    main()
