"""Compressed-sensing baselines: FISTA on min ||A x - y||^2 + lambda R(x) with the exact
Born operator (step 1 / L with L = ||A^H A|| by power iteration), R the L1 norm (a complex
soft threshold per voxel, ``FistaL1``) or group sparsity (the sum of the L2 norms of 2x2x2
blocks of neighbouring voxels, ``FistaGroup``: an extended reflector's voxels are non-zero
together whatever their phases, so a block keeps or drops its voxels as one).

L1's shrinkage lowers every kept voxel by the threshold; ``refine_on_support`` (the classical
debiasing step) then solves least squares on the support found, by conjugate gradients with
the same operators, and ``Debiased`` runs it after a solver.

``lambda`` is relative: a fraction of max |A^H y| per sweep, so one value serves every
measurement scale; ``choose_lambda`` picks it on validation scenes (never the evaluation's),
for each iteration budget from one run per lambda (FISTA's iterates do not depend on how
many follow).
"""
from __future__ import annotations

import numpy as np

from .geometry import RadarConfig
from .operators import ForwardOperator, ImageFormation, normalize_max

LAMBDAS = (0.003, 0.01, 0.03, 0.1, 0.3)
#: iteration budgets the evaluation reports: about the unrolled networks' cost, and
#: converged (NMSE within 0.2 dB of 1500 iterations on the `small` validation scenes)
BUDGETS = (60, 500)
#: support of the debiasing step: voxels above this fraction of the image's peak, and its
#: conjugate-gradient iterations
SUPPORTS = (0.1, 0.2, 0.3)
REFINE_ITERATIONS = 20


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
        for _, x in self.iterates(sweeps, (self.iterations,)):
            return x

    def iterates(self, sweeps: np.ndarray, checkpoints):
        """Yields (i, x) after each iteration count i in ``checkpoints``, x (B, N) complex."""
        y = np.asarray(sweeps, np.complex64)
        back = self.AH(y)                                         # A^H y, (B, N)
        tau = (self.lam * np.abs(back).max(axis=1, keepdims=True) / self.L).astype(np.float32)
        x = np.zeros_like(back)
        z, t = x.copy(), 1.0
        for i in range(1, max(checkpoints) + 1):
            u = z - (self.AH(self.A(z)) - back) / self.L
            x_new = self.shrink(u, tau)
            t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
            z = x_new + ((t - 1) / t_new) * (x_new - x)
            x, t = x_new, t_new
            if i in checkpoints:
                yield i, x

    def shrink(self, u: np.ndarray, tau: np.ndarray) -> np.ndarray:
        """The proximal step of the L1 norm: each voxel's magnitude less tau (B, 1)."""
        return u * np.maximum(0.0, 1.0 - tau / np.maximum(np.abs(u), 1e-30))

    def __call__(self, sweeps: np.ndarray) -> np.ndarray:
        return self.magnitudes(self.complex_images(sweeps))

    def magnitudes(self, x: np.ndarray) -> np.ndarray:
        """(B, N) complex images -> (B, nx, ny, nz) magnitudes normalized to max 1."""
        return normalize_max(np.abs(x).reshape(len(x), *self.cfg.image_shape))


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


def refine_on_support(forward, adjoint, x: np.ndarray, sweeps: np.ndarray, support: float,
                      iterations: int = REFINE_ITERATIONS) -> np.ndarray:
    """Least squares on a support: conjugate gradients on the normal equations of
    min ||A x - y||^2 over the voxels of each image in ``x`` (B, N) above ``support`` of its
    peak, starting from ``x`` there; the voxels outside stay zero."""
    y = np.asarray(sweeps, np.complex64)
    mask = np.abs(x) > support * np.abs(x).max(axis=1, keepdims=True)
    x = np.where(mask, x, 0).astype(np.complex64)
    r = np.where(mask, adjoint(y - forward(x)), 0)
    p, rr = r.copy(), _power(r)
    for _ in range(iterations):
        q = np.where(mask, adjoint(forward(p)), 0)
        alpha = rr / np.maximum(np.sum(np.conj(p) * q, axis=1, keepdims=True).real, 1e-30)
        x += alpha * p
        r -= alpha * q
        rr_new = _power(r)
        p = r + (rr_new / np.maximum(rr, 1e-30)) * p
        rr = rr_new
    return x


def _power(v: np.ndarray) -> np.ndarray:
    return np.sum(v.real ** 2 + v.imag ** 2, axis=1, keepdims=True)


class Debiased:
    """A FISTA solver followed by ``refine_on_support``: (B, K, T, R) sweeps -> (B, nx, ny,
    nz) float32 magnitudes normalized to max 1."""

    def __init__(self, solver: FistaL1, support: float,
                 iterations: int = REFINE_ITERATIONS):
        self.solver, self.support, self.iterations = solver, support, iterations

    def __call__(self, sweeps: np.ndarray) -> np.ndarray:
        return self.refine(self.solver.complex_images(sweeps), sweeps)

    def refine(self, x: np.ndarray, sweeps: np.ndarray) -> np.ndarray:
        """The solver's complex images ``x`` of ``sweeps`` -> debiased magnitudes."""
        s = self.solver
        return s.magnitudes(refine_on_support(s.A, s.AH, x, sweeps, self.support,
                                              self.iterations))


def choose_support(solver: FistaL1, sweeps: np.ndarray, truth: np.ndarray, score,
                   supports=SUPPORTS) -> tuple[float, dict]:
    """The debiasing support threshold with the best mean ``score`` after ``solver`` on the
    validation scenes given; returns it and every threshold's mean score."""
    x = solver.complex_images(sweeps)
    means = {}
    for support in supports:
        images = Debiased(solver, support).refine(x, sweeps)
        means[support] = float(np.mean([score(m, t) for m, t in zip(images, truth)]))
    return max(means, key=means.get), means


def choose_lambda(cfg: RadarConfig, sweeps: np.ndarray, truth: np.ndarray, score,
                  budgets=BUDGETS, lambdas=LAMBDAS, solver=FistaL1,
                  progress=None) -> tuple[dict, dict]:
    """For each iteration budget, the lambda of ``solver`` (a FISTA class) with the best
    mean ``score(image, truth)`` (higher is better) on the validation scenes given, from one
    run per lambda: returns {budget: lambda} and {(lambda, budget): mean score};
    ``progress(done, total)`` after each lambda."""
    forward, adjoint = ForwardOperator(cfg), ImageFormation(cfg, "adjoint")
    means = {}
    for done, lam in enumerate(lambdas, 1):
        solver_at = solver(cfg, lam, max(budgets), forward, adjoint)
        for i, x in solver_at.iterates(sweeps, budgets):
            images = solver_at.magnitudes(x)
            means[lam, i] = float(np.mean([score(m, t) for m, t in zip(images, truth)]))
        if progress:
            progress(done, len(lambdas))
    return {i: max(lambdas, key=lambda lam: means[lam, i]) for i in budgets}, means
