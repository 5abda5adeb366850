"""Support-prior reconstruction (torch): physics, a learned map of where the reflectors are,
physics again; one ONNX graph per configuration, sweep in, image out.

1. b = A^H y, then ``steps`` FISTA-L1 steps from zero with the exact operator (threshold
   ``FEATURE_LAMBDA`` of b's peak): x_K. The operator is dense and folded by the array's
   symmetries (``FoldedOperands``: a quarter of the bytes a step reads on X-shaped arrays).
2. A 3D U-Net of the normalized magnitudes |b| and |x_K| gives each voxel's probability p of
   holding a reflector (trained by binary cross-entropy against the truth's support).
3. The linear MMSE estimate under that prior: every voxel a zero-mean complex Gaussian of
   variance p^gamma (a reflector's voxels carry phases of their own), white noise of power
   mu: x = W A^H (A W A^H + mu I)^-1 y with W = diag(p^gamma), on the ``top_k`` voxels of
   highest prior (the rest have next to none), by conjugate gradients with the Gram
   matrix A_S^H A_S of the exact operator's columns there (``VoxelColumns``, built from
   per-antenna factors; ``VoxelSystem``): one matmul of M-long rows a frame, then an
   iteration is one k x k product. mu is ``noise`` times the mean signal power per
   measurement, trace(A W A^H) / M. ``gamma`` and ``noise`` are chosen on validation
   scenes.
4. ``rounds`` reweighted estimates (0-3, chosen on validation scenes with the prior) for a
   sparse scene: each round's prior variance is the network's times the last estimate's
   |x|^2 (peak 1), the expectation-maximization update of sparse Bayesian learning without
   its posterior variance term, on the ``ROUND_VOXELS`` voxels of highest variance (all
   among the first estimate's, so each round takes its rows of the same Gram matrix). The
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
from .unrolled import data_image, fista_update

#: FISTA-L1's threshold in the feature steps, a fraction of A^H y's peak
FEATURE_LAMBDA = 0.01
#: the MMSE estimate's voxels and conjugate-gradient iterations, and each reweighting
#: round's. On `published`'s 32 validation scenes (ad hoc, the shipped network and prior;
#: mean NMSE of the first estimate / after the gated rounds; the MMSE steps' time a frame
#: in torch, one run each, which moves by a third from run to run): 1024 voxels, 30
#: iterations, rounds on 512 (the shipped choice before the Gram matrix, each iteration
#: two passes over the voxels' per-antenna factors): -3.35 / -7.28 dB, 271 ms; 512, 30,
#: 512: -3.17 / -7.09; 512, 60, 256: -3.37 / -7.21; 512, 80, 256 (these): -3.42 / -7.27,
#: 51 ms; 512, 100, 256: -3.43 / -7.27; 448, 80, 256: -3.33 / -7.19; 640, 100, 256: -3.55
#: / -7.40, 99 ms; 768, 60, 512: -3.53 / -7.36, 184 ms. The Gram matrix's cost grows as
#: the voxels squared (~12 ms a `published` frame at 512 in ONNX Runtime on this project's
#: 2 cores), an iteration's with the bytes of its real form (16 MB for a batch of 4 at
#: 512). Earlier (rounds on every scene, 512 voxels a round): the rounds -5.31 / -6.11 /
#: -6.32 dB after 1, 2, 3 at 1024 voxels, the same at 512, -5.22 / -6.04 / -6.26 at 256;
#: 30 iterations a round instead of 60: -5.03 / -5.51 / -5.71. Seeded by the physics alone
#: (|x_K|^2 for the network's map) the same rounds reach -3.4 dB: the learned map is what
#: they refine. Those means are the sparse scenes' (one of 5 reflector voxels: -24 -> -72
#: dB); the extended ones lose, hence ``sparse_below``. The first estimate's iterations
#: per configuration: `small`'s 32 validation scenes (same measures) read -8.89 / -19.48
#: at 80, -9.04 / -19.49 at 50, -9.10 / -19.49 at 40, -9.14 / -19.47 at 30, -9.04 / -19.31
#: at 20; each of its iterations costs ~1.3 ms a frame in ONNX Runtime (a batch of 4).
#: Other configurations take `published`'s count
TOP_K = 512
CG_ITERATIONS = {"published": 80, "small": 40}
ROUND_VOXELS = 256
ROUND_ITERATIONS = 60
#: a voxel outside the last estimate keeps this fraction of its peak magnitude as its
#: weight (squared), so that a round may still pick it
ROUND_FLOOR = 1e-3


class SupportReconstructor(nn.Module):
    """(B, 1, K, T, R, 2) interleaved sweeps -> (B, 1, nx, ny, nz) magnitude, max 1."""

    def __init__(self, cfg: RadarConfig, widths=(16, 32, 64), steps: int = 8,
                 top_k: int = TOP_K, lip: float | None = None,
                 cg_iterations: int | None = None):
        super().__init__()
        self.image_shape, self.steps = cfg.image_shape, steps
        self.cg_iterations = cg_iterations or CG_ITERATIONS.get(cfg.name,
                                                                CG_ITERATIONS["published"])
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
        reweighted ones], images (B, 1, nx, ny, nz) with peak 1. Every estimate solves on
        the first's ``top_k`` voxels (a round's voxels of highest variance are among them:
        outside, the prior and the last estimate are both no larger), so one Gram matrix
        serves them all."""
        w = prob.clamp_min(EPS) ** self.gamma
        w_set, idx = torch.topk(w, self.top_k, dim=1)
        columns = VoxelColumns.gather(VoxelColumns.factors(self.born), idx)
        system = VoxelSystem.of(columns, y_re, y_im)
        mag = system.mmse(w_set, self.noise, self.cg_iterations)
        images = [self.image(mag, idx)]
        for _ in range(int(self.rounds)):
            x = (mag / mag.amax(dim=1, keepdim=True).clamp_min(EPS)).clamp_min(ROUND_FLOOR)
            v, sub = torch.topk(w_set * x * x, min(ROUND_VOXELS, self.top_k), dim=1)
            mag = system.subset(sub).mmse(v, self.noise, ROUND_ITERATIONS)
            mag = torch.zeros_like(w_set).scatter(1, sub, mag)
            images.append(self.image(mag, idx))
        return images

    def image(self, mag, idx):
        """(B, k) magnitudes at voxels ``idx`` -> (B, 1, nx, ny, nz) image, peak 1."""
        image = torch.zeros(mag.shape[0], math.prod(self.image_shape), dtype=mag.dtype)
        return normalize_peak(image.scatter(1, idx, mag).reshape(-1, 1, *self.image_shape))

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


