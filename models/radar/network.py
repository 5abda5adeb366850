"""Learned radar reconstruction (torch): the adjoint as a layer, Deep2S and its complex variant.

Both networks are exported as one ONNX graph per configuration, sweep in, image out:

- ``deep2s``:  sweep -> A^H y -> |.| -> / max -> 3D U-Net (real) -> / max
- ``complex``: sweep -> A^H y -> / max|.| -> complex 3D U-Net (cvstream.models.nn) -> |.|
  -> / max

``AdjointLayer`` computes its per-antenna kernels from the geometry (positions, wavenumbers,
grid axes) inside the graph. Those nodes depend only on initializers, so ONNX Runtime folds
them into constants when it loads the model: the file stays a few hundred kB while the
session holds the K (T + R) N table. Training feeds the networks adjoint images computed once
by numpy (``ImageFormation``), which is the same operator.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import ComplexConv, UNetDown, UNetUp
from ..nn.layout import join, split
from .geometry import RadarConfig

EPS = 1e-12


class BornTables(nn.Module):
    """The geometry as buffers, and the per-antenna Born factors computed from it."""

    def __init__(self, cfg: RadarConfig):
        super().__init__()
        self.image_shape, self.sweep_shape = cfg.image_shape, cfg.sweep_shape
        f32 = dict(dtype=torch.float32)
        self.register_buffer("tx", torch.tensor(cfg.tx, **f32))
        self.register_buffer("rx", torch.tensor(cfg.rx, **f32))
        self.register_buffer("k", torch.tensor(cfg.wavenumbers, **f32))
        for axis in "xyz":
            self.register_buffer(f"axis_{axis}", torch.tensor(getattr(cfg, axis), **f32))

    def kernel(self, points, scale: float):
        """exp(+j k R) / (scale R) for these antennas: (re, im), each (K, P, N). The Born
        factors are its conjugates: scale 4 pi on the Tx side, 1 on the Rx side."""
        gx, gy, gz = torch.meshgrid(self.axis_x, self.axis_y, self.axis_z, indexing="ij")
        vox = torch.stack([gx.reshape(-1), gy.reshape(-1), gz.reshape(-1)], dim=1)
        dist = torch.sqrt(((points[:, None, :] - vox[None]) ** 2).sum(-1))     # (P, N)
        phase = self.k[:, None, None] * dist[None]
        amp = 1.0 / (scale * dist[None])
        return torch.cos(phase) * amp, torch.sin(phase) * amp

    def tables(self):
        """The operators' matrices, computed once per call and shared by every operator
        application in it: the Tx kernels (K, T, N) re and im, the Rx side stacked for one
        real matmul, (K, 2N, 2R) for A and (K, 2R, 2N) for A^H."""
        t_re, t_im = self.kernel(self.tx, 4 * math.pi)
        g_re, g_im = self.kernel(self.rx, 1.0)                       # (K, R, N)
        adj = torch.cat([torch.cat([g_re, g_im], -1), torch.cat([-g_im, g_re], -1)], 1)
        return t_re, t_im, adj.transpose(1, 2), adj


def born_forward(tables, x_re, x_im):
    """A x: (B, N) reflectivity parts -> (B, K, T, R) sweep parts. The batch rides along
    the Tx axis, so each frequency is one (B T, 2N) x (2N, 2R) matmul."""
    t_re, t_im, fwd, _ = tables
    k, t, n = t_re.shape
    t_re, t_im = t_re[:, None], t_im[:, None]                            # (K, 1, T, N)
    x_re, x_im = x_re[None, :, None], x_im[None, :, None]                # (1, B, 1, N)
    # u = conj(g_t) x, then y = u @ conj(g_r)^T, with (re, im) stacked into one matmul
    u = torch.cat([t_re * x_re + t_im * x_im, t_re * x_im - t_im * x_re], dim=-1)
    y = torch.matmul(u.reshape(k, -1, 2 * n), fwd)                       # (K, B T, 2R)
    y = y.reshape(k, -1, t, y.shape[-1]).transpose(0, 1)                 # (B, K, T, 2R)
    r = fwd.shape[-1] // 2
    return y[..., :r], y[..., r:]


def born_adjoint(tables, y_re, y_im):
    """A^H y: (B, K, T, R) sweep parts -> (B, N) image parts."""
    t_re, t_im, _, adj = tables
    k, t, n = t_re.shape
    y2 = torch.cat([y_re, y_im], dim=-1).transpose(0, 1)        # (K, B, T, 2R)
    z = torch.matmul(y2.reshape(k, -1, y2.shape[-1]), adj)      # (K, B T, 2N)
    z = z.reshape(k, -1, t, 2 * n)
    z_re, z_im = z[..., :n], z[..., n:]
    t_re, t_im = t_re[:, None], t_im[:, None]
    x_re = (t_re * z_re - t_im * z_im).sum(dim=(0, 2))
    x_im = (t_re * z_im + t_im * z_re).sum(dim=(0, 2))
    return x_re, x_im


class ForwardLayer(BornTables):
    """(B, 1, nx, ny, nz, 2) interleaved reflectivity -> (B, 1, K, T, R, 2) Born sweeps."""

    def forward(self, x):
        x_re, x_im = x[:, 0, ..., 0].flatten(1), x[:, 0, ..., 1].flatten(1)   # (B, N)
        y_re, y_im = born_forward(self.tables(), x_re, x_im)
        return torch.stack([y_re, y_im], dim=-1)[:, None]


class AdjointLayer(BornTables):
    """(B, 1, K, T, R, 2) interleaved sweeps -> (re, im) of A^H y, each (B, nx, ny, nz)."""

    def forward(self, sweep):
        y = sweep[:, 0]                                              # (B, K, T, R, 2)
        x_re, x_im = born_adjoint(self.tables(), y[..., 0], y[..., 1])
        shape = (-1, *self.image_shape)
        return x_re.reshape(shape), x_im.reshape(shape)


def pad_to(x, multiple: int):
    """Zero-pad the three spatial axes up to multiples of ``multiple``; returns (x, sizes)."""
    sizes = x.shape[-3:]
    pads = []
    for s in reversed(sizes):
        pads += [0, (-s) % multiple]
    return F.pad(x, pads), sizes


def normalize_peak(x):
    """Scale each example to a peak magnitude of 1."""
    peak = x.flatten(1).amax(dim=1).clamp_min(EPS)
    return x / peak.view(-1, *([1] * (x.dim() - 1)))


class UNet3d(nn.Module):
    """Real 3D U-Net: per level two 3x3x3 conv + batch norm + ReLU; max-pool / transposed
    conv between levels; 1x1x1 head with ReLU (a magnitude is >= 0, and empty voxels can be
    exactly 0, which a softplus head never gives; the haze it leaves costs 3D SSIM)."""

    def __init__(self, widths=(16, 32, 64), in_ch: int = 1):
        super().__init__()
        self.depth = len(widths) - 1

        def double(cin, cout):
            return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout),
                                 nn.ReLU(inplace=True), nn.Conv3d(cout, cout, 3, padding=1),
                                 nn.BatchNorm3d(cout), nn.ReLU(inplace=True))
        self.down = nn.ModuleList()
        cin = in_ch
        for w in widths:
            self.down.append(double(cin, w))
            cin = w
        self.up = nn.ModuleList(nn.ConvTranspose3d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(self.depth)))
        self.merge = nn.ModuleList(double(2 * widths[i], widths[i])
                                   for i in reversed(range(self.depth)))
        self.head = nn.Conv3d(widths[0], 1, 1)

    def forward(self, x):
        x, sizes = pad_to(x, 2 ** self.depth)
        skips = []
        for i, level in enumerate(self.down):
            x = level(x)
            if i < self.depth:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        x = F.relu(self.head(x))
        return x[..., :sizes[0], :sizes[1], :sizes[2]]


class ComplexUNet3d(nn.Module):
    """Complex 3D U-Net from the toolkit (complex convs, whitening batch norm, CReLU,
    magnitude max-pooling); split-layout input (B, 2, ...), output (B, 1, ...) the magnitude
    of the complex head less a learned threshold, ReLU'd (empty voxels exactly 0)."""

    def __init__(self, widths=(11, 22, 45)):
        super().__init__()
        self.depth = len(widths) - 1
        chans = (1, *widths)
        self.down = nn.ModuleList(UNetDown(chans[i], chans[i + 1], dims=3)
                                  for i in range(self.depth))
        self.bottom = UNetDown(widths[-2], widths[-1], dims=3).convs
        self.up = nn.ModuleList(UNetUp(widths[i + 1], widths[i], widths[i], dims=3)
                                for i in reversed(range(self.depth)))
        self.head = ComplexConv(widths[0], 1, 1, dims=3)
        self.threshold = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        x, sizes = pad_to(x, 2 ** self.depth)
        skips = []
        for level in self.down:
            x, skip = level(x)
            skips.append(skip)
        x = self.bottom(x)
        for level, skip in zip(self.up, reversed(skips)):
            x = level(x, skip)
        re, im = split(self.head(x))
        mag = F.relu(torch.sqrt(re * re + im * im + EPS) - self.threshold)
        return mag[..., :sizes[0], :sizes[1], :sizes[2]]


