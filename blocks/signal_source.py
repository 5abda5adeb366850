"""signal_source: tones, noise and chirps for demos, tests and benchmarks."""
from __future__ import annotations

import math

import numpy as np

from cvstream import EndOfStream, Out, Param, Source, register
from cvstream.dtypes import PortType


@register("signal_source")
class SignalSource(Source):
    """Generate a tone, complex Gaussian noise, a linear chirp or a constant.

    ``noise`` adds complex (or real) white Gaussian noise of that RMS to any waveform.
    Emits an ``rx_rate`` tag at offset 0.
    Ports: out (complex64 or float32 per ``dtype``). Latency: none; one chunk per work call.
    Example: ``src: {type: signal_source, waveform: tone, rate: 1e6, freq: 1e5, noise: 0.01}``
    """

    out = Out("$dtype")
    waveform = Param(str, default="tone", choices=("tone", "noise", "chirp", "constant"))
    rate = Param(float, default=1e6, unit="Hz", min=1e-6, doc="sample rate")
    freq = Param(float, default=0.0, unit="Hz", doc="tone frequency; chirp start offset")
    amplitude = Param(float, default=1.0, doc="peak amplitude (RMS for noise)")
    noise = Param(float, default=0.0, min=0.0, doc="RMS of added white Gaussian noise")
    bandwidth = Param(float, default=0.0, unit="Hz", doc="chirp sweep width")
    period = Param(float, default=1e-3, unit="s", min=1e-9, doc="chirp sweep duration")
    dtype = Param(str, default="complex64", choices=("complex64", "float32"))
    chunk = Param(int, default=16384, min=1, doc="items per work call")
    items = Param(int, default=0, min=0, doc="items to produce (0: endless)")
    seed = Param(int, default=0, doc="noise seed")

    def output_types(self, in_types):
        return {"out": PortType(self.dtype, (), self.rate)}

    def total_items(self):
        return self.items or None

    def start(self):
        self._n = 0
        self._rng = np.random.default_rng(self.seed)
        self._phase = 0.0
        t = np.arange(self.chunk)
        # one chunk of the tone at phase 0; each call rotates it by the running phase
        self._base = (self.amplitude * np.exp(2j * np.pi * self.freq / self.rate * t))
        self._base = self._base.astype(np.complex64)
        self._step = math.fmod(2 * math.pi * self.freq / self.rate * self.chunk, 2 * math.pi)
        self._sweep = None
        period_items = self.period * self.rate
        if self.waveform == "chirp" and abs(period_items - round(period_items)) < 1e-6:
            # a whole number of samples per sweep: compute the sweep once, repeated so that
            # any chunk is one slice of it
            length = int(round(period_items))
            reps = -(-(length + self.chunk) // length)
            self._sweep = np.tile(self._chirp(np.arange(length)), reps)
            self._sweep_len = length
        self.add_tag(0, "rx_rate", float(self.rate))

    def work(self):
        n = self.chunk
        if self.items:
            n = min(n, self.items - self._n)
            if n <= 0:
                raise EndOfStream
        if self.waveform == "tone":
            rot = np.complex64(complex(math.cos(self._phase), math.sin(self._phase)))
            y = np.multiply(self._base[:n], rot)
            self._phase = math.fmod(self._phase + self._step, 2 * math.pi)
        elif self.waveform == "noise":
            y = self._noise(n, self.amplitude)
        elif self._sweep is not None:
            start = self._n % self._sweep_len
            y = self._sweep[start:start + n]
        elif self.waveform == "chirp":
            y = self._chirp(self._n + np.arange(n))
        else:
            y = np.full(n, self.amplitude, dtype=np.complex64)
        if self.noise and self.waveform != "noise":
            y = y + self._noise(n, self.noise)
        self._n += n
        if self.dtype == "float32":
            return np.ascontiguousarray(y.real) if self.waveform != "noise" else y.real.copy()
        return y

    def _chirp(self, index: np.ndarray) -> np.ndarray:
        tau = np.fmod(index / self.rate, self.period)
        slope = self.bandwidth / self.period
        f0 = self.freq - self.bandwidth / 2
        y = self.amplitude * np.exp(2j * np.pi * (f0 * tau + 0.5 * slope * tau ** 2))
        return y.astype(np.complex64)

    def _noise(self, n: int, rms: float) -> np.ndarray:
        if self.dtype == "float32":
            w = self._rng.standard_normal(n, dtype=np.float32)
            w *= np.float32(rms)
            return w.astype(np.complex64)
        w = self._rng.standard_normal(2 * n, dtype=np.float32)
        w *= np.float32(rms / math.sqrt(2))
        return w.view(np.complex64)
