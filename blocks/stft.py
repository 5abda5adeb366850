"""Streaming short-time Fourier transform and its inverse (overlap-add)."""
from __future__ import annotations

import numpy as np
import scipy.fft

from cvstream import In, Out, Param, RateBlock, register
from cvstream.dtypes import PortType
from cvstream.errors import CvstreamError, ParamError


def analysis_window(name: str, size: int) -> np.ndarray:
    """sqrt-Hann (periodic) gives perfect reconstruction with itself at 50 % overlap."""
    import scipy.signal   # here: half a second to import, kept off startup
    if name == "sqrt_hann":
        return np.sqrt(scipy.signal.get_window("hann", size, fftbins=True)).astype(np.float32)
    return scipy.signal.get_window(name, size, fftbins=True).astype(np.float32)


def _check_cola(window: np.ndarray, hop: int) -> float:
    """The overlap-added squared window must be constant; returns that constant."""
    total = np.zeros(hop)
    for start in range(0, len(window), hop):
        seg = window[start:start + hop] ** 2
        total[:len(seg)] += seg
    if np.ptp(total) > 1e-3 * total.mean():
        raise ParamError("hop", f"window and hop {hop} do not overlap-add to a constant")
    return float(total.mean())


@register("stft")
class STFT(RateBlock):
    """Short-time Fourier transform: one spectrum per ``hop`` samples of a ``size`` window.

    Real input gives the ``size // 2 + 1`` non-negative frequencies (rfft); complex input
    all ``size`` bins. The first frame sees ``size - hop`` zeros of history, so chunked and
    whole-signal outputs are identical.
    Ports: in (float32 or complex64) -> out (complex64 vectors). Latency: ``size`` samples.
    Example: ``spec: {type: stft, size: 320, hop: 160}`` (20 ms / 10 ms at 16 kHz)
    """

    inp = In(None, ())
    out = Out("complex64", None)
    size = Param(int, default=512, min=2, doc="window (FFT) length")
    hop = Param(int, default=256, min=1, doc="samples between frames")
    window = Param(str, default="sqrt_hann", choices=("sqrt_hann", "hann", "hamming"))

    def check(self):
        if self.hop > self.size:
            raise ParamError("hop", f"{self.hop} is larger than size {self.size}")
        self.decim, self.history = self.hop, self.size - self.hop
        self._win = analysis_window(self.window, self.size)
        self._real = None

    def output_types(self, in_types):
        t = in_types.get("inp")
        if t is not None and t.dtype not in ("float32", "complex64"):
            raise CvstreamError(f"stft takes float32 or complex64 samples, got {t}")
        self._real = t is None or t.dtype == "float32"
        bins = self.size // 2 + 1 if self._real else self.size
        return self._propagate_rate({"out": PortType("complex64", (bins,))}, in_types)

    def work(self, x):
        frames = np.lib.stride_tricks.sliding_window_view(x, self.size)[::self.hop]
        if x.dtype == np.float32:
            return scipy.fft.rfft(frames * self._win, axis=-1).astype(np.complex64)
        return scipy.fft.fft(frames * self._win, axis=-1).astype(np.complex64)


@register("istft")
class ISTFT(RateBlock):
    """Inverse STFT by windowed overlap-add: ``hop`` samples out per spectrum in.

    With the stft block's window and hop it reconstructs the input exactly, delayed by
    ``size - hop`` samples; ``output: real`` expects ``size // 2 + 1`` bins (irfft).
    Ports: in (complex64 vectors) -> out (float32 or complex64). Latency: ``size - hop``.
    Example: ``back: {type: istft, size: 320, hop: 160}``
    """

    inp = In("complex64", None)
    out = Out(None, ())
    size = Param(int, default=512, min=2, doc="window (FFT) length")
    hop = Param(int, default=256, min=1, doc="samples between frames")
    window = Param(str, default="sqrt_hann", choices=("sqrt_hann", "hann", "hamming"))
    output = Param(str, default="real", choices=("real", "complex"))

    def check(self):
        if self.hop > self.size:
            raise ParamError("hop", f"{self.hop} is larger than size {self.size}")
        self.interp = self.hop
        self._win = analysis_window(self.window, self.size)
        self._norm = np.float32(1.0 / _check_cola(self._win, self.hop))
        self._bins = self.size // 2 + 1 if self.output == "real" else self.size

    def output_types(self, in_types):
        t = in_types.get("inp")
        if t is not None and t.shape != (self._bins,):
            raise CvstreamError(f"istft with size {self.size} and output {self.output} takes "
                                f"{self._bins} bins, got {t}")
        dtype = "float32" if self.output == "real" else "complex64"
        return self._propagate_rate({"out": PortType(dtype)}, in_types)

    def start(self):
        dtype = np.float32 if self.output == "real" else np.complex64
        self._tail = np.zeros(self.size - self.hop, dtype)

    def work(self, spectra):
        if self.output == "real":
            frames = scipy.fft.irfft(spectra, n=self.size, axis=-1).astype(np.float32)
        else:
            frames = scipy.fft.ifft(spectra, axis=-1).astype(np.complex64)
        frames *= self._win * self._norm
        n = len(frames)
        out = np.zeros(n * self.hop + self.size - self.hop, frames.dtype)
        out[:len(self._tail)] += self._tail
        for k in range(self.size // self.hop + (self.size % self.hop > 0)):
            # add every frame's k-th hop-sized piece in one strided operation
            piece = frames[:, k * self.hop:(k + 1) * self.hop]
            width = piece.shape[1]
            target = out[k * self.hop:k * self.hop + n * self.hop].reshape(n, self.hop)
            target[:, :width] += piece
        self._tail = out[n * self.hop:].copy()
        return out[:n * self.hop]
