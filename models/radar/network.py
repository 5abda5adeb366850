"""Learned radar reconstruction (torch): the adjoint as a layer, Deep2S and its complex variant.

Both networks are exported as one ONNX graph per configuration, sweep in, image out:

- ``deep2s``:  sweep -> A^H y -> |.| -> / max -> 3D U-Net (real) -> / max
- ``complex``: sweep -> A^H y -> / max|.| -> complex 3D U-Net (cvstream.models.nn) -> |.|
  -> / max

``AdjointLayer`` computes its per-antenna kernels from the geometry (positions, wavenumbers,
grid axes) inside the graph. Those nodes depend only on initializers, so ONNX Runtime folds
them into constants when it loads the model: the file stays a few hundred kB while the
session holds the per-antenna tables (``FactorOperands``). Training feeds the networks
adjoint images computed once by numpy (``ImageFormation``), which is the same operator.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nn import ComplexConv, UNetDown, UNetUp
from ..nn.layout import join, split
from .geometry import RadarConfig

EPS = 1e-12


class BornTables(nn.Module):
    """The geometry as buffers, and the Born operator's matrices computed from it: per
    antenna (``FactorOperands``, memory K (T + R) N; for one application a frame), dense
    (``DenseOperands``, K T R N; for many applications a frame, where a batch of sweeps
    turns each application into one well-filled matmul) or dense and folded by the array's
    symmetries (``FoldedOperands``, ``fold``: a quarter of that on the X-shaped arrays)."""

    def __init__(self, cfg: RadarConfig, dense: bool = False, fold: bool = False):
        super().__init__()
        self.image_shape, self.sweep_shape, self.dense = cfg.image_shape, cfg.sweep_shape, dense
        f32 = dict(dtype=torch.float32)
        self.register_buffer("tx", torch.tensor(cfg.tx, **f32))
        self.register_buffer("rx", torch.tensor(cfg.rx, **f32))
        self.register_buffer("k", torch.tensor(cfg.wavenumbers, **f32))
        for axis in "xyz":
            self.register_buffer(f"axis_{axis}", torch.tensor(getattr(cfg, axis), **f32))
        self.fold = fold and bool(cfg.symmetries())
        if self.fold:
            for name, value in FoldIndices.of(cfg)._asdict().items():
                self.register_buffer(f"fold_{name}", value)

    def kernel(self, points, scale: float, voxels=None):
        """exp(+j k R) / (scale R) for these antennas: (re, im), each (K, P, N), or (K, P,
        len(voxels)) at the voxels of these indices. The Born factors are its conjugates:
        scale 4 pi on the Tx side, 1 on the Rx side."""
        gx, gy, gz = torch.meshgrid(self.axis_x, self.axis_y, self.axis_z, indexing="ij")
        vox = torch.stack([gx.reshape(-1), gy.reshape(-1), gz.reshape(-1)], dim=1)
        if voxels is not None:
            vox = vox.index_select(0, voxels)
        dist = torch.sqrt(((points[:, None, :] - vox[None]) ** 2).sum(-1))     # (P, N)
        phase = self.k[:, None, None] * dist[None]
        amp = 1.0 / (scale * dist[None])
        return torch.cos(phase) * amp, torch.sin(phase) * amp

    def tables(self) -> FactorOperands | DenseOperands | FoldedOperands:
        """The operator's matrices, computed once per call and shared by every application
        in it (ONNX Runtime folds them into constants when it loads the model)."""
        if self.fold:
            folds = FoldIndices(*(getattr(self, f"fold_{n}").long() if n != "scale" else
                                  self.fold_scale for n in FoldIndices._fields))
            t_re, t_im = self.kernel(self.tx, 4 * math.pi, folds.rows)
            g_re, g_im = self.kernel(self.rx, 1.0, folds.rows)
            return FoldedOperands(DenseOperands.build(t_re, t_im, g_re, g_im), folds)
        t_re, t_im = self.kernel(self.tx, 4 * math.pi)               # g_t, (K, T, N)
        g_re, g_im = self.kernel(self.rx, 1.0)                       # g_r, (K, R, N)
        if self.dense:
            return DenseOperands.build(t_re, t_im, g_re, g_im)
        return FactorOperands.build(t_re, t_im, g_re, g_im)


class FactorOperands(NamedTuple):
    """The Born operator per antenna, laid out so that each application is one broadcast
    product, one matmul and (adjoint) one sum over leading axes."""
    tx_gauss: torch.Tensor      # (K, T, 3, N)
    rx_forward: torch.Tensor    # (K, 3N, 2R)
    rx_adjoint: torch.Tensor    # (K, 2, 2R, N)
    tx_adjoint: torch.Tensor    # (K, 2, T, 2, 1, N)

    @classmethod
    def build(cls, t_re, t_im, g_re, g_im) -> FactorOperands:
        # A^H's Rx side for one real matmul: [y_re, y_im] (.., 2R) -> z_re, z_im (.., N)
        adj_re = torch.cat([g_re, -g_im], 1)                         # (K, 2R, N)
        adj_im = torch.cat([g_im, g_re], 1)
        # A's Tx side, u = conj(g_t) x = (a + b i)(c + d i) with a = t_re, b = -t_im, by
        # Gauss's three products k1 = c (a + b), k2 = a (d - c), k3 = b (c + d):
        # u_re = k1 - k3, u_im = k1 + k2; so A's Rx side takes the rows [F_re + F_im, F_im,
        # -F_re], where F_re and F_im map u_re and u_im to [y_re, y_im]
        f_re, f_im = adj_re.transpose(1, 2), adj_im.transpose(1, 2)   # (K, N, 2R)
        return cls(
            tx_gauss=torch.stack([t_re - t_im, t_re, -t_im], 2),
            rx_forward=torch.cat([f_re + f_im, f_im, -f_re], 1),
            rx_adjoint=torch.stack([adj_re, adj_im], 1),
            # x = sum over k, t of g_t z: [x_re, x_im] from [z_re, z_im], (.., 2 in, T, 2 out)
            tx_adjoint=torch.stack([torch.stack([t_re, t_im], 2),
                                    torch.stack([-t_im, t_re], 2)], 1)[..., None, :])

    def forward(self, x_re, x_im):
        """A x: (B, N) reflectivity parts -> (B, K, T, R) sweep parts. Per frequency, the Tx
        factor times x by three real products a voxel, then one (B T, 3N) x (3N, 2R)
        matmul over the voxels."""
        k, t, _, n = self.tx_gauss.shape
        x = torch.stack([x_re, x_im - x_re, x_re + x_im], 1)[None, :, None]  # (1, B, 1, 3, N)
        u = (self.tx_gauss[:, None] * x).reshape(k, -1, 3 * n)                # (K, B T, 3N)
        y = torch.matmul(u, self.rx_forward)                                  # (K, B T, 2R)
        y = y.reshape(k, -1, t, y.shape[-1]).transpose(0, 1)                  # (B, K, T, 2R)
        r = y.shape[-1] // 2
        return y[..., :r], y[..., r:]

    def adjoint(self, y_re, y_im):
        """A^H y: (B, K, T, R) sweep parts -> (B, N) image parts. Per frequency, one matmul
        over the Rx antennas gives z (K, 2, T B, N); the Tx factor's products, summed over
        the leading axes (frequency, part of z, Tx antenna), give x."""
        b, k, t, _ = y_re.shape
        y2 = torch.cat([y_re, y_im], -1).permute(1, 2, 0, 3)                  # (K, T, B, 2R)
        z = torch.matmul(y2.reshape(k, 1, t * b, -1), self.rx_adjoint)       # (K, 2, T B, N)
        x = (self.tx_adjoint * z.reshape(k, 2, t, 1, b, -1)).sum(dim=(0, 1, 2))
        return x[0], x[1]


class DenseOperands(NamedTuple):
    """The Born operator as one matrix: P = g_t g_r for every voxel (rows) and measurement
    (K T R columns), re and im; A = conj(P)^T. Each application is two real matmuls that
    read P once, whatever the batch."""
    p_re: torch.Tensor          # (N, K T R)
    p_im: torch.Tensor
    sweep_shape: tuple

    @classmethod
    def build(cls, t_re, t_im, g_re, g_im) -> DenseOperands:
        k, t, n = t_re.shape
        # built in its final layout from the factors' small permutes (no transposed copy)
        a_re, a_im = t_re.permute(2, 0, 1)[..., None], t_im.permute(2, 0, 1)[..., None]
        b_re, b_im = g_re.permute(2, 0, 1)[:, :, None], g_im.permute(2, 0, 1)[:, :, None]
        return cls((a_re * b_re - a_im * b_im).reshape(n, -1),
                   (a_re * b_im + a_im * b_re).reshape(n, -1), (k, t, g_re.shape[1]))

    def forward(self, x_re, x_im):
        """A x = conj(P)^T x: (B, N) parts -> (B, K, T, R) parts."""
        shape = (x_re.shape[0], *self.sweep_shape)
        y_re, y_im = dense_forward(self.p_re, self.p_im, x_re, x_im)
        return y_re.reshape(shape), y_im.reshape(shape)

    def adjoint(self, y_re, y_im):
        """A^H y = P y: (B, K, T, R) parts -> (B, N) parts."""
        b = y_re.shape[0]
        return dense_adjoint(self.p_re, self.p_im, y_re.reshape(b, -1), y_im.reshape(b, -1))


class FoldIndices(NamedTuple):
    """How the array's symmetry group (``RadarConfig.symmetry_group``, G moves) folds the
    dense operator: its rows for one voxel of each orbit (``rows``, F of them) hold all of
    P, as P[move(n), move(m)] = P[n, m] for a voxel n and a measurement m. Indices are
    int32 (int64 in ``BornTables.tables``), half the model file's bytes."""
    rows: torch.Tensor          # (F,) the orbits' first voxels
    moved: torch.Tensor         # (G F,) move g of rows[f] at g F + f
    scale: torch.Tensor         # (F,) float: 1 / the number of moves that keep rows[f]
    image: torch.Tensor         # (N,) voxel n's place in the (G F) moved rows' results
    sweep_in: torch.Tensor      # (G M,) at g M + m: move g of measurement m
    sweep_out: torch.Tensor     # (G M,) at g M + m: g M + the measurement g moves onto m

    @classmethod
    def of(cls, cfg: RadarConfig) -> FoldIndices:
        group = cfg.symmetry_group()
        moved = np.stack([g.voxels for g in group])                        # (G, N)
        rows = np.unique(moved.min(axis=0))                                # each orbit's first
        at_rows = moved[:, rows]                                           # (G, F)
        image = np.empty(cfg.n_voxels, dtype=np.int64)
        for g in range(len(group) - 1, -1, -1):                            # any move will do
            image[at_rows[g]] = g * len(rows) + np.arange(len(rows))
        k, t, r = cfg.sweep_shape
        f_, t_, r_ = np.meshgrid(np.arange(k), np.arange(t), np.arange(r), indexing="ij")
        sweep = np.stack([np.ravel_multi_index((f_, g.tx[t_], g.rx[r_]), cfg.sweep_shape)
                          .ravel() for g in group])                        # (G, M)
        m = sweep.shape[1]
        back = np.argsort(sweep, axis=1) + m * np.arange(len(group))[:, None]

        def index(a):
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int32).ravel())
        return cls(index(rows), index(at_rows),
                   torch.from_numpy(1.0 / (at_rows == rows).sum(0)).float(), index(image),
                   index(sweep), index(back))


