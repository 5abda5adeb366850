"""spectrum_synth_source: synthetic wideband scenes as a live-looking IQ stream."""
from __future__ import annotations

import numpy as np

from cvstream import EndOfStream, MsgOut, Out, Param, Source, register
from cvstream.dtypes import PortType


@register("spectrum_synth_source")
class SpectrumSynthSource(Source):
    """Stream synthetic wideband scenes (the spectrum segmentation synthesizer): 0..N
    signals of 12 modulations with bursts, overlaps and impairments, back to back.

    The truth of every signal goes out on ``truth`` as a detection-style message (absolute
    sample span, edges in Hz, label, in-band SNR). Emits rx_rate / rx_freq tags.
    Ports: out (complex64), truth (message, optional). Latency: none.
    Example: ``sky: {type: spectrum_synth_source, rate: 20e6, scenes: 4, seed: 1}``
    """

    out = Out("complex64")
    truth = MsgOut()
    rate = Param(float, default=20e6, min=1.0, unit="Hz", doc="sample rate")
    freq = Param(float, default=0.0, unit="Hz", doc="centre frequency")
    samples = Param(int, default=262144, min=1024, doc="samples per scene")
    scenes = Param(int, default=4, min=0, doc="scenes to stream (0: endless)")
    max_signals = Param(int, default=5, min=0, doc="signals per scene, at most")
    snr_min = Param(float, default=-10.0, unit="dB", doc="in-band SNR range")
    snr_max = Param(float, default=30.0, unit="dB")
    seed = Param(int, default=0, doc="scene k uses seed (seed, k)")
    chunk = Param(int, default=65536, min=1, doc="items per work call")

    def output_types(self, in_types):
        return {"out": PortType("complex64", (), self.rate)}

    def total_items(self):
        return self.scenes * self.samples or None

    def start(self):
        from cvstream.models.spectrum.synth import SceneConfig
        self._cfg = SceneConfig(samples=self.samples, max_signals=self.max_signals,
                                snr_db=(self.snr_min, self.snr_max))
        self._k = 0
        self._buf = np.zeros(0, np.complex64)
        self._pos = 0
        self.add_tag(0, "rx_rate", float(self.rate))
        self.add_tag(0, "rx_freq", float(self.freq))

    def _next_scene(self) -> None:
        from cvstream.models.spectrum.synth import scene
        if self.scenes and self._k >= self.scenes:
            raise EndOfStream
        x, labels = scene(np.random.default_rng([self.seed, self._k]), self._cfg)
        base = self._k * self.samples
        for lab in labels:
            self.emit({"sample_start": base + lab.start, "sample_count": lab.stop - lab.start,
                       "freq_lower_edge": self.freq + lab.f_low * self.rate,
                       "freq_upper_edge": self.freq + lab.f_high * self.rate,
                       "label": lab.label, "modulation": lab.modulation,
                       "snr_db": lab.snr_db}, "truth")
        self._k += 1
        self._buf, self._pos = x, 0

    def work(self):
        if self._pos >= len(self._buf):
            self._next_scene()
        part = self._buf[self._pos:self._pos + self.chunk]
        self._pos += len(part)
        return part
