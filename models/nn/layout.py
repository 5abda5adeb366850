"""Moving between complex tensors, the split layout and interleaved pairs."""
from __future__ import annotations

import torch
from torch import nn


def split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2C, ...) -> real part (B, C, ...), imaginary part (B, C, ...)."""
    c = x.shape[1] // 2
    return x[:, :c], x[:, c:]


def planes(x: torch.Tensor, channels: int, length: int) -> torch.Tensor:
    """(B, 2C, length) -> (B, 2, C, length): the real and imaginary parts as two planes of
    one view, C = ``channels``. Exported, it is one Reshape to a constant shape (the batch
    alone free), and a sum over axis 1 gives |z|^2 in one pass, where ``split`` and ``join``
    take a Slice a part and a Concat."""
    return x.reshape(-1, 2, channels, length)


def join(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    return torch.cat([re, im], dim=1)


def to_split(z: torch.Tensor) -> torch.Tensor:
    """Complex (B, C, ...) -> real split layout (B, 2C, ...)."""
    return join(z.real, z.imag)


def to_complex(x: torch.Tensor) -> torch.Tensor:
    """Real split layout (B, 2C, ...) -> complex (B, C, ...)."""
    re, im = split(x)
    return torch.complex(re, im)


class FromInterleaved(nn.Module):
    """(B, *spatial, C, 2) or (B, *spatial, 2) interleaved pairs -> split (B, 2C, *spatial).

    ``channels_last`` says whether the stream item carries a channel axis before the pair.
    """

    def __init__(self, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last

    def forward(self, x):
        if not self.channels_last:
            x = x.unsqueeze(-2)  # (B, *spatial, 1, 2)
        nd = x.dim()
        # (B, *spatial, C, 2) -> (B, 2, C, *spatial) -> (B, 2C, *spatial)
        perm = [0, nd - 1, nd - 2] + list(range(1, nd - 2))
        x = x.permute(*perm)
        return x.reshape(x.shape[0], -1, *x.shape[3:])


class ToInterleaved(nn.Module):
    """Split (B, 2C, *spatial) -> interleaved (B, *spatial, C, 2), or (B, *spatial, 2)."""

    def __init__(self, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last

    def forward(self, x):
        b, c2 = x.shape[0], x.shape[1]
        x = x.reshape(b, 2, c2 // 2, *x.shape[2:])
        nd = x.dim()
        x = x.permute(0, *range(3, nd), 2, 1)
        return x if self.channels_last else x.squeeze(-2)
