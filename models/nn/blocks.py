"""Building blocks: residual block, U-Net levels, multidilated dense block (D3Net style)."""
from __future__ import annotations

import torch
from torch import nn

from .activations import Cardioid, CReLU, ModReLU
from .conv import ComplexConv, ComplexConvTranspose
from .layout import join, split
from .norm import ComplexBatchNorm, ComplexGroupNorm
from .pooling import MagnitudeMaxPool


def cat_complex(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate complex channels of split-layout tensors."""
    pieces = [split(p) for p in parts]
    return join(torch.cat([r for r, _ in pieces], 1), torch.cat([i for _, i in pieces], 1))


def make_activation(name: str, channels: int, dims: int) -> nn.Module:
    if name == "crelu":
        return CReLU()
    if name == "modrelu":
        return ModReLU(channels, dims)
    if name == "cardioid":
        return Cardioid()
    raise ValueError(f"unknown activation '{name}'")


def make_norm(name: str | None, channels: int, dims: int) -> nn.Module:
    if name is None:
        return nn.Identity()
    if name in ("naive", "whiten"):
        return ComplexBatchNorm(channels, dims, mode=name)
    if name == "group":
        return ComplexGroupNorm(min(4, channels), channels, dims)
    raise ValueError(f"unknown norm '{name}'")


class ResidualBlock(nn.Module):
    """conv -> norm -> act -> conv -> norm, plus the input, then act."""

    def __init__(self, channels: int, dims: int = 1, kernel=3, causal: bool = False,
                 norm: str | None = "whiten", act: str = "crelu", mode: str = "4mult"):
        super().__init__()
        conv = dict(dims=dims, causal=causal, mode=mode)
        self.body = nn.Sequential(
            ComplexConv(channels, channels, kernel, **conv), make_norm(norm, channels, dims),
            make_activation(act, channels, dims),
            ComplexConv(channels, channels, kernel, **conv), make_norm(norm, channels, dims))
        self.act = make_activation(act, channels, dims)

    def forward(self, x):
        return self.act(x + self.body(x))


class UNetDown(nn.Module):
    """Two convolutions, then magnitude max-pooling by 2. Returns (pooled, skip)."""

    def __init__(self, in_ch: int, out_ch: int, dims: int = 2, kernel=3,
                 norm: str | None = "whiten", act: str = "crelu"):
        super().__init__()
        self.convs = nn.Sequential(
            ComplexConv(in_ch, out_ch, kernel, dims=dims), make_norm(norm, out_ch, dims),
            make_activation(act, out_ch, dims),
            ComplexConv(out_ch, out_ch, kernel, dims=dims), make_norm(norm, out_ch, dims),
            make_activation(act, out_ch, dims))
        self.pool = MagnitudeMaxPool(2, dims)

    def forward(self, x):
        skip = self.convs(x)
        return self.pool(skip), skip


class UNetUp(nn.Module):
    """Transposed convolution (x2), concatenation with the skip, two convolutions."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, dims: int = 2, kernel=3,
                 norm: str | None = "whiten", act: str = "crelu"):
        super().__init__()
        self.up = ComplexConvTranspose(in_ch, out_ch, 2, dims=dims, stride=2)
        self.convs = nn.Sequential(
            ComplexConv(out_ch + skip_ch, out_ch, kernel, dims=dims),
            make_norm(norm, out_ch, dims), make_activation(act, out_ch, dims),
            ComplexConv(out_ch, out_ch, kernel, dims=dims), make_norm(norm, out_ch, dims),
            make_activation(act, out_ch, dims))

    def forward(self, x, skip):
        return self.convs(cat_complex([self.up(x), skip]))


class MultiDilatedConv(nn.Module):
    """D3Net's multidilated convolution: the i-th slice of the input channels is convolved
    with dilation ``dilations[i]`` and the results are summed."""

    def __init__(self, in_splits: list[int], out_ch: int, kernel=3, dims: int = 1,
                 dilations: list[int] | None = None, causal: bool = False,
                 mode: str = "4mult"):
        super().__init__()
        dilations = dilations or [2 ** i for i in range(len(in_splits))]
        self.in_splits = list(in_splits)
        self.convs = nn.ModuleList(
            ComplexConv(c, out_ch, kernel, dims=dims, dilation=d, causal=causal, mode=mode,
                        bias=(i == 0))
            for i, (c, d) in enumerate(zip(in_splits, dilations)))

    def forward(self, x):
        re, im = split(x)
        out, start = None, 0
        for c, conv in zip(self.in_splits, self.convs):
            part = join(re[:, start:start + c], im[:, start:start + c])
            y = conv(part)
            out = y if out is None else out + y
            start += c
        return out


class DenseMultiDilatedBlock(nn.Module):
    """Dense block of multidilated convolutions: layer l sees the input and every earlier
    layer's output, the i-th of them at dilation 2^i. Output: input plus all new features
    (in_ch + layers * growth complex channels)."""

    def __init__(self, in_ch: int, growth: int, layers: int, kernel=3, dims: int = 1,
                 causal: bool = False, norm: str | None = None, act: str = "crelu"):
        super().__init__()
        self.layers = nn.ModuleList()
        for n in range(layers):
            splits = [in_ch] + [growth] * n
            self.layers.append(nn.Sequential(
                MultiDilatedConv(splits, growth, kernel, dims, causal=causal),
                make_norm(norm, growth, dims), make_activation(act, growth, dims)))

    def forward(self, x):
        feats = [x]
        for layer in self.layers:
            feats.append(layer(cat_complex(feats)))
        return cat_complex(feats)
