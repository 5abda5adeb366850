"""Synthetic near-field radar scenes: 3D extended targets, Born sweeps, measurement noise.

A scene is a union of 1..``max_objects`` shapes at random poses and depths inside the voxel
grid: the first models' families (``SHAPES``: spheres, ellipsoids, boxes, thin plates,
extruded letters and polygons) or the wider set the unrolled network trains on
(``TRAIN_SHAPES``: those plus thin wires and bent rods, hollow shells, tubes along open
curves, point clusters and random convex polyhedra). Every voxel of a shape reflects with the
shape's amplitude (0.5..1) and, by default, its own uniformly random phase; ``phases`` adds
other surface models per shape (``PHASES``): one phase for the whole shape, a smooth phase
(a random tilt and curvature across it, a mirror-like surface) and a rough one (smooth plus
per-voxel jitter), optionally with a per-voxel amplitude texture. The held-out families
(``UNSEEN_SHAPES``) are in neither training set. The sweep is the Born forward model of
that reflectivity plus complex white noise at a measurement SNR (mean sweep power over
noise power) drawn from ``snr_db``. The label is the reflectivity magnitude normalized to
max 1. Deterministic from the seed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .geometry import RadarConfig, load_config
from .operators import ForwardOperator, normalize_max

SHAPES = ("sphere", "ellipsoid", "box", "plate", "letter", "polygon")
#: shape families the training never sees: what generalization is measured on
UNSEEN_SHAPES = ("torus", "hollow_cylinder", "cone", "bead_helix", "rod_cross", "ring")
#: open, thin, hollow and scattered bodies the unrolled network also trains on
EXTRA_SHAPES = ("wire", "shell", "curve", "points", "mesh")
TRAIN_SHAPES = SHAPES + EXTRA_SHAPES
#: surface phase models: independent per voxel, one per shape, smooth, smooth plus jitter
PHASES = ("random", "constant", "smooth", "rough")

#: 5x7 bitmaps (rows top to bottom) of the letters extruded as targets
LETTERS = {
    "C": ["01111", "10000", "10000", "10000", "10000", "10000", "01111"],
    "E": ["11111", "10000", "10000", "11110", "10000", "10000", "11111"],
    "F": ["11111", "10000", "10000", "11110", "10000", "10000", "10000"],
    "H": ["10001", "10001", "10001", "11111", "10001", "10001", "10001"],
    "K": ["10001", "10010", "10100", "11000", "10100", "10010", "10001"],
    "L": ["10000", "10000", "10000", "10000", "10000", "10000", "11111"],
    "T": ["11111", "00100", "00100", "00100", "00100", "00100", "00100"],
    "V": ["10001", "10001", "10001", "10001", "01010", "01010", "00100"],
    "X": ["10001", "01010", "00100", "00100", "00100", "01010", "10001"],
    "Z": ["11111", "00001", "00010", "00100", "01000", "10000", "11111"],
}
_LETTER_MASKS = {k: np.array([[c == "1" for c in row] for row in v]) for k, v in LETTERS.items()}


@dataclass
class SceneConfig:
    max_objects: int = 3
    snr_db: tuple[float, float] = (20.0, 40.0)
    size_m: tuple[float, float] = (0.02, 0.08)   # half-extent of a shape
    margin_m: float = 0.02                        # keep centres this far inside the grid
    shapes: tuple[str, ...] = SHAPES              # the families drawn from
    phases: tuple[str, ...] = ("random",)         # the surface phase models drawn from


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _polygon_inside(u: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Points u (N, 2) inside the closed polygon (even-odd rule), vectorized over edges."""
    inside = np.zeros(len(u), bool)
    x, y = u[:, 0], u[:, 1]
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < x_at)
    return inside


def shape_mask(kind: str, local: np.ndarray, size: float, rng: np.random.Generator
               ) -> np.ndarray:
    """Which points (local coordinates, (N, 3), metres) lie inside a shape of ``kind``."""
    if kind == "sphere":
        return np.linalg.norm(local, axis=1) <= size
    if kind == "ellipsoid":
        axes = size * rng.uniform(0.35, 1.0, 3)
        return np.sum((local / axes) ** 2, axis=1) <= 1.0
    if kind == "box":
        half = size * rng.uniform(0.3, 1.0, 3)
        return np.all(np.abs(local) <= half, axis=1)
    if kind == "plate":
        half = np.array([size * rng.uniform(0.5, 1.0), size * rng.uniform(0.5, 1.0),
                         rng.uniform(0.003, 0.008)])
        return np.all(np.abs(local) <= half, axis=1)
    if kind in UNSEEN_SHAPES:
        return _unseen_mask(kind, local, size, rng)
    if kind in EXTRA_SHAPES:
        return _extra_mask(kind, local, size, rng)
    thickness = rng.uniform(0.005, 0.02)
    slab = np.abs(local[:, 2]) <= thickness
    if kind == "polygon":
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = size * rng.uniform(0.4, 1.0, n)
        vertices = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        return slab & _polygon_inside(local[:, :2], vertices)
    if kind == "letter":
        mask = _LETTER_MASKS[rng.choice(sorted(_LETTER_MASKS))]
        rows, cols = mask.shape
        cell = size * 2 / rows
        col = np.floor(local[:, 0] / cell + cols / 2).astype(int)
        row = np.floor(-local[:, 1] / cell + rows / 2).astype(int)
        ok = (col >= 0) & (col < cols) & (row >= 0) & (row < rows)
        hit = np.zeros(len(local), bool)
        hit[ok] = mask[row[ok], col[ok]]
        return slab & hit
    raise ValueError(f"unknown shape '{kind}'")


