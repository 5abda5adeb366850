"""The learned canceller's linear stages: a short NLMS filter per STFT bin, or (``kind:
pfdkf``) the partitioned-block Kalman filter of ``kalman_echo.py``; ``linear_stage`` builds
the one a model's contract names.

The per-bin filter (the ``aec`` block and its training share this code): each bin k of
the microphone spectrum M[t, k] is predicted from the last ``taps`` reference spectra,
Y[t, k] = sum_l W[l, k] R[t - l, k], and the filter follows the echo path by normalized
LMS, W += mu E conj(R) / (sum_l |R[t - l, k]|^2 + r P_k + delta), E = M - Y, with P_k the
bin's long-term history power. With 10 ms hops, 32 taps cover a bulk delay of up to 200 ms
plus 120 ms of room response. What a linear stage cannot model (late reverberation, the
loudspeaker's nonlinearity, adaptation noise in double talk) is left to the network, which
sees E and Y beside the microphone.
"""
from __future__ import annotations

import numpy as np


class SubbandEchoFilter:
    """Frame-by-frame state: ``process(mic, ref)`` on (frames, bins) complex64 spectra returns
    (error E, echo estimate Y), both (frames, bins) complex64; chunking does not change the
    result (the filter runs one frame at a time in order)."""

    def __init__(self, bins: int, taps: int = 32, mu: float = 0.3, delta: float = 1e-6,
                 regularize: float = 0.5, smoothing: float = 0.99):
        self.taps, self.mu, self.delta = taps, mu, delta
        self.regularize, self.smoothing = regularize, smoothing
        self.mean_power = np.zeros(bins, np.float32)          # slow average of the power
        self.history = np.zeros((taps, bins), np.complex64)   # newest frame first
        self.weights = np.zeros((taps, bins), np.complex64)

    def process(self, mic: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        error = np.empty_like(mic)
        echo = np.empty_like(mic)
        hist, w = self.history, self.weights
        for t in range(len(mic)):
            hist[1:] = hist[:-1]
            hist[0] = ref[t]
            # the exact power of the history (a running sum drifts in float32, and an
            # underestimate makes the step unstable)
            power = np.einsum("lk,lk->k", hist.real, hist.real)
            power += np.einsum("lk,lk->k", hist.imag, hist.imag)
            a = self.smoothing
            self.mean_power = a * self.mean_power + (1 - a) * power
            y = np.einsum("lk,lk->k", w, hist)
            e = mic[t] - y
            # regularized by a fraction of the bin's long-term power: where the reference
            # falls silent the weights would otherwise wander (and ring when it returns)
            norm = power + self.regularize * self.mean_power + self.delta
            w += (self.mu * e / norm) * hist.conj()
            error[t], echo[t] = e, y
        return error, echo


class SubbandStage:
    """The per-bin filter as a linear stage: it works on the spectra."""

    def __init__(self, bins: int, **params):
        self.filter = SubbandEchoFilter(bins, **params)

    def process(self, mic, ref, mic_spec, ref_spec):
        return self.filter.process(mic_spec, ref_spec)


class KalmanStage:
    """The partitioned-block Kalman filter as a linear stage: it works on the samples (whole
    hops) and hands the network the spectra of its error and echo estimate."""

    def __init__(self, size: int, hop: int, rate: float, **params):
        from .kalman_echo import KalmanEchoCanceller
        from .stft import STFT
        self.filter = KalmanEchoCanceller(rate, block=hop, **params)
        self.stft_err, self.stft_echo = STFT(size=size, hop=hop), STFT(size=size, hop=hop)

    def process(self, mic, ref, mic_spec, ref_spec):
        err, echo = self.filter.process(mic, ref)
        return self.stft_err.process(err), self.stft_echo.process(echo)


def linear_stage(spec: dict, size: int, hop: int, rate: float):
    """The linear stage a model's contract names (``preprocess.echo_filter``): ``kind``
    ``pfdkf`` (the partitioned-block Kalman filter, ``blocks/kalman_echo.py``) or
    ``subband`` (the default: the per-bin NLMS above); the other keys are its parameters.
    Its ``process(mic, ref, mic_spec, ref_spec)`` takes whole hops of samples and their
    spectra and returns the (error, echo estimate) spectra. Raises ValueError or TypeError
    for a spec it cannot build."""
    params = dict(spec)
    kind = params.pop("kind", "subband")
    if kind == "subband":
        return SubbandStage(size // 2 + 1, **params)
    if kind == "pfdkf":
        return KalmanStage(size, hop, rate, **params)
    raise ValueError(f"unknown kind {kind!r} (pfdkf or subband)")
