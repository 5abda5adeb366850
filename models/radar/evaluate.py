"""Radar imaging evaluation of each method on held-out synthetic scenes: of the training's
shape families, and of families the training never sees (tori, hollow cylinders, cones,
helices of beads, crosses of thin rods, rings).

Both images are magnitudes normalized to max 1. PSNR = 10 log10(1 / MSE). SSIM uses an
11-voxel Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2 (data range 1), averaged over
all voxels. Metrics an empty image cannot win: NMSE = 10 log10(||image - truth||^2 /
||truth||^2) (0 dB for the empty image, lower is better), Dice and IoU of the supports
(voxels above 0.2 of the maximum), and PSNR over the truth's support dilated by one voxel.
The "empty image" row (all zeros) shows what PSNR a method gets for free on these sparse
scenes. Baselines: adjoint, back-projection, Kirchhoff, and FISTA on the exact operator
with L1 or group sparsity (2x2x2 voxel blocks), each lambda chosen by NMSE on validation
scenes (another seed), at two iteration budgets (``BUDGETS``: 60, about the unrolled
networks' cost, and 500, near convergence), and at the larger budget followed by the
classical debiasing step (least squares on the voxels above a fraction of the peak, chosen
on the same validation scenes; 20 conjugate-gradient iterations). Time per frame is
measured in-process (one sweep at a time; a debiasing row counts its FISTA's time).

Conditions (``CONDITIONS``) stress the unseen families further: one measurement SNR for all
scenes (10, 20, 30, 40 dB instead of 20-40), and model mismatch, sweeps measured with every
antenna displaced by up to +-1 mm per coordinate (uniform, fixed seed) and imaged with the
nominal positions.
"""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
from scipy.ndimage import gaussian_filter

from scipy.ndimage import binary_dilation

from .geometry import load_config
from .operators import ForwardOperator, ImageFormation
from .sparse import BUDGETS, Debiased, FistaGroup, FistaL1, choose_lambda, choose_support
from .synth import SHAPES, UNSEEN_SHAPES, SceneConfig, make_scenes

EVAL_SEED = 10_000   # held out: training uses seeds below this
VALID_SEED = 20_000  # FISTA's lambda is chosen on these
CLASSICAL = ("adjoint", "backprojection", "kirchhoff")
SUPPORT = 0.2        # support: voxels above this fraction of the maximum


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


def nmse_db(image: np.ndarray, truth: np.ndarray) -> float:
    err = np.sum((np.asarray(image, np.float64) - truth) ** 2)
    return float(10 * np.log10(err / max(float(np.sum(np.asarray(truth, np.float64) ** 2)),
                                         1e-30) + 1e-30))