class FoldedOperands(NamedTuple):
    """The dense operator (``DenseOperands``) on the orbits' first voxels only, the rest
    by the array's symmetries (``FoldIndices``): each application is one matmul of those
    rows with G moved copies of the batch, so P's memory and the bytes an application
    reads are 1 / G of the dense ones (the same products)."""
    rows: DenseOperands         # (F, K T R)
    folds: FoldIndices

    def forward(self, x_re, x_im):
        """A x: (B, N) parts -> (B, K, T, R) parts; the moved images' products, each moved
        back in the sweep and summed."""
        b, f = x_re.shape[0], self.folds.rows.shape[0]
        moves = self.folds.moved.shape[0] // f

        def moved(x):   # (B, N) -> (B G, F), each voxel once over its orbit's moves
            return (x.index_select(1, self.folds.moved).reshape(b, -1, f)
                    * self.folds.scale).reshape(-1, f)
        z_re, z_im = dense_forward(self.rows.p_re, self.rows.p_im, moved(x_re), moved(x_im))

        def back(z):    # (B G, M) -> (B, K, T, R)
            z = z.reshape(b, -1).index_select(1, self.folds.sweep_out)
            return z.reshape(b, moves, -1).sum(1).reshape(b, *self.rows.sweep_shape)
        return back(z_re), back(z_im)

    def adjoint(self, y_re, y_im):
        """A^H y: (B, K, T, R) parts -> (B, N) parts; the moved sweeps' products, each
        voxel taken from its orbit's row under its move."""
        b = y_re.shape[0]
        m = y_re[0].numel()

        def moved(y):   # (B, K, T, R) -> (B G, M)
            return y.reshape(b, m).index_select(1, self.folds.sweep_in).reshape(-1, m)
        s_re, s_im = dense_adjoint(self.rows.p_re, self.rows.p_im, moved(y_re), moved(y_im))
        return (s_re.reshape(b, -1).index_select(1, self.folds.image),
                s_im.reshape(b, -1).index_select(1, self.folds.image))


