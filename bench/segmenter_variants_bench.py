"""Model-only speed of the segmenter variants of the README's ablation (needs torch).

    python bench/segmenter_variants_bench.py

Each (activation, width) is built with its initial weights (speed does not depend on the
values), exported to ONNX and run by ONNX Runtime as the block runs it: one intra-op
thread, batches of 16 tiles. Prints Msps and the ratio to the shipped variant.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from cvstream.blocks.onnx_model import make_session
from cvstream.models.export import export_model
from cvstream.models.spectrum import segmenter as seg

def msps(path: str, batch: int = 16, seconds: float = 2.0) -> float:
    session = make_session(path, threads=1)
    x = np.random.default_rng(0).standard_normal((batch, seg.FRAMES, seg.FFT, 2))
    x = x.astype(np.float32)
    for _ in range(5):
        session.run(None, {"frames": x})
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        session.run(None, {"frames": x})
        runs += 1
    return runs * batch * seg.TILE / (time.perf_counter() - t0) / 1e6


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    figures = {}
    for activation, width in seg.VARIANTS:
        path = str(tmp / f"{activation}_{width}.onnx")
        export_model(seg.build(width, activation).eval(), seg.contract(), path)
        figures[activation, width] = msps(path)
    shipped = figures[seg.ACTIVATION, seg.WIDTH]
    print("segmenter variant      Msps (model only, 1 thread, 16 tiles per call)")
    for (activation, width), value in figures.items():
        mark = "  (shipped)" if (activation, width) == (seg.ACTIVATION, seg.WIDTH) else ""
        print(f"{activation:<8} width {width:<3} {value:7.1f}   {value / shipped:.2f}x{mark}")


if __name__ == "__main__":
    main()