class VoxelColumns(NamedTuple):
    """The Born operator on k voxels a frame (A_S, M x k), kept as its per-antenna factors:
    A_S's column i at (f, t, r) is conj(g_t(f, i) g_r(f, i)). The MMSE step takes A_S^H y
    (``adjoint``: K (T + R) k numbers read, not the K T R k of the columns) and the Gram
    matrix (``gram``) from them. The Tx and Rx factors are (B, K, T, k) and (B, K, R, k),
    re and im."""
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

    def gram(self):
        """A_S^H A_S (Hermitian) in its real form [[re, -im], [im, re]] (B, 2k, 2k), from
        the explicit columns u = g_t g_r (A_S = conj(u), (B, M, k)): re = [u_re; u_im]^T
        [u_re; u_im], im = X^T - X with X = u_re^T u_im. Two matmuls of M-long rows, k^2
        (3M) products a frame; then each conjugate-gradient iteration is one matmul with
        it."""
        b, k = self.t_re.shape[0], self.t_re.shape[-1]
        t_re, t_im = self.t_re[:, :, :, None], self.t_im[:, :, :, None]   # (B, K, T, 1, k)
        g_re, g_im = self.g_re[:, :, None], self.g_im[:, :, None]         # (B, K, 1, R, k)
        u_re = (t_re * g_re - t_im * g_im).reshape(b, -1, k)               # (B, M, k)
        u_im = (t_re * g_im + t_im * g_re).reshape(b, -1, k)
        u = torch.cat([u_re, u_im], 1)
        re = torch.matmul(u.transpose(1, 2), u)
        x = torch.matmul(u_re.transpose(1, 2), u_im)
        im = x.transpose(1, 2) - x
        return torch.cat([torch.cat([re, -im], 2), torch.cat([im, re], 2)], 1)

    def adjoint(self, a_re, a_im):
        """A_S^H a: (B, K, T, R) parts -> (B, k) parts; one matmul over the Rx antennas
        with g_r, then g_t's products summed over frequency and Tx antenna."""
        t = self.t_re.shape[2]
        a = torch.cat([a_re, a_im], 2)                                      # (B, K, 2T, R)
        w_re, w_im = torch.matmul(a, self.g_re), torch.matmul(a, self.g_im)  # (B, K, 2T, k)
        z_re, z_im = w_re[:, :, :t] - w_im[:, :, t:], w_im[:, :, :t] + w_re[:, :, t:]
        return ((self.t_re * z_re - self.t_im * z_im).sum((1, 2)),
                (self.t_re * z_im + self.t_im * z_re).sum((1, 2)))


