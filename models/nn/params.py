"""Parameter counting in real numbers, for fair complex-vs-real comparisons."""
from __future__ import annotations

from typing import Callable

from torch import nn


def count_real_params(model: nn.Module) -> int:
    """Trainable real parameters (a complex weight counts twice: real and imaginary part)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def real_width_for(build: Callable[[int], nn.Module], target: int, lo: int = 1,
                   hi: int = 4096) -> int:
    """The width w for which ``build(w)`` has the real-parameter count closest to
    ``target`` (for a real-valued twin of a complex network)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if count_real_params(build(mid)) < target:
            lo = mid + 1
        else:
            hi = mid
    below = max(1, lo - 1)
    diffs = {w: abs(count_real_params(build(w)) - target) for w in (below, lo)}
    return min(diffs, key=diffs.get)
