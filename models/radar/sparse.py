"""Compressed-sensing baseline: FISTA on min ||A x - y||^2 + lambda ||x||_1 with the exact
Born operator (complex soft threshold, step 1 / L with L = ||A^H A|| by power iteration).

``lambda`` is relative: a fraction of max |A^H y| per sweep, so one value serves every
measurement scale; ``choose_lambda`` picks it on validation scenes (never the evaluation's).
"""
from __future__ import annotations

import numpy as np

from .geometry import RadarConfig
from .operators import ForwardOperator, ImageFormation, normalize_max

LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3)


def lipschitz(cfg: RadarConfig, steps: int = 20, forward: ForwardOperator | None = None,
              adjoint: ImageFormation | None = None) -> float:
    """L = ||A^H A||, its largest eigenvalue by power iteration (+1 %): a gradient step of
    1 / L never diverges."""
    forward = forward or ForwardOperator(cfg)
    adjoint = adjoint or ImageFormation(cfg, "adjoint")
    x = np.random.default_rng(0).standard_normal((1, cfg.n_voxels)).astype(np.complex64)
    for _ in range(steps):
        x = adjoint(forward(x))
        norm = float(np.linalg.norm(x))
        x /= norm
    return norm * 1.01


class FistaL1:
    """(B, K, T, R) sweeps -> (B, nx, ny, nz) float32 magnitudes normalized to max 1."""

    def __init__(self, cfg: RadarConfig, lam: float = 0.03, iterations: int = 60,
                 forward: ForwardOperator | None = None, adjoint: ImageFormation | None = None):
        self.cfg, self.lam, self.iterations = cfg, lam, iterations
        self.A = forward or ForwardOperator(cfg)
        self.AH = adjoint or ImageFormation(cfg, "adjoint")
        self.L = self._lipschitz()

    def _lipschitz(self) -> float:
        return lipschitz(self.cfg, 20, self.A, self.AH)

    def complex_images(self, sweeps: np.ndarray) -> np.ndarray:
        y = np.asarray(sweeps, np.complex64)
        back = self.AH(y)                                         # A^H y, (B, N)
        tau = (self.lam * np.abs(back).max(axis=1, keepdims=True) / self.L).astype(np.float32)
        x = np.zeros_like(back)
        z, t = x.copy(), 1.0
        for _ in range(self.iterations):
            u = z - (self.AH(self.A(z)) - back) / self.L
            mag = np.abs(u)
            x_new = u * np.maximum(0.0, 1.0 - tau / np.maximum(mag, 1e-30))
            t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
            z = x_new + ((t - 1) / t_new) * (x_new - x)
            x, t = x_new, t_new
        return x

    def __call__(self, sweeps: np.ndarray) -> np.ndarray:
        mag = np.abs(self.complex_images(sweeps)).reshape(len(sweeps), *self.cfg.image_shape)
        return normalize_max(mag)


def choose_lambda(cfg: RadarConfig, sweeps: np.ndarray, truth: np.ndarray, score,
                  iterations: int = 60, lambdas=LAMBDAS) -> tuple[float, dict]:
    """The lambda with the best mean ``score(image, truth)`` (higher is better) on the
    validation scenes given; returns it and every lambda's mean score."""
    forward, adjoint = ForwardOperator(cfg), ImageFormation(cfg, "adjoint")
    means = {}
    for lam in lambdas:
        solver = FistaL1(cfg, lam, iterations, forward, adjoint)
        images = solver(sweeps)
        means[lam] = float(np.mean([score(i, t) for i, t in zip(images, truth)]))
    return max(means, key=means.get), means
