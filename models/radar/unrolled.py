"""Unrolled reconstruction (torch): accelerated proximal-gradient steps with the exact Born
operator, each followed by a learned denoiser; one ONNX graph per configuration, sweep in,
image out.

Each iteration is a gradient step on ||A x - y||^2 with the forward and adjoint operators
(the same tensor code as ``ForwardLayer``/``AdjointLayer``), a denoiser, and a momentum
step; step sizes, momenta and thresholds are learned per iteration and initialized at
FISTA's. The denoiser keeps each voxel's phase and sets its gain: a complex soft threshold
at a learned fraction of the peak, corrected per voxel by a small 3D CNN of the normalized
magnitudes of the current estimate and of the data image A^H y. A reflector whose voxels
each carry an independent random phase has all its structure in the magnitudes; a gain
that sees only normalized magnitudes makes the whole network equivariant to the sweep's
scale and global phase, and the physics (not a learned shape prior) does the imaging.

On shapes the training never saw the learned steps stop short of the data, and a learned
threshold, like L1's, leaves the kept voxels' amplitudes biased; so the graph can end with a
classical tail chosen on validation scenes after training: plain FISTA-L1 steps from the
network's estimate (``fista_polish``, an ONNX Loop whose count is an optional graph input),
then the classical debiasing step on the support found (``refine_on_support``: conjugate
gradients on least squares over the voxels above a fraction of the peak, the same
operators).

The operator is the dense one (``DenseOperands``: the K T R x N matrix, re and im, computed
from the geometry once per call and shared by every iteration; ONNX Runtime folds it into a
constant at load, so the file stays small): every application reads it once, whatever the
batch, where the per-antenna form's products grow with it (published, 2 cores, ONNX Runtime,
batch 4: about 65 ms a frame against 95, for 574 MB of matrix and ~8 s of loading).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .geometry import RadarConfig
from .network import EPS, BornTables, dense_adjoint, dense_forward, normalize_peak
from .sparse import REFINE_ITERATIONS, lipschitz


class GainDenoiser(nn.Module):
    """(v, b) complex images (B, N) parts -> g v: each voxel keeps its phase and gets the
    gain ReLU(1 + h - tau / m), m = |v| / max|v|: a complex soft threshold at tau of the
    peak (FISTA's proximal step) corrected by h, a 3D CNN of m and |b| / max|b| (zero at
    initialization)."""

    def __init__(self, image_shape, width: int = 8, tau: float = 0.1):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.tau = nn.Parameter(torch.tensor(float(tau)))
        self.net = nn.Sequential(
            nn.Conv3d(2, width, 3, padding=1), nn.ReLU(),
            nn.Conv3d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv3d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv3d(width, 1, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, v_re, v_im, b_mag):
        mag = torch.sqrt(v_re * v_re + v_im * v_im + EPS)
        rel = mag / mag.amax(dim=1, keepdim=True).clamp_min(EPS)
        feat = torch.stack([rel, b_mag], dim=1).reshape(-1, 2, *self.image_shape)
        gain = torch.relu(1.0 + self.net(feat).flatten(1) - self.tau / (rel + 1e-6))
        return v_re * gain, v_im * gain


def data_image(ops, sweep, lip):
    """b = A^H y scaled to peak ``lip`` (re, im) and |b| / its peak, for (B, 1, K, T, R, 2)
    sweeps: the scale of the sweep removed, as the learned steps and FISTA's thresholds
    (fractions of b's peak) want it."""
    b_re, b_im = ops.adjoint(sweep[:, 0, ..., 0], sweep[:, 0, ..., 1])
    b_mag = torch.sqrt(b_re * b_re + b_im * b_im + EPS)
    peak = b_mag.amax(dim=1, keepdim=True).clamp_min(EPS)
    return b_re / peak * lip, b_im / peak * lip, b_mag / peak


def fista_step(x_re, x_im, z_re, z_im, t, b_re, b_im, p_re, p_im, lip, lam,
               skip_operator: bool = False):
    """One FISTA-L1 step from (x, z, t) (``fista_steps``); returns the next (x, z, t)."""
    if skip_operator:
        g_re, g_im = torch.zeros_like(z_re), torch.zeros_like(z_im)
    else:
        a_re, a_im = dense_forward(p_re, p_im, z_re, z_im)
        g_re, g_im = dense_adjoint(p_re, p_im, a_re, a_im)
    return fista_update(x_re, x_im, z_re, z_im, t, g_re, g_im, b_re, b_im, lip, lam)


def fista_update(x_re, x_im, z_re, z_im, t, g_re, g_im, b_re, b_im, lip, lam):
    """FISTA-L1's step from (x, z, t) given g = A^H A z: a gradient step of 1 / ``lip``, a
    complex soft threshold at ``lam``, the momentum; returns the next (x, z, t)."""
    u_re, u_im = z_re - (g_re - b_re) / lip, z_im - (g_im - b_im) / lip
    gain = torch.relu(1.0 - lam / torch.sqrt(u_re * u_re + u_im * u_im + 1e-12))
    n_re, n_im = u_re * gain, u_im * gain
    t_next = (1.0 + torch.sqrt(1.0 + 4.0 * t * t)) / 2.0
    momentum = (t - 1.0) / t_next
    return (n_re, n_im, n_re + momentum * (n_re - x_re), n_im + momentum * (n_im - x_im),
            t_next)


def fista_steps(x_re, x_im, b_re, b_im, p_re, p_im, lip, lam, steps: int,
                from_zero: bool = False):
    """FISTA-L1 on ||A x - b'||^2 from x (B, N parts): ``steps`` proximal-gradient steps of
    1 / ``lip`` with the dense operator (``p_re``, ``p_im``), each a complex soft threshold
    at ``lam`` (b's peak is ``lip``: a fraction of the data image's peak, as
    ``sparse.FistaL1``'s lambda). ``from_zero``: x is zero, so the first step's gradient is
    -b without the operator. Traced, a fixed count unrolls in the exported graph (ONNX
    Runtime runs a Loop's body without the optimizations it gives the main graph: the
    support network's 8 steps took 26 ms more a published frame as a Loop)."""
    z_re, z_im, t = x_re, x_im, torch.ones_like(lip)
    for i in range(steps):
        x_re, x_im, z_re, z_im, t = fista_step(x_re, x_im, z_re, z_im, t, b_re, b_im, p_re,
                                               p_im, lip, lam, from_zero and i == 0)
    return x_re, x_im


@torch.jit.script
def fista_polish(x_re, x_im, b_re, b_im, p_re, p_im, lip, lam, iterations,
                 from_zero: bool = False):
    """``fista_steps`` with ``iterations`` an int64 tensor: a graph input once exported
    (ONNX's Loop)."""
    return fista_steps(x_re, x_im, b_re, b_im, p_re, p_im, lip, lam, int(iterations),
                       from_zero)


def refine_on_support(ops, x_re, x_im, b_re, b_im, support, iterations: int):
    """Conjugate gradients on A^H A x = b (``ops``: ``BornTables.tables()``) over the voxels
    of x (B, N parts) above ``support`` of its peak, from x there
    (``sparse.refine_on_support`` in torch); zero elsewhere."""
    mag = torch.sqrt(x_re * x_re + x_im * x_im)
    mask = (mag > support * mag.amax(dim=1, keepdim=True)).to(x_re.dtype)
    x_re, x_im = x_re * mask, x_im * mask

    def normal(v_re, v_im):
        g_re, g_im = ops.adjoint(*ops.forward(v_re, v_im))
        return g_re * mask, g_im * mask

    g_re, g_im = normal(x_re, x_im)
    return conjugate_gradients(normal, x_re, x_im, (b_re - g_re) * mask, (b_im - g_im) * mask,
                               iterations)


def conjugate_gradients(apply, x_re, x_im, r_re, r_im, iterations: int):
    """``iterations`` conjugate-gradient steps on a Hermitian positive definite system M x =
    c, batched over the first axis: ``apply`` maps v (re, im) to M v; x (re, im) is the
    start and r = c - M x its residual. Returns x."""
    p_re, p_im = r_re, r_im
    rr = (r_re * r_re + r_im * r_im).sum(dim=1, keepdim=True)
    for _ in range(iterations):
        q_re, q_im = apply(p_re, p_im)
        alpha = rr / (p_re * q_re + p_im * q_im).sum(dim=1, keepdim=True).clamp_min(EPS)
        x_re, x_im = x_re + alpha * p_re, x_im + alpha * p_im
        r_re, r_im = r_re - alpha * q_re, r_im - alpha * q_im
        rr_new = (r_re * r_re + r_im * r_im).sum(dim=1, keepdim=True)
        beta = rr_new / rr.clamp_min(EPS)
        p_re, p_im = r_re + beta * p_re, r_im + beta * p_im
        rr = rr_new
    return x_re, x_im


class UnrolledReconstructor(nn.Module):
    """(B, 1, K, T, R, 2) interleaved sweeps -> (B, 1, nx, ny, nz) magnitude, max 1.

    Accelerated proximal gradient (FISTA's shape) with learned step, momentum, threshold
    and a learned correction of the proximal step per iteration::

        b = A^H y / max|A^H y| * L      (scale: the sweep's own, removed)
        v_i = z_i - (eta_i / L) (A^H A z_i - b)
        x_{i+1} = g_i(v_i) v_i
        z_{i+1} = x_{i+1} + mu_i (x_{i+1} - x_i)         (x_0 = z_0 = 0; image |x_n|)

    then ``polish_iterations`` steps of plain FISTA-L1 from x_n (threshold ``polish_lam``
    of b's peak; the count is the exported graph's optional input ``polish_iterations``,
    the chosen one by default) and, with ``refine`` > 0, that many conjugate-gradient
    iterations of least squares on the voxels above ``support`` of the peak of the result
    (the image is their magnitude).
    """

    def __init__(self, cfg: RadarConfig, iterations: int = 10, width: int = 8,
                 lip: float | None = None, tau: float = 0.1, refine: int = 0,
                 support: float = 0.2):
        super().__init__()
        self.refine = refine
        self.register_buffer("support", torch.tensor(float(support)))
        self.register_buffer("polish_lam", torch.tensor(0.0))
        self.register_buffer("polish_iterations", torch.tensor(0, dtype=torch.int64))
        self.image_shape, self.iterations = cfg.image_shape, iterations
        self.born = BornTables(cfg, dense=True)
        lip = lip or lipschitz(cfg, steps=30)
        self.register_buffer("lip", torch.tensor(lip, dtype=torch.float32))
        self.log_eta = nn.Parameter(torch.zeros(iterations))   # step eta_i = exp(log_eta_i)
        t, mu = 1.0, []
        for _ in range(iterations - 1):   # the last iteration's output is the image
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            mu.append((t - 1) / t_next)
            t = t_next
        self.mu = nn.Parameter(torch.tensor(mu, dtype=torch.float32))
        self.denoisers = nn.ModuleList(GainDenoiser(cfg.image_shape, width, tau)
                                       for _ in range(iterations))

    def set_refinement(self, support: float | None, iterations: int) -> None:
        """The debiasing step on the voxels above ``support`` of the peak, ``iterations``
        conjugate-gradient iterations; off with ``support`` None."""
        self.refine = iterations if support else 0
        self.support.fill_(support or 0.0)

    def set_polish(self, lam: float, iterations: int) -> None:
        """FISTA-L1's steps after the learned ones: ``iterations`` by default (0: none)."""
        self.polish_lam.fill_(lam)
        self.polish_iterations.fill_(iterations)

    def forward(self, sweep, polish_iterations=None):
        """``polish_iterations`` (an int64 tensor) overrides the chosen FISTA step count;
        with neither, the graph has no FISTA steps."""
        count = polish_iterations
        if count is None and int(self.polish_iterations):
            count = self.polish_iterations
        ops, x_re, x_im, b_re, b_im = self.estimate(sweep)
        if count is not None:
            x_re, x_im = self.polish(ops, x_re, x_im, b_re, b_im, self.polish_lam, count)
        return self.finish(ops, x_re, x_im, b_re, b_im, self.support if self.refine else None)

    def polish(self, ops, x_re, x_im, b_re, b_im, lam, count):
        """``count`` FISTA-L1 steps at ``lam`` from x (``estimate``'s outputs)."""
        return fista_polish(x_re, x_im, b_re, b_im, ops.p_re, ops.p_im, self.lip, lam, count)

    def finish(self, ops, x_re, x_im, b_re, b_im, support):
        """The debiasing step on the voxels above ``support`` of the peak (none with None),
        then the image: (B, 1, nx, ny, nz) magnitude, max 1."""
        if support is not None:
            x_re, x_im = refine_on_support(ops, x_re, x_im, b_re, b_im, support,
                                           self.refine or REFINE_ITERATIONS)
        mag = torch.sqrt(x_re * x_re + x_im * x_im + EPS).reshape(-1, 1, *self.image_shape)
        return normalize_peak(mag)

    def estimate(self, sweep):
        """The learned iterations: (operands, x_n re, im, b re, im), b the data image scaled
        to peak ``lip``."""
        ops = self.born.tables()
        b_re, b_im, b_mag = data_image(ops, sweep, self.lip)
        x_re = x_im = z_re = z_im = torch.zeros_like(b_re)
        for i, denoise in enumerate(self.denoisers):
            step = torch.exp(self.log_eta[i]) / self.lip
            if i == 0:
                v_re, v_im = step * b_re, step * b_im
            else:
                g_re, g_im = ops.adjoint(*ops.forward(z_re, z_im))
                v_re, v_im = z_re - step * (g_re - b_re), z_im - step * (g_im - b_im)
            new_re, new_im = denoise(v_re, v_im, b_mag)
            if i < len(self.mu):
                z_re = new_re + self.mu[i] * (new_re - x_re)
                z_im = new_im + self.mu[i] * (new_im - x_im)
            x_re, x_im = new_re, new_im
        return ops, x_re, x_im, b_re, b_im
