"""Complex activations on split-layout tensors (B, 2C, ...)."""
from __future__ import annotations

import torch
from torch import nn

from .layout import join, planes, split

EPS = 1e-8


def _magnitude(re, im):
    return torch.sqrt(re * re + im * im + EPS)


def _radial(x, fn):
    """z f(|z|) / |z|: reshape the magnitude with ``fn``, keep the phase."""
    re, im = split(x)
    mag = _magnitude(re, im)
    scale = fn(mag) / mag
    return join(re * scale, im * scale)


class CReLU(nn.Module):
    """ReLU on the real and imaginary parts separately."""

    def forward(self, x):
        return torch.relu(x)


class ModReLU(nn.Module):
    """z * relu(|z| + b) / |z|, one learnable real bias b per complex channel. ``length``:
    the size of a 1-D input's last axis where a model fixes it (0: any); its export then
    takes the parts as ``planes`` of one view, not split and joined: the same numbers, one
    Reshape where a Slice a part and a Concat each took a pass (ONNX Runtime runs the
    spectrum segmenter's model 6 % faster so). Training keeps the split form."""

    def __init__(self, channels: int, dims: int = 1, init_bias: float = -0.1,
                 length: int = 0):
        super().__init__()
        if length and dims != 1:
            raise ValueError("a fixed length is for 1-D inputs")
        self.length = length
        self.bias = nn.Parameter(torch.full((1, channels) + (1,) * dims, init_bias))

    def forward(self, x):
        if self.length and torch.onnx.is_in_onnx_export():
            channels = self.bias.shape[1]
            z = planes(x, channels, self.length)
            mag = torch.sqrt((z * z).sum(1, keepdim=True) + EPS)
            scale = torch.relu(mag + self.bias.unsqueeze(1)) / mag
            return (z * scale).reshape(-1, 2 * channels, self.length)
        re, im = split(x)
        mag = _magnitude(re, im)
        scale = torch.relu(mag + self.bias) / mag
        return join(re * scale, im * scale)


class ZReLU(nn.Module):
    """z where its phase lies in [0, pi/2] (both parts >= 0), else 0."""

    def forward(self, x):
        re, im = split(x)
        keep = ((re >= 0) & (im >= 0)).to(x.dtype)
        return join(re * keep, im * keep)


class Cardioid(nn.Module):
    """0.5 (1 + cos(arg z)) z: passes positive-real phases, suppresses negative ones."""

    def forward(self, x):
        re, im = split(x)
        scale = 0.5 * (1 + re / _magnitude(re, im))
        return join(re * scale, im * scale)


class BoundedMask(nn.Module):
    """tanh(|z|) z / |z|: a complex mask with magnitude below 1 and the phase of z."""

    def forward(self, x):
        return _radial(x, torch.tanh)


class LogCompander(nn.Module):
    """z log(1 + |z|) / |z|: compresses the magnitude's dynamic range, keeps the phase."""

    def forward(self, x):
        return _radial(x, torch.log1p)