def _unseen_mask(kind: str, local: np.ndarray, size: float, rng: np.random.Generator
                 ) -> np.ndarray:
    """Thin, hollow and curved bodies, unlike any training shape."""
    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    radial = np.hypot(x, y)
    wall = rng.uniform(0.004, 0.008)
    if kind == "torus":
        tube = size * rng.uniform(0.15, 0.3)
        return np.hypot(radial - size * 0.7, z) <= tube
    if kind == "hollow_cylinder":
        return (np.abs(radial - size * 0.6) <= wall) & (np.abs(z) <= size)
    if kind == "cone":
        height = size * 1.5
        return (z >= 0) & (z <= height) & (radial <= size * 0.7 * (1 - z / height))
    if kind == "ring":
        return (np.abs(radial - size * 0.8) <= wall) & (np.abs(z) <= wall)
    if kind == "rod_cross":
        rod = wall
        return ((np.abs(y) <= rod) & (np.abs(z) <= rod) & (np.abs(x) <= size)) | \
            ((np.abs(x) <= rod) & (np.abs(z) <= rod) & (np.abs(y) <= size))
    if kind == "bead_helix":
        turns, beads = rng.uniform(1.0, 2.5), int(rng.integers(8, 16))
        u = np.linspace(0, 1, beads)
        centres = np.stack([size * 0.6 * np.cos(2 * np.pi * turns * u),
                            size * 0.6 * np.sin(2 * np.pi * turns * u),
                            size * (2 * u - 1)], axis=1)
        bead = size * rng.uniform(0.08, 0.15)
        inside = np.zeros(len(local), bool)
        for c in centres:
            inside |= np.linalg.norm(local - c, axis=1) <= bead
        return inside
    raise ValueError(f"unknown shape '{kind}'")


