"""fft: frames of a stream -> spectra (scipy.fft, batched)."""
from __future__ import annotations

import numpy as np
import scipy.fft

from cvstream import In, Out, Param, RateBlock, register
from cvstream.dtypes import PortType


@register("fft")
class FFT(RateBlock):
    """Windowed FFT of successive frames of ``size`` samples, ``hop`` apart.

    Output ``complex`` gives the spectrum, ``power`` |X|^2 and ``db`` 10 log10 |X|^2, each
    normalised by the window's energy so a full-scale tone reads the same at any size.
    Ports: in (complex64) -> out (one vector of ``size`` per hop). Latency: ``size`` samples.
    Example: ``spec: {type: fft, size: 1024, window: hann, output: db}``
    """

    inp = In("complex64")
    out = Out(None, None)
    size = Param(int, default=1024, min=2, doc="FFT length")
    hop = Param(int, default=0, min=0, doc="samples between frames (0: size)")
    window = Param(str, default="hann",
                   choices=("rect", "hann", "hamming", "blackman", "blackmanharris"))
    output = Param(str, default="complex", choices=("complex", "power", "db"))
    shift = Param(bool, default=True, doc="put DC in the middle (fftshift)")
    workers = Param(int, default=1, min=1, doc="threads for scipy.fft")

    stateless = True

    def check(self):
        self.decim = self.hop or self.size
        self.history = self.size - self.decim
        if self.history < 0:
            from cvstream.errors import ParamError
            raise ParamError("hop", f"{self.hop} is larger than size {self.size}")
        import scipy.signal   # here: half a second to import, kept off startup
        name = "boxcar" if self.window == "rect" else self.window
        w = scipy.signal.get_window(name, self.size, fftbins=True)
        self._win = (w / np.sqrt(np.sum(w**2))).astype(np.float32)

    def output_types(self, in_types):
        dtype = "complex64" if self.output == "complex" else "float32"
        return self._propagate_rate({"out": PortType(dtype, (self.size,))}, in_types)

    def work(self, x):
        frames = np.lib.stride_tricks.sliding_window_view(x, self.size)[::self.decim]
        spec = scipy.fft.fft(frames * self._win, axis=-1, workers=self.workers)
        if self.shift:
            spec = scipy.fft.fftshift(spec, axes=-1)
        if self.output == "complex":
            return spec.astype(np.complex64, copy=False)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        if self.output == "db":
            return (10 * np.log10(np.maximum(power, 1e-20))).astype(np.float32)
        return power