def dense_forward(p_re, p_im, x_re, x_im) -> tuple[torch.Tensor, torch.Tensor]:
    """A x with the dense matrix: (B, N) parts -> (B, K T R) parts (scriptable)."""
    b = x_re.shape[0]
    x2t = torch.cat([x_re, x_im], 0).t()                                      # (N, 2B)
    # P^T x rather than x P: ONNX Runtime's matmul is ~25 % faster with the long operand
    # first (ad hoc, published's folded P at 32 columns)
    q_re, q_im = torch.matmul(p_re.t(), x2t).t(), torch.matmul(p_im.t(), x2t).t()  # (2B, M)
    return q_re[:b] + q_im[b:], q_re[b:] - q_im[:b]


def dense_adjoint(p_re, p_im, y_re, y_im) -> tuple[torch.Tensor, torch.Tensor]:
    """A^H y with the dense matrix: (B, K T R) parts -> (B, N) parts (scriptable)."""
    b = y_re.shape[0]
    y2t = torch.cat([y_re, y_im], 0).t()                                      # (M, 2B)
    s_re, s_im = torch.matmul(p_re, y2t).t(), torch.matmul(p_im, y2t).t()
    return s_re[:b] - s_im[b:], s_im[:b] + s_re[b:]


class ForwardLayer(BornTables):
    """(B, 1, nx, ny, nz, 2) interleaved reflectivity -> (B, 1, K, T, R, 2) Born sweeps."""

    def forward(self, x):
        x_re, x_im = x[:, 0, ..., 0].flatten(1), x[:, 0, ..., 1].flatten(1)   # (B, N)
        y_re, y_im = self.tables().forward(x_re, x_im)
        return torch.stack([y_re, y_im], dim=-1)[:, None]


class AdjointLayer(BornTables):
    """(B, 1, K, T, R, 2) interleaved sweeps -> (re, im) of A^H y, each (B, nx, ny, nz)."""

    def forward(self, sweep):
        y = sweep[:, 0]                                              # (B, K, T, R, 2)
        x_re, x_im = self.tables().adjoint(y[..., 0], y[..., 1])
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
    exactly 0, which a softplus head never gives; the haze it leaves costs 3D SSIM), or
    without it (``logits``: a classifier's)."""

    def __init__(self, widths=(16, 32, 64), in_ch: int = 1, logits: bool = False):
        super().__init__()
        self.depth, self.logits = len(widths) - 1, logits

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
        x = self.head(x) if self.logits else F.relu(self.head(x))
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
