"""Complex normalization: batch norm (naive per part, or full 2x2 whitening), layer and
group norm, and the per-channel 2x2 affine that batch norm folds into at export."""
from __future__ import annotations

import torch
from torch import nn

from .layout import join, split


def _bshape(dims: int) -> tuple:
    return (1, -1) + (1,) * dims


class Complex2x2Affine(nn.Module):
    """Per complex channel: [re, im] <- [[a, b], [c, d]] [re, im] + [e, f]."""

    def __init__(self, channels: int, dims: int = 1):
        super().__init__()
        self.dims = dims
        self.matrix = nn.Parameter(torch.eye(2).repeat(channels, 1, 1))  # (C, 2, 2)
        self.bias = nn.Parameter(torch.zeros(2, channels))

    def forward(self, x):
        re, im = split(x)
        m, s = self.matrix, _bshape(self.dims)
        out_re = m[:, 0, 0].view(s) * re + m[:, 0, 1].view(s) * im + self.bias[0].view(s)
        out_im = m[:, 1, 0].view(s) * re + m[:, 1, 1].view(s) * im + self.bias[1].view(s)
        return join(out_re, out_im)


class ComplexBatchNorm(nn.Module):
    """Batch norm over complex channels.

    ``mode="naive"`` normalizes real and imaginary parts independently; ``"whiten"`` whitens
    each channel's 2x2 covariance (decorrelating the parts), then applies a learnable 2x2
    scale and complex shift. In eval mode both are one 2x2 affine per channel: ``fold()``.
    """

    def __init__(self, channels: int, dims: int = 1, mode: str = "whiten",
                 momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        if mode not in ("naive", "whiten"):
            raise ValueError("mode is 'naive' or 'whiten'")
        self.channels, self.dims, self.mode = channels, dims, mode
        self.momentum, self.eps = momentum, eps
        if mode == "naive":
            self.bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](
                2 * channels, momentum=momentum, eps=eps)
        else:
            g = torch.zeros(channels, 2, 2)
            g[:, 0, 0] = g[:, 1, 1] = 2 ** -0.5
            self.gamma = nn.Parameter(g)
            self.beta = nn.Parameter(torch.zeros(2, channels))
            self.register_buffer("running_mean", torch.zeros(2, channels))
            cov = torch.zeros(channels, 2, 2)
            cov[:, 0, 0] = cov[:, 1, 1] = 0.5
            self.register_buffer("running_cov", cov)

    def _stats(self, re, im):
        axes = [0] + list(range(2, re.dim()))
        mr, mi = re.mean(axes), im.mean(axes)
        s = _bshape(self.dims)
        cr, ci = re - mr.view(s), im - mi.view(s)
        vrr, vii, vri = (cr * cr).mean(axes), (ci * ci).mean(axes), (cr * ci).mean(axes)
        return torch.stack([mr, mi]), torch.stack([torch.stack([vrr, vri], -1),
                                                   torch.stack([vri, vii], -1)], 1)

    def _affine(self, mean, cov):
        """(matrix (C,2,2), offset (2,C)) of y = gamma W (x - mean) + beta."""
        eye = torch.eye(2, device=cov.device, dtype=cov.dtype)
        cov = cov + self.eps * eye
        vrr, vri, vii = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
        s = torch.sqrt(vrr * vii - vri * vri)
        t = torch.sqrt(vrr + vii + 2 * s)
        inv = 1.0 / (s * t)
        w = torch.stack([torch.stack([(vii + s) * inv, -vri * inv], -1),
                         torch.stack([-vri * inv, (vrr + s) * inv], -1)], 1)
        m = self.gamma @ w
        offset = self.beta - torch.einsum("cij,jc->ic", m, mean)
        return m, offset

    def forward(self, x):
        if self.mode == "naive":
            return self.bn(x)
        re, im = split(x)
        if self.training:
            mean, cov = self._stats(re, im)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_cov.lerp_(cov, self.momentum)
        else:
            mean, cov = self.running_mean, self.running_cov
        m, offset = self._affine(mean, cov)
        s = _bshape(self.dims)
        out_re = m[:, 0, 0].view(s) * re + m[:, 0, 1].view(s) * im + offset[0].view(s)
        out_im = m[:, 1, 0].view(s) * re + m[:, 1, 1].view(s) * im + offset[1].view(s)
        return join(out_re, out_im)

    @torch.no_grad()
    def fold(self) -> Complex2x2Affine:
        """The eval-mode layer as one 2x2 affine per channel (for export)."""
        aff = Complex2x2Affine(self.channels, self.dims)
        if self.mode == "naive":
            bn = self.bn
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            shift = bn.bias - bn.running_mean * scale
            c = self.channels
            aff.matrix.zero_()
            aff.matrix[:, 0, 0], aff.matrix[:, 1, 1] = scale[:c], scale[c:]
            aff.bias.copy_(torch.stack([shift[:c], shift[c:]]))
        else:
            m, offset = self._affine(self.running_mean, self.running_cov)
            aff.matrix.copy_(m)
            aff.bias.copy_(offset)
        return aff


class ComplexGroupNorm(nn.Module):
    """Group norm over complex channels: subtract the complex mean of each group, divide by
    the RMS of |z - mean|, then a real scale per channel and a complex shift."""

    def __init__(self, groups: int, channels: int, dims: int = 1, eps: float = 1e-5):
        super().__init__()
        if channels % groups:
            raise ValueError("channels must be a multiple of groups")
        self.groups, self.dims, self.eps = groups, dims, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(2, channels))

    def forward(self, x):
        b, c2 = x.shape[:2]
        c, g = c2 // 2, self.groups
        z = x.reshape(b, 2, g, c // g, *x.shape[2:])
        axes = tuple(range(3, z.dim()))
        z = z - z.mean(axes, keepdim=True)
        power = (z * z).sum(1, keepdim=True).mean(axes, keepdim=True)
        z = (z / torch.sqrt(power + self.eps)).reshape(x.shape)
        s = _bshape(self.dims)
        w = self.weight.repeat(2).view(s)
        return z * w + self.bias.reshape(-1).view(s)


class ComplexLayerNorm(ComplexGroupNorm):
    """Layer norm over all complex channels and positions of each example."""

    def __init__(self, channels: int, dims: int = 1, eps: float = 1e-5):
        super().__init__(1, channels, dims, eps)
