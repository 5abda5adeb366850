"""Support-prior reconstruction (torch): physics, a learned map of where the reflectors are,
physics again; one ONNX graph per configuration, sweep in, image out.

1. b = A^H y, then ``steps`` FISTA-L1 steps from zero with the exact operator (threshold
   ``FEATURE_LAMBDA`` of b's peak): x_K.
2. A 3D U-Net of the normalized magnitudes |b| and |x_K| gives each voxel's probability p of
   holding a reflector (trained by binary cross-entropy against the truth's support).
3. The linear MMSE estimate under that prior: every voxel a zero-mean complex Gaussian of
   variance p^gamma (a reflector's voxels carry phases of their own), white noise of power
   mu: x = W A^H (A W A^H + mu I)^-1 y with W = diag(p^gamma), by conjugate gradients on
   the ``top_k`` voxels of highest prior (the rest have next to none) with the exact
   operator's columns there; mu is ``noise`` times the mean signal power per measurement,
   trace(A W A^H) / M. ``gamma`` and ``noise`` are chosen on validation scenes.

The network only answers where: a local question, which the physics' images answer in part
whatever the shape. The amplitudes come from the data by least squares, as the debiasing
step's do; a soft prior rather than a hard support keeps a voxel the network doubts
(least squares on a thresholded support is 1.2 dB worse on unseen `published` shapes, ad
hoc). The output is the estimate's magnitude, max 1.
"""
from __future__ import annotations

import torch
from torch import nn

from .geometry import RadarConfig
from .network import EPS, BornTables, UNet3d, normalize_peak
from .sparse import lipschitz
from .unrolled import conjugate_gradients, data_image, fista_steps

#: FISTA-L1's threshold in the feature steps, a fraction of A^H y's peak
FEATURE_LAMBDA = 0.01
#: conjugate-gradient iterations of the MMSE estimate
CG_ITERATIONS = 30


class SupportReconstructor(nn.Module):
    """(B, 1, K, T, R, 2) interleaved sweeps -> (B, 1, nx, ny, nz) magnitude, max 1."""

    def __init__(self, cfg: RadarConfig, widths=(16, 32, 64), steps: int = 8,
                 top_k: int = 1024, lip: float | None = None,
                 cg_iterations: int = CG_ITERATIONS):
        super().__init__()
        self.image_shape, self.steps, self.cg_iterations = cfg.image_shape, steps, cg_iterations
        self.top_k = min(top_k, cfg.n_voxels)
        self.born = BornTables(cfg, dense=True)
        self.net = UNet3d(tuple(widths), in_ch=2, logits=True)
        self.register_buffer("lip", torch.tensor(lip or lipschitz(cfg, steps=30),
                                                 dtype=torch.float32))
        self.register_buffer("gamma", torch.tensor(2.0))
        self.register_buffer("noise", torch.tensor(0.03))

    def set_prior(self, gamma: float, noise: float) -> None:
        self.gamma.fill_(gamma)
        self.noise.fill_(noise)

    def forward(self, sweep):
        ops, y_re, y_im, feats = self.features(sweep)
        return self.estimate(ops, y_re, y_im, torch.sigmoid(self.net(feats)).flatten(1))

    def features(self, sweep):
        """(operands, y re, y im (B, M), features (B, 2, nx, ny, nz)): |A^H y| and |x_K|,
        each over its peak."""
        ops = self.born.tables()
        b_re, b_im, b_mag = data_image(ops, sweep, self.lip)
        zero = torch.zeros_like(b_re)
        x_re, x_im = fista_steps(zero, zero, b_re, b_im, ops.p_re, ops.p_im, self.lip,
                                 torch.tensor(FEATURE_LAMBDA), self.steps, True)
        x_mag = torch.sqrt(x_re * x_re + x_im * x_im + EPS)
        feats = torch.stack([b_mag, x_mag / x_mag.amax(dim=1, keepdim=True).clamp_min(EPS)], 1)
        y_re, y_im = sweep[:, 0, ..., 0], sweep[:, 0, ..., 1]
        b = sweep.shape[0]
        return (ops, y_re.reshape(b, -1), y_im.reshape(b, -1),
                feats.reshape(b, 2, *self.image_shape))

    def estimate(self, ops, y_re, y_im, prob):
        """The MMSE estimate's magnitude (B, 1, nx, ny, nz), max 1, under the prior
        ``prob`` ** gamma (B, N) on its top_k voxels."""
        b, n = prob.shape
        w, idx = torch.topk(prob.clamp_min(EPS) ** self.gamma, self.top_k, dim=1)
        d = torch.sqrt(w)                                                # (B, k)
        flat = idx.reshape(-1)
        c_re = ops.p_re.index_select(0, flat).reshape(b, self.top_k, -1)  # P's rows, (B, k, M)
        c_im = ops.p_im.index_select(0, flat).reshape(b, self.top_k, -1)
        rms = torch.sqrt((y_re * y_re + y_im * y_im).mean(dim=1, keepdim=True)).clamp_min(EPS)
        y_re, y_im = y_re / rms, y_im / rms
        m = c_re.shape[-1]
        mu = self.noise * (w * (c_re * c_re + c_im * c_im).sum(-1)).sum(1, keepdim=True) / m

        def apply(z_re, z_im):   # (B^H B + mu) z with B = A_S D: y = conj(P_S)^T (d z)
            u = torch.stack([d * z_re, d * z_im], 1)                         # (B, 2, k)
            ur, ui = torch.bmm(u, c_re), torch.bmm(u, c_im)                   # (B, 2, M)
            g_re, g_im = adjoint(ur[:, 0] + ui[:, 1], ur[:, 1] - ui[:, 0])
            return g_re + mu * z_re, g_im + mu * z_im

        def adjoint(a_re, a_im):   # D P_S a: (B, M) -> (B, k); each matrix read once
            a = torch.stack([a_re, a_im], 2)                                  # (B, M, 2)
            sr, si = torch.bmm(c_re, a), torch.bmm(c_im, a)                   # (B, k, 2)
            return d * (sr[..., 0] - si[..., 1]), d * (sr[..., 1] + si[..., 0])

        r_re, r_im = adjoint(y_re, y_im)
        zero = torch.zeros_like(r_re)
        z_re, z_im = conjugate_gradients(apply, zero, zero, r_re, r_im, self.cg_iterations)
        mag = d * torch.sqrt(z_re * z_re + z_im * z_im + EPS)                 # |x_S|
        image = torch.zeros_like(prob).scatter(1, idx, mag)
        return normalize_peak(image.reshape(b, 1, *self.image_shape))