def network_input(kind: str, x_re, x_im):
    """What the network sees, from the adjoint image (B, nx, ny, nz) parts."""
    if kind == "deep2s":
        return normalize_peak(torch.sqrt(x_re * x_re + x_im * x_im + EPS)[:, None])
    mag = torch.sqrt(x_re * x_re + x_im * x_im + EPS)
    peak = mag.flatten(1).amax(dim=1).clamp_min(EPS).view(-1, 1, 1, 1, 1)
    return join(x_re[:, None], x_im[:, None]) / peak


class Reconstructor(nn.Module):
    """Sweep in, normalized magnitude image out: the graph that is exported."""

    def __init__(self, cfg: RadarConfig, kind: str, net: nn.Module):
        super().__init__()
        self.kind = kind
        self.adjoint = AdjointLayer(cfg)
        self.net = net

    def forward(self, sweep):
        x_re, x_im = self.adjoint(sweep)
        image = self.net(network_input(self.kind, x_re, x_im))[:, 0]
        return normalize_peak(image)[:, None]                       # (B, 1, nx, ny, nz)


def make_network(kind: str, widths) -> nn.Module:
    if kind == "deep2s":
        return UNet3d(tuple(widths))
    if kind == "complex":
        return ComplexUNet3d(tuple(widths))
    raise ValueError(f"unknown network kind '{kind}' (deep2s or complex)")
