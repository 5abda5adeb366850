"""Radar imaging evaluation: PSNR and 3D SSIM of each method on a held-out synthetic set.

Both images are magnitudes normalized to max 1. PSNR = 10 log10(1 / MSE). SSIM uses an
11-voxel Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2 (data range 1), averaged over
all voxels. The "empty image" row (all zeros) shows what PSNR a method gets for free on
these sparse scenes. Time per frame is measured in-process (one sweep at a time).
"""
from __future__ import annotations

import time

import numpy as np
from scipy.ndimage import gaussian_filter

from .geometry import load_config
from .operators import ImageFormation
from .synth import make_scenes

EVAL_SEED = 10_000   # held out: training uses seeds below this
CLASSICAL = ("backprojection", "kirchhoff")


def psnr(image: np.ndarray, truth: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(image, np.float64) - truth) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def ssim3d(image: np.ndarray, truth: np.ndarray, sigma: float = 1.5) -> float:
    a, b = np.asarray(image, np.float64), np.asarray(truth, np.float64)

    def blur(v):
        return gaussian_filter(v, sigma, truncate=3.5, mode="reflect")  # radius 5: 11 voxels
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def onnx_imager(path: str):
    """(n, K, T, R) complex64 sweeps -> (n, nx, ny, nz) images, through the same block a
    flow graph uses (``radar_reconstruct``, 2 ONNX Runtime threads)."""
    from cvstream.blocks.radar_imaging import RadarReconstruct
    return RadarReconstruct(model=path, threads=2).process


def evaluate(config: str, imagers: dict, count: int = 32, progress=None) -> dict:
    """{method: {psnr_db, ssim, ms_per_frame}} on ``count`` held-out scenes of ``config``."""
    cfg = load_config(config)
    sweeps, truth, _ = make_scenes(cfg, count, EVAL_SEED)
    methods = {name: ImageFormation(cfg, name).magnitude for name in CLASSICAL}
    methods.update(imagers)
    rows = {"empty image": {"psnr_db": float(np.mean([psnr(np.zeros_like(t), t)
                                                      for t in truth])),
                            "ssim": float(np.mean([ssim3d(np.zeros_like(t), t)
                                                   for t in truth])),
                            "ms_per_frame": 0.0}}
    done, total = 0, len(methods) * count
    for name, run in methods.items():
        run(sweeps[:1])  # warm-up
        scores, ssims, seconds = [], [], 0.0
        for i in range(count):
            t0 = time.perf_counter()
            image = run(sweeps[i:i + 1])[0]
            seconds += time.perf_counter() - t0
            scores.append(psnr(image, truth[i]))
            ssims.append(ssim3d(image, truth[i]))
            done += 1
            if progress:
                progress(done, total)
        rows[name] = {"psnr_db": float(np.mean(scores)), "ssim": float(np.mean(ssims)),
                      "ms_per_frame": 1e3 * seconds / count}
    return rows


def format_table(tables: dict) -> str:
    """tables: {config: rows} -> the table the README quotes."""
    lines = [f"{'config':<10} {'method':<15} {'PSNR dB':>8} {'SSIM':>7} {'ms/frame':>9}"]
    for config, rows in tables.items():
        for method, r in rows.items():
            lines.append(f"{config:<10} {method:<15} {r['psnr_db']:8.2f} {r['ssim']:7.3f} "
                         f"{r['ms_per_frame']:9.1f}")
    return "\n".join(lines)
