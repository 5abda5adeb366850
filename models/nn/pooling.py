"""Complex pooling: keep the element of largest magnitude, or average."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .layout import join, split

_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


class MagnitudeMaxPool(nn.Module):
    """Max pooling by magnitude: each window keeps its complex element with the largest |z|."""

    def __init__(self, kernel, dims: int = 1, stride=None):
        super().__init__()
        self.kernel, self.dims, self.stride = kernel, dims, stride or kernel

    def forward(self, x):
        re, im = split(x)
        power = re * re + im * im
        _, idx = _MAX[self.dims](power, self.kernel, self.stride, return_indices=True)
        flat = idx.flatten(2)
        pick_re = re.flatten(2).gather(2, flat).view_as(idx)
        pick_im = im.flatten(2).gather(2, flat).view_as(idx)
        return join(pick_re, pick_im)


class ComplexAvgPool(nn.Module):
    """Average pooling of real and imaginary parts (the complex mean of each window)."""

    def __init__(self, kernel, dims: int = 1, stride=None):
        super().__init__()
        self.kernel, self.dims, self.stride = kernel, dims, stride or kernel

    def forward(self, x):
        return _AVG[self.dims](x, self.kernel, self.stride)
