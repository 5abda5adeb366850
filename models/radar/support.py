"""Support-prior reconstruction (torch): physics, a learned map of where the reflectors are,
physics again; one ONNX graph per configuration, sweep in, image out.

1. b = A^H y, then ``steps`` FISTA-L1 steps from zero with the exact operator (threshold
   ``FEATURE_LAMBDA`` of b's peak): x_K. The operator is dense and folded by the array's
   symmetries (``FoldedOperands``: a quarter of the bytes a step reads on X-shaped arrays).
2. A 3D U-Net of the normalized magnitudes |b| and |x_K| gives each voxel's probability p of
   holding a reflector (trained by binary cross-entropy against the truth's support).
3. The linear MMSE estimate under that prior: every voxel a zero-mean complex Gaussian of
   variance p^gamma (a reflector's voxels carry phases of their own), white noise of power
   mu: x = W A^H (A W A^H + mu I)^-1 y with W = diag(p^gamma), by conjugate gradients on
   the ``top_k`` voxels of highest prior (the rest have next to none) with the exact
   operator's columns there, kept as per-antenna factors (``VoxelColumns``); mu is
   ``noise`` times the mean signal power per measurement, trace(A W A^H) / M. ``gamma``
   and ``noise`` are chosen on validation scenes.
4. ``rounds`` reweighted estimates (0-3, chosen on validation scenes with the prior) for a
   sparse scene: each round's prior variance is the network's times the last estimate's
   |x|^2 (peak 1), the expectation-maximization update of sparse Bayesian learning without
   its posterior variance term, on the ``ROUND_VOXELS`` voxels of highest variance. The
   rounds are a sparsity prior: where a few reflectors' voxels hold the scene they recover
   it nearly exactly, but they draw an extended body's speckled estimate onto its
   brightest voxels (0.5-2 dB worse). So they replace the first estimate only where the
   network's map expects fewer than ``sparse_below`` reflector voxels (sum of p; chosen
   on validation scenes with the rest).

The network only answers where: a local question, which the physics' images answer in part
whatever the shape. The amplitudes come from the data by least squares, as the debiasing
step's do; a soft prior rather than a hard support keeps a voxel the network doubts
(least squares on a thresholded support is 1.2 dB worse on unseen `published` shapes, ad
hoc). The output is the estimate's magnitude, max 1.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from .geometry import RadarConfig
from .network import EPS, BornTables, UNet3d, normalize_peak
from .sparse import lipschitz
from .unrolled import conjugate_gradients, data_image, fista_update

#: FISTA-L1's threshold in the feature steps, a fraction of A^H y's peak
FEATURE_LAMBDA = 0.01
#: conjugate-gradient iterations of the MMSE estimate, and the voxels it solves for. Not
#: converged at 30 (`published` validation NMSE -3.70 dB; -4.08 at 60, -4.20 at 100, ad
#: hoc), but each iteration costs about 0.85 ms a frame; 512 voxels cut large targets short
CG_ITERATIONS = 30
TOP_K = 1024
#: each reweighting round's voxels and conjugate-gradient iterations. On `published`'s 32
#: validation scenes (ad hoc, the shipped network, rounds on every scene): the first
#: estimate -3.69 dB NMSE, after 1, 2, 3 rounds -5.31 / -6.11 / -6.32 at 1024 voxels,
#: -5.31 / -6.10 / -6.32 at 512, -5.22 / -6.04 / -6.26 at 256; 30 iterations a round
#: instead of 60: -5.03 / -5.51 / -5.71. Seeded by the physics alone (|x_K|^2 for the
#: network's map) the same rounds reach -3.4 dB: the learned map is what they refine. Those
#: means are the sparse scenes' (one of 5 reflector voxels: -24 -> -72 dB); the extended
#: ones lose, hence ``sparse_below``
ROUND_VOXELS = 512
ROUND_ITERATIONS = 60
#: a voxel outside the last estimate keeps this fraction of its peak magnitude as its
#: weight (squared), so that a round may still pick it
ROUND_FLOOR = 1e-3


class SupportReconstructor(nn.Module):
    """(B, 1, K, T, R, 2) interleaved sweeps -> (B, 1, nx, ny, nz) magnitude, max 1."""

    def __init__(self, cfg: RadarConfig, widths=(16, 32, 64), steps: int = 8,
                 top_k: int = TOP_K, lip: float | None = None,
                 cg_iterations: int = CG_ITERATIONS):
        super().__init__()
        self.image_shape, self.steps, self.cg_iterations = cfg.image_shape, steps, cg_iterations
        self.top_k = min(top_k, cfg.n_voxels)
        self.born = BornTables(cfg, dense=True, fold=True)
        self.net = UNet3d(tuple(widths), in_ch=2, logits=True)
        self.register_buffer("lip", torch.tensor(lip or lipschitz(cfg, steps=30),
                                                 dtype=torch.float32))
        self.register_buffer("gamma", torch.tensor(2.0))
        self.register_buffer("noise", torch.tensor(0.03))
        self.register_buffer("rounds", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("sparse_below", torch.tensor(math.inf))

    def set_prior(self, gamma: float, noise: float, rounds: int | None = None,
                  sparse_below: float | None = None) -> None:
        self.gamma.fill_(gamma)
        self.noise.fill_(noise)
        if rounds is not None:
            self.rounds.fill_(rounds)
        if sparse_below is not None:
            self.sparse_below.fill_(sparse_below)

    def forward(self, sweep):
        y_re, y_im, feats = self.features(sweep)
        return self.reconstruct(y_re, y_im, torch.sigmoid(self.net(feats)).flatten(1))

    def reconstruct(self, y_re, y_im, prob):
        """The image after the chosen rounds (a constant of the exported graph) where the
        network's map expects fewer than ``sparse_below`` reflector voxels, else the first
        estimate."""
        images = self.rounds_of(y_re, y_im, prob)
        if len(images) == 1:
            return images[0]
        return torch.where(self.sparse(prob), images[-1], images[0])

    def sparse(self, prob):
        """(B, 1, 1, 1, 1) bool: does the map expect fewer than ``sparse_below`` voxels?"""
        return (prob.sum(1) < self.sparse_below).reshape(-1, 1, 1, 1, 1)

    def rounds_of(self, y_re, y_im, prob) -> list:
        """[the first MMSE estimate under ``prob`` ** gamma, then each of ``rounds``
        reweighted ones], images (B, 1, nx, ny, nz) with peak 1."""
        factors = VoxelColumns.factors(self.born)   # once: every round gathers from them
        w = prob.clamp_min(EPS) ** self.gamma
        images = [self.mmse(y_re, y_im, w, self.top_k, self.cg_iterations, factors)]
        for _ in range(int(self.rounds)):
            x = images[-1].flatten(1).clamp_min(ROUND_FLOOR)
            images.append(self.mmse(y_re, y_im, w * x * x, min(ROUND_VOXELS, self.top_k),
                                    ROUND_ITERATIONS, factors))
        return images

    def features(self, sweep):
        """(y re, y im (B, M), features (B, 2, nx, ny, nz)): |A^H y| and |x_K|, each over
        its peak."""
        ops = self.born.tables()
        b_re, b_im, b_mag = data_image(ops, sweep, self.lip)
        x_re = x_im = z_re = z_im = g_re = g_im = torch.zeros_like(b_re)
        t, lam = torch.ones_like(self.lip), torch.tensor(FEATURE_LAMBDA)
        for i in range(self.steps):   # FISTA-L1 from zero (``fista_steps``), folded operator
            if i:
                g_re, g_im = ops.adjoint(*ops.forward(z_re, z_im))
            x_re, x_im, z_re, z_im, t = fista_update(x_re, x_im, z_re, z_im, t, g_re, g_im,
                                                     b_re, b_im, self.lip, lam)
        x_mag = torch.sqrt(x_re * x_re + x_im * x_im + EPS)
        feats = torch.stack([b_mag, x_mag / x_mag.amax(dim=1, keepdim=True).clamp_min(EPS)], 1)
        y_re, y_im = sweep[:, 0, ..., 0], sweep[:, 0, ..., 1]
        b = sweep.shape[0]
        return y_re.reshape(b, -1), y_im.reshape(b, -1), feats.reshape(b, 2, *self.image_shape)

    def mmse(self, y_re, y_im, variance, voxels: int, iterations: int, factors):
        """The MMSE estimate's magnitude (B, 1, nx, ny, nz), max 1, under the prior
        ``variance`` (B, N) on its ``voxels`` largest, by ``iterations`` of conjugate
        gradients; ``factors`` are ``VoxelColumns.factors``."""
        b, n = variance.shape
        w, idx = torch.topk(variance, voxels, dim=1)
        d = torch.sqrt(w)                                                # (B, k)
        cols = VoxelColumns.gather(factors, idx)
        shape = (b, *cols.t_re.shape[1:3], cols.g_re.shape[2])           # (B, K, T, R)
        rms = torch.sqrt((y_re * y_re + y_im * y_im).mean(dim=1, keepdim=True)).clamp_min(EPS)
        y_re, y_im = (y_re / rms).reshape(shape), (y_im / rms).reshape(shape)
        mu = self.noise * (w * cols.norms()).sum(1, keepdim=True) / y_re[0].numel()

        def apply(z_re, z_im):   # (B^H B + mu) z with B = A_S D
            g_re, g_im = cols.adjoint(*cols.forward(d * z_re, d * z_im))
            return d * g_re + mu * z_re, d * g_im + mu * z_im

        r_re, r_im = cols.adjoint(y_re, y_im)
        zero = torch.zeros_like(r_re)
        z_re, z_im = conjugate_gradients(apply, zero, zero, d * r_re, d * r_im, iterations)
        mag = d * torch.sqrt(z_re * z_re + z_im * z_im + EPS)                 # |x_S|
        image = torch.zeros_like(variance).scatter(1, idx, mag)
        return normalize_peak(image.reshape(b, 1, *self.image_shape))


class VoxelColumns(NamedTuple):
    """The Born operator on k voxels a frame (A_S, M x k), kept as its per-antenna factors:
    A_S's column i at (f, t, r) is conj(g_t(f, i) g_r(f, i)). Each application reads
    K (T + R) k numbers a frame instead of the K T R k of the gathered columns (a sixth for
    ``published``); the products over the antennas are batched matmuls. The Tx and Rx
    factors are (B, K, T, k) and (B, K, R, k), re and im."""
    t_re: torch.Tensor
    t_im: torch.Tensor
    g_re: torch.Tensor
    g_im: torch.Tensor

    @staticmethod
    def factors(born: BornTables) -> tuple:
        """Every voxel's factors: Tx (re, im) then Rx (re, im), (K, T, N) and (K, R, N)."""
        return (*born.kernel(born.tx, 4 * math.pi), *born.kernel(born.rx, 1.0))

    @classmethod
    def gather(cls, factors: tuple, idx) -> VoxelColumns:
        """The factors at voxels ``idx`` (B, k), from ``factors``' rows (one per voxel)."""
        b, k = idx.shape
        flat = idx.reshape(-1)

        def rows(table):   # (K, P, N) -> (B, K, P, k)
            n = table.shape[-1]
            picked = table.permute(2, 0, 1).reshape(n, -1).index_select(0, flat)
            return picked.reshape(b, k, table.shape[0], -1).permute(0, 2, 3, 1)

        return cls(*(rows(table) for table in factors))

    def norms(self):
        """|column|^2 (B, k): per frequency, the Tx factor's times the Rx factor's."""
        t = (self.t_re * self.t_re + self.t_im * self.t_im).sum(2)
        g = (self.g_re * self.g_re + self.g_im * self.g_im).sum(2)
        return (t * g).sum(1)

    def forward(self, v_re, v_im):
        """A_S v: (B, k) parts -> (B, K, T, R) parts; conj(g_t) v, then one matmul over the
        voxels with conj(g_r)."""
        t = self.t_re.shape[2]
        v_re, v_im = v_re[:, None, None], v_im[:, None, None]
        u = torch.cat([self.t_re * v_re + self.t_im * v_im,
                       self.t_re * v_im - self.t_im * v_re], 2)             # (B, K, 2T, k)
        p_re = torch.matmul(u, self.g_re.transpose(2, 3))                   # (B, K, 2T, R)
        p_im = torch.matmul(u, self.g_im.transpose(2, 3))
        return p_re[:, :, :t] + p_im[:, :, t:], p_re[:, :, t:] - p_im[:, :, :t]

    def adjoint(self, a_re, a_im):
        """A_S^H a: (B, K, T, R) parts -> (B, k) parts; one matmul over the Rx antennas
        with g_r, then g_t's products summed over frequency and Tx antenna."""
        t = self.t_re.shape[2]
        a = torch.cat([a_re, a_im], 2)                                      # (B, K, 2T, R)
        w_re, w_im = torch.matmul(a, self.g_re), torch.matmul(a, self.g_im)  # (B, K, 2T, k)
        z_re, z_im = w_re[:, :, :t] - w_im[:, :, t:], w_im[:, :, :t] + w_re[:, :, t:]
        return ((self.t_re * z_re - self.t_im * z_im).sum((1, 2)),
                (self.t_re * z_im + self.t_im * z_re).sum((1, 2)))