def _near_polyline(local: np.ndarray, nodes: np.ndarray, radius: float) -> np.ndarray:
    """Points within ``radius`` of the open polyline through ``nodes`` (M, 3)."""
    inside = np.zeros(len(local), bool)
    for a, b in zip(nodes[:-1], nodes[1:]):
        ab = b - a
        t = np.clip((local - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
        inside |= np.linalg.norm(local - (a + t[:, None] * ab), axis=1) <= radius
    return inside


def _extra_mask(kind: str, local: np.ndarray, size: float, rng: np.random.Generator
                ) -> np.ndarray:
    """The training-only families: open wires and curves, shells, clusters, polyhedra."""
    thin = rng.uniform(0.004, 0.01)
    if kind == "wire":  # a straight rod or a rod bent once or twice (open, never closed)
        bends = int(rng.integers(0, 3))
        nodes = np.cumsum(rng.standard_normal((bends + 2, 3)), axis=0)
        nodes -= nodes.mean(axis=0)
        nodes *= size / max(float(np.abs(nodes).max()), 1e-9)
        return _near_polyline(local, nodes, thin)
    if kind == "curve":  # a tube along a random cubic Bezier curve
        ctrl = rng.uniform(-size, size, (4, 3))
        u = np.linspace(0, 1, 24)[:, None]
        nodes = ((1 - u) ** 3 * ctrl[0] + 3 * (1 - u) ** 2 * u * ctrl[1]
                 + 3 * (1 - u) * u ** 2 * ctrl[2] + u ** 3 * ctrl[3])
        return _near_polyline(local, nodes, thin)
    if kind == "shell":  # a hollow sphere or box, walls a few mm thick
        wall = rng.uniform(0.004, 0.008)
        if rng.uniform() < 0.5:
            return np.abs(np.linalg.norm(local, axis=1) - size * 0.8) <= wall
        half = size * rng.uniform(0.4, 1.0, 3)
        outer = np.all(np.abs(local) <= half, axis=1)
        return outer & ~np.all(np.abs(local) <= half - wall, axis=1)
    if kind == "points":  # a cluster of small balls
        count = int(rng.integers(3, 13))
        centres = rng.uniform(-size, size, (count, 3))
        radius = rng.uniform(0.004, 0.01)
        inside = np.zeros(len(local), bool)
        for c in centres:
            inside |= np.linalg.norm(local - c, axis=1) <= radius
        return inside
    if kind == "mesh":  # a random convex polyhedron: the intersection of half-spaces
        normals = rng.standard_normal((int(rng.integers(5, 13)), 3))
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        offsets = size * rng.uniform(0.3, 1.0, len(normals))
        return np.all(local @ normals.T <= offsets, axis=1)
    raise ValueError(f"unknown shape '{kind}'")


def _surface_phase(model: str, local: np.ndarray, size: float, rng: np.random.Generator
                   ) -> np.ndarray:
    """Phase (radians) of each point of a shape under a surface model other than 'random'."""
    if model == "constant":
        return np.full(len(local), rng.uniform(0, 2 * np.pi))
    tilt = rng.standard_normal(3) * np.pi / size          # up to a few turns across it
    curve = rng.standard_normal() * np.pi / size ** 2
    phase = rng.uniform(0, 2 * np.pi) + local @ tilt + curve * np.sum(local ** 2, axis=1)
    if model == "rough":
        phase = phase + rng.uniform(0.3, 1.5) * rng.standard_normal(len(local))
    return phase


def random_reflectivity(cfg: RadarConfig, rng: np.random.Generator,
                        scene: SceneConfig = SceneConfig()) -> np.ndarray:
    """(nx, ny, nz) complex64 reflectivity of one random scene (never empty)."""
    vox = cfg.voxels()
    lo = np.array([cfg.x.min(), cfg.y.min(), cfg.z.min()]) + scene.margin_m
    hi = np.array([cfg.x.max(), cfg.y.max(), cfg.z.max()]) - scene.margin_m
    amplitude = np.zeros(len(vox))
    surface = None if scene.phases == ("random",) else np.zeros(len(vox))  # phase, radians
    random_phase = np.ones(len(vox), bool)
    for _ in range(100):
        for _ in range(int(rng.integers(1, scene.max_objects + 1))):
            kind = scene.shapes[int(rng.integers(len(scene.shapes)))]
            centre = rng.uniform(lo, hi)
            local = (vox - centre) @ random_rotation(rng)
            size = rng.uniform(*scene.size_m)
            inside = shape_mask(kind, local, size, rng)
            amp = rng.uniform(0.5, 1.0)
            if surface is None:
                amplitude[inside] = np.maximum(amplitude[inside], amp)
                continue
            model = scene.phases[int(rng.integers(len(scene.phases)))]
            value = amp * (rng.uniform(0.6, 1.0, len(vox)) if rng.uniform() < 0.3
                           else np.ones(len(vox)))
            wins = inside & (value >= amplitude)
            amplitude[wins] = value[wins]
            random_phase[wins] = model == "random"
            if model != "random":
                surface[wins] = _surface_phase(model, local[wins], size, rng)
        if amplitude.any():
            break
    phase = np.exp(2j * np.pi * rng.uniform(size=len(vox)))
    if surface is not None:
        phase = np.where(random_phase, phase, np.exp(1j * surface))
    return (amplitude * phase).astype(np.complex64).reshape(cfg.image_shape)


def add_noise(sweeps: np.ndarray, snr_db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Complex white noise at ``snr_db`` (per sweep) below each sweep's mean power."""
    power = np.mean(np.abs(sweeps) ** 2, axis=(1, 2, 3))
    sigma = np.sqrt(power / 10 ** (np.asarray(snr_db) / 10) / 2)[:, None, None, None]
    noise = rng.standard_normal(sweeps.shape) + 1j * rng.standard_normal(sweeps.shape)
    return (sweeps + sigma * noise).astype(np.complex64)


def make_scenes(cfg: RadarConfig | str, count: int, seed, scene: SceneConfig = SceneConfig(),
                progress=None, batch: int = 32, forward: ForwardOperator | None = None):
    """(sweeps (n, K, T, R) complex64, truth (n, nx, ny, nz) float32, snr_db (n,)).
    ``seed``: anything ``np.random.default_rng`` takes; ``forward``: reuse its tables."""
    cfg = load_config(cfg)
    rng = np.random.default_rng(seed)
    forward = forward or ForwardOperator(cfg)
    sweeps = np.empty((count, *cfg.sweep_shape), np.complex64)
    truth = np.empty((count, *cfg.image_shape), np.float32)
    snr = rng.uniform(*scene.snr_db, count)
    for start in range(0, count, batch):
        stop = min(count, start + batch)
        x = np.stack([random_reflectivity(cfg, rng, scene) for _ in range(start, stop)])
        sweeps[start:stop] = add_noise(forward(x), snr[start:stop], rng)
        truth[start:stop] = normalize_max(np.abs(x))
        if progress:
            progress(stop, count)
    return sweeps, truth, snr


def write_dataset(out_dir: str, config: str, count: int, seed: int,
                  scene: SceneConfig = SceneConfig(), progress=None) -> Path:
    """sweeps.npy, truth.npy, config.json and meta.json under ``out_dir``."""
    cfg = load_config(config)
    sweeps, truth, snr = make_scenes(cfg, count, seed, scene, progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "sweeps.npy", sweeps)
    np.save(out / "truth.npy", truth)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    (out / "meta.json").write_text(json.dumps(
        {"seed": seed, "count": count, "config": cfg.name, "snr_db": snr.round(2).tolist(),
         "sweeps": "sweeps.npy (n, n_freq, n_tx, n_rx) complex64",
         "truth": "truth.npy (n, nx, ny, nz) float32, |reflectivity| / max"}, indent=1))
    return out