def dice_iou(image: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    a, b = image > SUPPORT, truth > SUPPORT
    inter, total, union = np.sum(a & b), np.sum(a) + np.sum(b), np.sum(a | b)
    return (2 * inter / total if total else 1.0), (inter / union if union else 1.0)


def psnr_support(image: np.ndarray, truth: np.ndarray) -> float:
    """PSNR over the truth's support dilated by one voxel."""
    mask = binary_dilation(truth > SUPPORT)
    mse = float(np.mean((np.asarray(image[mask], np.float64) - truth[mask]) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def scores(image: np.ndarray, truth: np.ndarray) -> dict:
    dice, iou = dice_iou(image, truth)
    return {"psnr_db": psnr(image, truth), "nmse_db": nmse_db(image, truth),
            "ssim": ssim3d(image, truth), "dice": dice, "iou": iou,
            "psnr_support_db": psnr_support(image, truth)}


def onnx_imager(path: str):
    """(n, K, T, R) complex64 sweeps -> (n, nx, ny, nz) images, through the same block a
    flow graph uses (``radar_reconstruct``, 2 ONNX Runtime threads)."""
    from cvstream.blocks.radar_imaging import RadarReconstruct
    return RadarReconstruct(model=path, threads=2).process


def fista_imagers(cfg, budgets=BUDGETS, validation: int = 8, solver=FistaL1,
                  progress=None) -> dict:
    """FISTA (``solver``: FistaL1 or FistaGroup) at each iteration budget, its lambda chosen
    by NMSE on ``validation`` scenes of the training's families (seed VALID_SEED):
    {budget: (imager, lambda)}. The choice is made once per solver, configuration and
    budgets in a process."""
    key = (solver.__name__, json.dumps(cfg.to_dict(), sort_keys=True), tuple(budgets),
           validation)
    if key not in _LAMBDAS:
        sweeps, truth, _ = make_scenes(cfg, validation, VALID_SEED)
        _LAMBDAS[key] = choose_lambda(cfg, sweeps, truth, lambda i, t: -nmse_db(i, t),
                                      tuple(budgets), solver=solver, progress=progress)[0]
    forward, adjoint = ForwardOperator(cfg), ImageFormation(cfg, "adjoint")
    return {its: (solver(cfg, lam, its, forward, adjoint), lam)
            for its, lam in _LAMBDAS[key].items()}


def debiased_imager(solver: FistaL1, validation: int = 8) -> Debiased:
    """``solver`` followed by least squares on its support (``refine_on_support``), the
    support threshold chosen by NMSE on the validation scenes."""
    key = (type(solver).__name__, json.dumps(solver.cfg.to_dict(), sort_keys=True),
           solver.lam, solver.iterations, validation)
    if key not in _SUPPORTS:
        sweeps, truth, _ = make_scenes(solver.cfg, validation, VALID_SEED)
        _SUPPORTS[key] = choose_support(solver, sweeps, truth, lambda i, t: -nmse_db(i, t))[0]
    return Debiased(solver, _SUPPORTS[key])


_SUPPORTS: dict = {}
_LAMBDAS: dict = {}


SETS = {"seen": SHAPES, "unseen": UNSEEN_SHAPES}
#: name -> (fixed SNR in dB or None for the default 20-40, antenna position error in metres)
CONDITIONS = {"": (None, 0.0), "10 dB": (10.0, 0.0), "20 dB": (20.0, 0.0),
              "30 dB": (30.0, 0.0), "40 dB": (40.0, 0.0), "+-1 mm": (None, 1e-3)}


def displaced(cfg, error_m: float, seed: int = 7):
    """``cfg`` with every antenna moved by up to +-``error_m`` per coordinate."""
    rng = np.random.default_rng(seed)
    return dataclasses.replace(cfg, tx=cfg.tx + rng.uniform(-error_m, error_m, cfg.tx.shape),
                               rx=cfg.rx + rng.uniform(-error_m, error_m, cfg.rx.shape))


def evaluate(config: str, imagers: dict, count: int = 32, progress=None,
             shapes: str = "seen", fista_budgets=BUDGETS, fista: bool = True,
             condition: str = "", choosing=None) -> dict:
    """{method: metrics and ms_per_frame} on ``count`` held-out scenes of ``config`` whose
    targets come from the training's shape families (``seen``) or from families it never
    saw (``unseen``), under one of ``CONDITIONS``. ``progress(done, total)`` follows the
    scenes; ``choosing(label)`` returns a progress callback for choosing a FISTA lambda."""
    cfg = load_config(config)
    snr, error_m = CONDITIONS[condition]
    scene = SceneConfig(shapes=SETS[shapes])
    if snr is not None:
        scene = dataclasses.replace(scene, snr_db=(snr, snr))
    measured = displaced(cfg, error_m) if error_m else cfg
    sweeps, truth, _ = make_scenes(cfg, count, [EVAL_SEED, list(SETS).index(shapes)]
                                   if shapes != "seen" else EVAL_SEED, scene,
                                   forward=ForwardOperator(measured))
    methods = {name: ImageFormation(cfg, name).magnitude for name in CLASSICAL}
    starts = {}   # debiasing row -> the FISTA row whose solutions it refines
    if fista:
        for label, kind in (("FISTA-L1", FistaL1), ("FISTA-group", FistaGroup)):
            chosen = fista_imagers(cfg, fista_budgets, solver=kind, progress=choosing and
                                   choosing(f"choosing {label}'s lambda"))
            for its, (solver, lam) in sorted(chosen.items()):
                methods[f"{label} ({its} it, lambda {lam:g})"] = solver
            its = max(chosen)   # the largest budget's solutions are debiased
            solver, lam = chosen[its]
            debiased = debiased_imager(solver)
            name = f"{label} ({its} it) + debias ({debiased.support:g})"
            methods[name] = debiased
            starts[name] = f"{label} ({its} it, lambda {lam:g})"
    methods.update(imagers)
    empty = [scores(np.zeros_like(t), t) for t in truth]
    rows = {"empty image": {**{k: float(np.mean([e[k] for e in empty])) for k in empty[0]},
                            "ms_per_frame": 0.0}}
    kept = {plain: [] for plain in starts.values()}   # (solution, seconds) per scene
    done, total = 0, len(methods) * count
    for name, run in methods.items():
        if name not in starts:
            run(sweeps[:1])  # warm-up
        got, seconds = [], 0.0
        for i in range(count):
            sweep = sweeps[i:i + 1]
            t0 = time.perf_counter()
            if name in starts:   # from the FISTA row's solution, its time counted
                x, before = kept[starts[name]][i]
                image = run.refine(x, sweep)[0]
                seconds += before
            elif name in kept:
                x = run.complex_images(sweep)
                kept[name].append((x, time.perf_counter() - t0))
                image = run.magnitudes(x)[0]
            else:
                image = run(sweep)[0]
            seconds += time.perf_counter() - t0
            got.append(scores(image, truth[i]))
            done += 1
            if progress:
                progress(done, total)
        rows[name] = {**{k: float(np.mean([g[k] for g in got])) for k in got[0]},
                      "ms_per_frame": 1e3 * seconds / count}
    return rows


def format_table(tables: dict) -> str:
    """tables: {(config, shapes[, condition]): rows} (or {config: rows}, the training's
    shapes) -> the table the README quotes."""
    lines = [f"{'config':<10} {'shapes':<14} {'method':<35} {'PSNR dB':>8} {'NMSE dB':>8} "
             f"{'SSIM':>6} {'Dice':>5} {'IoU':>5} {'PSNR supp':>9} {'ms/frame':>9}"]
    for key, rows in tables.items():
        config, shapes, condition = (*key, "")[:3] if isinstance(key, tuple) else (key, "seen",
                                                                                   "")
        where = f"{shapes} {condition}".strip()
        for method, r in rows.items():
            lines.append(f"{config:<10} {where:<14} {method:<35} {r['psnr_db']:8.2f} "
                         f"{r['nmse_db']:8.2f} {r['ssim']:6.3f} {r['dice']:5.2f} "
                         f"{r['iou']:5.2f} {r['psnr_support_db']:9.2f} "
                         f"{r['ms_per_frame']:9.1f}")
    return "\n".join(lines)
