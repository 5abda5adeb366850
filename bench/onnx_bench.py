"""ONNX inference benchmarks.

    python bench/onnx_bench.py [--seconds 3]

1. Overhead of the onnx_model block against a bare InferenceSession.run on the same model
   and chunk (builtin:iq_denoiser, 4096-sample chunks): per call, and through a flow graph.
2. Throughput of a complex conv stack (4 layers, 16 complex channels, kernel 9, chunk 4096):
   4-multiplication vs Gauss 3-multiplication form, fp32 vs int8 (QDQ), in Msps.
All ONNX Runtime sessions use the block's settings (1 intra-op thread on 2 cores, no spinning).
Needs the train extra (torch) for part 2.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort

from cvstream import Graph
from cvstream.blocks.onnx_model import OnnxModel, default_threads
from cvstream.blocks.onnx_model import make_session as session
from cvstream.blocks.signal_source import SignalSource
from cvstream.blocks.sinks import NullSink
from cvstream.contract import read_contract
from cvstream.models import resolve_model
from cvstream.scheduler import Scheduler

from common import scratch_dir


def timed(fn, seconds: float) -> float:
    """Seconds per call of fn(), best of three windows (after a warm-up)."""
    fn()
    best = float("inf")
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            fn()
            n += 1
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def overhead(seconds: float) -> None:
    path = resolve_model("builtin:iq_denoiser")
    c = read_contract(path)
    span = c.history + c.chunk
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(span) + 1j * rng.standard_normal(span)).astype(np.complex64)
    bare = session(path)
    feed = {"inp": x.view(np.float32).reshape(1, span, 2)}
    t_bare = timed(lambda: bare.run(None, feed), seconds)
    block = OnnxModel(model=path, max_batch=1)
    block.start()
    t_block = timed(lambda: block.work(x), seconds)
    print(f"{'bare InferenceSession.run, one chunk':<46}{t_bare * 1e6:>9.0f} us"
          f"{c.chunk / t_bare / 1e6:>9.1f} Msps")
    print(f"{'onnx_model.work, one chunk':<46}{t_block * 1e6:>9.0f} us"
          f"{c.chunk / t_block / 1e6:>9.1f} Msps   overhead {100 * (t_block / t_bare - 1):+.1f} %")
    g = Graph()
    g.add("src", SignalSource(waveform="noise", chunk=c.chunk, items=c.chunk * 400))
    g.add("net", OnnxModel(model=path, max_batch=1))
    g.add("snk", NullSink())
    g.connect("src", "net")
    g.connect("net", "snk")
    sched = Scheduler(g)
    t0 = time.perf_counter()
    sched.run()
    t_graph = (time.perf_counter() - t0) / 400
    print(f"{'signal_source -> onnx_model -> null_sink':<46}{t_graph * 1e6:>9.0f} us"
          f"{c.chunk / t_graph / 1e6:>9.1f} Msps   overhead {100 * (t_graph / t_bare - 1):+.1f} %"
          " (per chunk, end to end)")


def conv_stack(seconds: float) -> None:
    import torch

    from cvstream.models.export import export_model, quantize_int8
    from cvstream.models.nn import ComplexConv, CReLU, FromInterleaved, ToInterleaved
    chunk = 4096
    rng = np.random.default_rng(1)
    print(f"\n{'complex conv stack (4 x 16 ch, k=9), chunk 4096':<46}{'us/chunk':>9}{'Msps':>9}")
    tmp = scratch_dir()
    for mode in ("4mult", "gauss"):
        torch.manual_seed(0)
        layers = [FromInterleaved()]
        chans = [1, 16, 16, 16, 1]
        for i in range(4):
            layers.append(ComplexConv(chans[i], chans[i + 1], 9, causal=True, mode=mode))
            if i < 3:
                layers.append(CReLU())
        net = torch.nn.Sequential(*layers, ToInterleaved()).eval()
        contract = dict(task="bench", name=f"stack_{mode}", chunk=chunk,
                        sample_rate="normalized", inputs=[dict(name="inp")],
                        outputs=[dict(name="out")])
        fp32 = str(tmp / f"{mode}.onnx")
        export_model(net, contract, fp32)
        calib = [[rng.standard_normal((1, chunk, 2)).astype(np.float32)] for _ in range(8)]
        int8 = quantize_int8(fp32, str(tmp / f"{mode}.int8.onnx"), calib)
        feed = {"inp": rng.standard_normal((1, chunk, 2)).astype(np.float32)}
        ref = session(fp32).run(None, feed)[0]
        for label, path in (("fp32", fp32), ("int8", int8)):
            s = session(path)
            t = timed(lambda: s.run(None, feed), seconds)
            err = np.linalg.norm(s.run(None, feed)[0] - ref) / np.linalg.norm(ref)
            acc = "" if label == "fp32" else f"   rel. error vs fp32 {err:.3f}"
            print(f"{mode + ' ' + label:<46}{t * 1e6:>9.0f}{chunk / t / 1e6:>9.1f}{acc}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    print(f"ONNX Runtime {ort.__version__}, {default_threads()} intra-op thread(s)")
    overhead(args.seconds)
    conv_stack(args.seconds)


if __name__ == "__main__":
    main()
