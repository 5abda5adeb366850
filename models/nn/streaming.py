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