class VoxelSystem(NamedTuple):
    """The normal equations on k voxels a frame, from the sweep normalized to unit power:
    A_S^H y (re, im, (B, k)) and A_S^H A_S in its real form (B, 2k, 2k, ``VoxelColumns.
    gram``); ``measurements`` is M."""
    r_re: torch.Tensor
    r_im: torch.Tensor
    gram: torch.Tensor
    measurements: int

    @classmethod
    def of(cls, columns: VoxelColumns, y_re, y_im) -> VoxelSystem:
        b = y_re.shape[0]
        shape = (b, *columns.t_re.shape[1:3], columns.g_re.shape[2])     # (B, K, T, R)
        rms = torch.sqrt((y_re * y_re + y_im * y_im).mean(dim=1, keepdim=True)).clamp_min(EPS)
        r_re, r_im = columns.adjoint((y_re / rms).reshape(shape), (y_im / rms).reshape(shape))
        return cls(r_re, r_im, columns.gram(), y_re.shape[1])

    def subset(self, sub) -> VoxelSystem:
        """The same system on the voxels at positions ``sub`` (B, k') of these."""
        both = torch.cat([sub, sub + self.r_re.shape[1]], 1)              # re and im rows
        gram = self.gram.gather(1, both[:, :, None].expand(-1, -1, self.gram.shape[2]))
        gram = gram.gather(2, both[:, None, :].expand(-1, both.shape[1], -1))
        return VoxelSystem(self.r_re.gather(1, sub), self.r_im.gather(1, sub), gram,
                           self.measurements)

    def mmse(self, variance, noise, iterations: int):
        """|x| (B, k) of the MMSE estimate x = D (D G D + mu I)^-1 D A_S^H y under the prior
        ``variance`` (B, k) (D its square root, G the Gram matrix), with mu = ``noise``
        times the mean signal power per measurement (trace(D G D) / M: G's diagonal holds
        the columns' |a|^2); by ``iterations`` of conjugate gradients on the real form of
        the system, one matmul each."""
        k = variance.shape[1]
        norms = torch.diagonal(self.gram[:, :k, :k], dim1=1, dim2=2)        # |column|^2
        mu = noise * (variance * norms).sum(1, keepdim=True) / self.measurements
        d = torch.sqrt(torch.cat([variance, variance], 1))                # (B, 2k)
        system = d[:, :, None] * self.gram * d[:, None, :]                  # (B, 2k, 2k)
        rhs = d * torch.cat([self.r_re, self.r_im], 1)
        z = conjugate_gradients_real(system, mu[:, :, None], rhs[:, :, None], iterations)
        x = d * z[:, :, 0]
        return torch.sqrt(x[:, :k] * x[:, :k] + x[:, k:] * x[:, k:] + EPS)


def conjugate_gradients_real(system, shift, rhs, iterations: int):
    """``iterations`` conjugate-gradient steps on (system + shift I) x = rhs from zero,
    batched: system (B, n, n) symmetric positive semi-definite, shift (B, 1, 1) > 0, rhs
    (B, n, 1). Returns x (B, n, 1). Inner products are matmuls (one node each: the
    iterations are many and their vectors small, so nodes are what they cost)."""
    x, r, p = torch.zeros_like(rhs), rhs, rhs
    rr = torch.matmul(r.transpose(1, 2), r)
    for _ in range(iterations):
        q = torch.matmul(system, p) + shift * p
        alpha = rr / torch.matmul(p.transpose(1, 2), q).clamp_min(EPS)
        x, r = x + alpha * p, r - alpha * q
        rr_new = torch.matmul(r.transpose(1, 2), r)
        p = r + rr_new / rr.clamp_min(EPS) * p
        rr = rr_new
    return x
