"""nlms_aec: a partitioned-block frequency-domain NLMS echo canceller (the classical
baseline of the echo-cancellation family, and a useful block in its own right)."""
from __future__ import annotations

import numpy as np
import scipy.fft

from cvstream import In, Out, Param, RateBlock, register
from cvstream.errors import ParamError


@register("nlms_aec")
class NlmsAec(RateBlock):
    """Acoustic echo cancellation with a partitioned-block frequency-domain NLMS filter.

    Overlap-save with blocks of ``block`` samples; the echo path is modelled by ``taps``
    coefficients split into ``taps / block`` partitions, each adapted per frequency bin with a
    step normalised by the reference's smoothed power (gradient-constrained). Covers bulk
    delays up to ``taps`` samples. Without a double-talk detector it adapts during near-end
    speech too (slow ``mu`` helps); the learned canceller is the better choice there.
    Ports: mic, ref (float32, same rate) -> out (float32, the mic without its echo,
    sample-aligned). Latency: one block.
    Example: ``aec: {type: nlms_aec, block: 128, taps: 4096, mu: 0.3}``
    """

    mic = In("float32")
    ref = In("float32")
    out = Out("float32")
    block = Param(int, default=128, min=8, doc="block length (samples)")
    taps = Param(int, default=4096, min=8, doc="echo path length modelled (samples)")
    mu = Param(float, default=0.3, min=0.0, max=2.0, doc="step size")
    smoothing = Param(float, default=0.9, min=0.0, max=0.9999, doc="power smoothing")

    def check(self):
        if self.taps % self.block:
            raise ParamError("taps", f"{self.taps} is not a multiple of block {self.block}")
        self.decim = self.interp = self.block  # 1:1, in whole blocks

    def start(self):
        n, parts = self.block, self.taps // self.block
        self._x_prev = np.zeros(n, np.float32)
        self._X = np.zeros((parts, n + 1), np.complex64)   # newest partition first
        self._W = np.zeros((parts, n + 1), np.complex64)
        self._power = np.full(n + 1, 1e-3, np.float32)

    def _one(self, d: np.ndarray, x: np.ndarray) -> np.ndarray:
        n = self.block
        spectrum = scipy.fft.rfft(np.concatenate([self._x_prev, x]))
        self._x_prev = x
        self._X = np.roll(self._X, 1, axis=0)
        self._X[0] = spectrum
        y = scipy.fft.irfft(np.sum(self._W * self._X, axis=0), n=2 * n)[n:]
        e = (d - y).astype(np.float32)
        a = self.smoothing
        self._power = a * self._power + (1 - a) * (np.abs(spectrum) ** 2) / (2 * n)
        E = scipy.fft.rfft(np.concatenate([np.zeros(n, np.float32), e]))
        grad = np.conj(self._X) * E / (2 * n * (self._power + 1e-6) * len(self._X))
        # gradient constraint: keep each partition a causal block of n taps
        g = scipy.fft.irfft(grad, n=2 * n, axis=1)
        g[:, n:] = 0
        self._W += (self.mu * scipy.fft.rfft(g, axis=1)).astype(np.complex64)
        return e

    def work(self, mic, ref):
        n = self.block
        out = np.empty_like(mic)
        for k in range(0, len(mic), n):
            out[k:k + n] = self._one(mic[k:k + n], ref[k:k + n])
        return out
