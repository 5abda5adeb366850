"""Compressed-sensing baselines: FISTA on min ||A x - y||^2 + lambda R(x) with the exact
Born operator (step 1 / L with L = ||A^H A|| by power iteration), R the L1 norm (a complex
soft threshold per voxel, ``FistaL1``) or group sparsity (the sum of the L2 norms of 2x2x2
blocks of neighbouring voxels, ``FistaGroup``: an extended reflector's voxels are non-zero
together whatever their phases, so a block keeps or drops its voxels as one).

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
            x_new = self.shrink(u, tau)
            t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
            z = x_new + ((t - 1) / t_new) * (x_new - x)
            x, t = x_new, t_new
        return x

    def shrink(self, u: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """The proximal step of the L1 norm: each voxel's magnitude less tau (B, 1)."""
        return u * np.maximum(0.0, 1.0 - tau / np.maximum(np.abs(u), 1e-30))

    def __call__(self, sweeps: np.ndarray) -> np.ndarray:
        mag = np.abs(self.complex_images(sweeps)).reshape(len(sweeps), *self.cfg.image_shape)
        return normalize_max(mag)


class FistaGroup(FistaL1):
    """FISTA with group sparsity over 2x2x2 voxel blocks (the image zero-padded to even
    sizes): each block's joint L2 norm less tau, its voxels scaled together."""

    BLOCK = 2

    def shrink(self, u: np.ndarray, tau: np.ndarray) -> np.ndarray:
        b, k = len(u), self.BLOCK
        shape = self.cfg.image_shape
        v = np.pad(u.reshape(b, *shape), [(0, 0)] + [(0, -n % k) for n in shape])
        nx, ny, nz = (n // k for n in v.shape[1:])
        g = v.reshape(b, nx, k, ny, k, nz, k)
        norm = np.sqrt(np.sum(g.real ** 2 + g.imag ** 2, axis=(2, 4, 6), keepdims=True))
        g = g * np.maximum(0.0, 1.0 - tau.reshape(b, 1, 1, 1, 1, 1, 1)
                           / np.maximum(norm, 1e-30))
        out = g.reshape(b, nx * k, ny * k, nz * k)[:, :shape[0], :shape[1], :shape[2]]
        return out.reshape(b, -1).astype(u.dtype)


def choose_lambda(cfg: RadarConfig, sweeps: np.ndarray, truth: np.ndarray, score,
                  iterations: int = 60, lambdas=LAMBDAS,
                  solver=FistaL1) -> tuple[float, dict]:
    """The lambda of ``solver`` (a FISTA class) with the best mean ``score(image, truth)``
    (higher is better) on the validation scenes given; returns it and every lambda's mean
    score."""
    forward, adjoint = ForwardOperator(cfg), ImageFormation(cfg, "adjoint")
    means = {}
    for lam in lambdas:
        solver_at = solver(cfg, lam, iterations, forward, adjoint)
        images = solver_at(sweeps)
        means[lam] = float(np.mean([score(i, t) for i, t in zip(images, truth)]))
    return max(means, key=means.get), means
