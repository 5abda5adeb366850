"""Streaming causal convolution with an explicit cache, for stateful ONNX models.

``forward(x, cache)`` returns ``(y, next_cache)``: the cache holds the last
``(kernel - 1) * dilation`` input frames, so running chunk after chunk gives exactly the
output of the same causal convolution over the whole signal.
"""
from __future__ import annotations

import torch

from .conv import ComplexConv


class StreamingCausalConv(ComplexConv):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, dilation: int = 1,
                 mode: str = "4mult"):
        super().__init__(in_ch, out_ch, kernel, dims=1, dilation=dilation, causal=True,
                         mode=mode)
        self.context = (kernel - 1) * dilation

    def cache_shape(self, batch: int = 1) -> list[int]:
        return [batch, 2 * self.weight_re.shape[1], self.context]

    def forward(self, x, cache=None):
        if cache is None:  # whole-signal use: plain causal convolution
            return super().forward(x)
        full = torch.cat([cache, x], dim=-1)
        self.causal, saved = False, self.padding
        self.padding = 0
        try:
            y = super().forward(full)
        finally:
            self.causal, self.padding = True, saved
        return y, full[..., full.shape[-1] - self.context:]


class StreamingRealConv(torch.nn.Conv1d):
    """A real causal convolution over the last axis of (N, C, T) with the same cache
    convention: ``forward(x)`` over a whole signal, ``forward(x, cache)`` -> (y, next
    cache) with the last ``(kernel - 1) * dilation`` input frames as the cache. One frame
    with a cache (the exported streaming graph) is one strided slice and one matrix
    product for all N rows: in a graph run once per frame what costs is the number of
    nodes, fewer this way than with a convolution (``bench/aec_bench.py`` measures the
    canceller that uses it)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, dilation: int = 1):
        super().__init__(in_ch, out_ch, kernel, dilation=dilation)
        self.context = (kernel - 1) * dilation

    def cache_shape(self, batch: int = 1) -> list[int]:
        return [batch, self.in_channels, self.context]

    def forward(self, x, cache=None):
        if cache is None:
            return super().forward(torch.nn.functional.pad(x, (self.context, 0)))
        full = torch.cat([cache, x], dim=-1)
        n, c, t = x.shape[0], self.in_channels, x.shape[-1]
        d, k = self.dilation[0], self.kernel_size[0]
        weight = self.weight.reshape(self.out_channels, c * k).t()
        if t == 1:   # one frame (the streaming graph): the taps are every d-th cached frame
            y = (full[..., ::d].reshape(n, c * k) @ weight + self.bias).unsqueeze(-1)
        else:
            taps = torch.stack([full[..., i * d:i * d + t] for i in range(k)], dim=2)
            y = (taps.reshape(n, c * k, t).transpose(1, 2) @ weight + self.bias).transpose(1, 2)
        return y, full[..., full.shape[-1] - self.context:]
