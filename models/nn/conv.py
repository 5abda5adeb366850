"""Complex convolution, transposed convolution and linear layers on split-layout tensors.

Two arithmetic forms, same result:
  "4mult": one real convolution with the block weight [[Wr, -Wi], [Wi, Wr]] (4 real
           products per complex product, one large kernel call);
  "gauss": Gauss's three products k1 = Wr(xr + xi), k2 = (Wi - Wr) xr, k3 = (Wr + Wi) xi;
           re = k1 - k3, im = k1 + k2 (3 real products, three kernel calls).
`bench/onnx_bench.py` measures both; "4mult" is the default (faster in ONNX Runtime here).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layout import join, split

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _tuple(v, dims):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * dims


class ComplexConv(nn.Module):
    """Complex convolution in 1, 2 or 3 dimensions.

    ``causal=True`` pads only the past side of ``causal_axis`` (default: the last spatial
    axis, time), so output t depends on inputs <= t; other axes get "same" padding.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel, dims: int = 1, stride=1, dilation=1,
                 padding="same", causal: bool = False, causal_axis: int = -1,
                 bias: bool = True, mode: str = "4mult"):
        super().__init__()
        if mode not in ("4mult", "gauss"):
            raise ValueError("mode is '4mult' or 'gauss'")
        self.dims, self.mode, self.causal = dims, mode, causal
        self.kernel = _tuple(kernel, dims)
        self.stride = _tuple(stride, dims)
        self.dilation = _tuple(dilation, dims)
        self.causal_axis = causal_axis % dims
        self.padding = padding
        scale = 1.0 / math.sqrt(2 * in_ch * math.prod(self.kernel))
        shape = (out_ch, in_ch, *self.kernel)
        self.weight_re = nn.Parameter(torch.randn(shape) * scale)
        self.weight_im = nn.Parameter(torch.randn(shape) * scale)
        self.bias_re = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.bias_im = nn.Parameter(torch.zeros(out_ch)) if bias else None

    def _pad(self, x):
        if self.padding != "same" and not self.causal:
            return x, int(self.padding) if isinstance(self.padding, int) else self.padding
        totals = [(k - 1) * d for k, d in zip(self.kernel, self.dilation)]
        if not self.causal and all(t % 2 == 0 for t in totals):
            # symmetric: the convolution pads itself (one ONNX Conv, no separate Pad)
            return x, tuple(t // 2 for t in totals)
        pads = []
        for axis in reversed(range(self.dims)):  # F.pad lists the last axis first
            total = (self.kernel[axis] - 1) * self.dilation[axis]
            if self.causal and axis == self.causal_axis:
                pads += [total, 0]
            elif self.padding == "same":
                pads += [total // 2, total - total // 2]
            else:
                pads += [0, 0]
        return F.pad(x, pads), 0

    def forward(self, x):
        x, pad = self._pad(x)
        conv = _CONV[self.dims]
        kw = dict(stride=self.stride, dilation=self.dilation, padding=pad)
        wr, wi = self.weight_re, self.weight_im
        bias = torch.cat([self.bias_re, self.bias_im]) if self.bias_re is not None else None
        if self.mode == "4mult":
            w = torch.cat([torch.cat([wr, -wi], 1), torch.cat([wi, wr], 1)], 0)
            return conv(x, w, bias, **kw)
        xr, xi = split(x)
        k1 = conv(xr + xi, wr, None, **kw)
        k2 = conv(xr, wi - wr, None, **kw)
        k3 = conv(xi, wr + wi, None, **kw)
        y = join(k1 - k3, k1 + k2)
        if bias is not None:
            y = y + bias.view(1, -1, *([1] * self.dims))
        return y


class ComplexConvTranspose(nn.Module):
    """Complex transposed convolution (upsampling) in 1, 2 or 3 dimensions."""

    def __init__(self, in_ch: int, out_ch: int, kernel, dims: int = 1, stride=1, padding=0,
                 output_padding=0, bias: bool = True):
        super().__init__()
        self.dims = dims
        self.kw = dict(stride=_tuple(stride, dims), padding=_tuple(padding, dims),
                       output_padding=_tuple(output_padding, dims))
        kernel = _tuple(kernel, dims)
        scale = 1.0 / math.sqrt(2 * in_ch * math.prod(kernel))
        self.weight_re = nn.Parameter(torch.randn(in_ch, out_ch, *kernel) * scale)
        self.weight_im = nn.Parameter(torch.randn(in_ch, out_ch, *kernel) * scale)
        self.bias_re = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.bias_im = nn.Parameter(torch.zeros(out_ch)) if bias else None

    def forward(self, x):
        wr, wi = self.weight_re, self.weight_im
        # rows: input (re, im) blocks; columns: output (re, im) blocks
        w = torch.cat([torch.cat([wr, wi], 1), torch.cat([-wi, wr], 1)], 0)
        bias = torch.cat([self.bias_re, self.bias_im]) if self.bias_re is not None else None
        return _CONV_T[self.dims](x, w, bias, **self.kw)


class ComplexLinear(nn.Module):
    """Complex dense layer on (B, 2F) split features: [real F | imaginary F]."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        scale = 1.0 / math.sqrt(2 * in_features)
        self.weight_re = nn.Parameter(torch.randn(out_features, in_features) * scale)
        self.weight_im = nn.Parameter(torch.randn(out_features, in_features) * scale)
        self.bias_re = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.bias_im = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        wr, wi = self.weight_re, self.weight_im
        w = torch.cat([torch.cat([wr, -wi], 1), torch.cat([wi, wr], 1)], 0)
        bias = torch.cat([self.bias_re, self.bias_im]) if self.bias_re is not None else None
        return F.linear(x, w, bias)
