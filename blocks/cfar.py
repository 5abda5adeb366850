"""cfar_detector: Welch PSD, cell-averaging CFAR, contiguous bins merged into detections."""
from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.ndimage

from cvstream import In, MsgOut, Param, RateBlock, register

from .tracker import Tracker
from .tracks import RadioContext, bin_edges, merge_runs, to_message


def cfar_factor(pfa: float, frames: int, train_cells: int) -> float:
    """Threshold factor alpha for P(cell > alpha * mean(training cells)) = pfa, when every
    PSD bin is the mean of ``frames`` periodograms of white noise: the ratio is
    F-distributed with (2 frames, 2 frames train_cells) degrees of freedom."""
    import scipy.stats   # here: half a second to import, kept off startup
    return float(scipy.stats.f.isf(pfa, 2 * frames, 2 * frames * train_cells))


@register("cfar_detector")
class CfarDetector(RateBlock):
    """Energy detector: Welch PSD + cell-averaging CFAR, contiguous bins merged into signals.

    Every ``fft * average`` samples it averages ``average`` Hann-windowed periodograms,
    compares each bin with ``alpha`` times the mean of ``train`` bins on each side (beyond
    ``guard`` bins; alpha set for false-alarm probability ``pfa``), merges detected bins
    (gaps up to ``merge_gap``) and follows signals across blocks. A detection message is
    sent when a signal ends (or at end of stream); see ``blocks/tracks.py`` for fields.
    Frequencies are absolute in Hz from rx_rate / rx_freq tags or the ``rate`` / ``freq``
    parameters (normalized when unknown).
    Ports: in (complex64) -> detections (message). Latency: one block (fft * average).
    Example: ``cfar: {type: cfar_detector, fft: 1024, average: 16, pfa: 1e-4}``
    """

    inp = In("complex64")
    detections = MsgOut(optional=False)
    fft = Param(int, default=1024, min=16, doc="FFT size (frequency resolution)")
    average = Param(int, default=16, min=1, doc="periodograms per PSD estimate")
    guard = Param(int, default=2, min=0, doc="guard bins on each side")
    train = Param(int, default=16, min=1, doc="training bins on each side")
    pfa = Param(float, default=1e-4, min=1e-12, max=0.5, doc="false-alarm probability per bin")
    merge_gap = Param(int, default=2, min=0, doc="join detected runs this many bins apart")
    min_bins = Param(int, default=2, min=1, doc="ignore runs narrower than this")
    rate = Param(float, default=0.0, min=0.0, unit="Hz", doc="sample rate (0: rx_rate tag)")
    freq = Param(float, default=0.0, unit="Hz", doc="centre frequency (default: rx_freq tag)")

    def check(self):
        self.decim = self.fft * self.average
        self.alpha = cfar_factor(self.pfa, self.average, 2 * self.train)
        # a bin of averaged white-noise periodograms is Gamma(average, 1/average) distributed
        import scipy.signal
        import scipy.stats
        self._alpha_floor = float(scipy.stats.gamma.isf(self.pfa, self.average,
                                                        scale=1 / self.average))
        self._median_ratio = float(scipy.stats.gamma.median(self.average,
                                                            scale=1 / self.average))
        w = scipy.signal.get_window("hann", self.fft)
        self._win = (w / np.sqrt(np.sum(w ** 2))).astype(np.float32)
        k = np.zeros(2 * (self.guard + self.train) + 1, np.float32)
        k[:self.train] = k[-self.train:] = 1.0 / (2 * self.train)
        self._kernel = k

    def output_types(self, in_types):
        t = in_types.get("inp")
        self._upstream_rate = t.rate if t is not None and t.rate else 0.0
        return {}

    def start(self):
        self._tracker = Tracker()
        self._radio = RadioContext(self.rate or getattr(self, "_upstream_rate", 0.0),
                                   self.freq)
        self._pos = 0

    def psd(self, x: np.ndarray) -> np.ndarray:
        """(blocks, fft) averaged periodograms, DC in the middle."""
        frames = x.reshape(-1, self.average, self.fft) * self._win
        spec = scipy.fft.fft(frames, axis=-1, workers=2)
        power = (spec.real ** 2 + spec.imag ** 2).mean(axis=1)
        return np.fft.fftshift(power, axes=-1)

    def threshold(self, psd: np.ndarray) -> np.ndarray:
        """Bins above alpha x their local noise estimate. The estimate averages the training
        cells that earlier passes did not flag (censored CA-CFAR), so a wide signal does not
        raise its own threshold; where too few training cells remain, the band's median
        noise floor stands in."""
        import scipy.signal
        half = len(self._kernel) // 2
        support = (self._kernel > 0).astype(np.float32)[None, :]
        # first pass: cells far above the band's noise floor (median-based) are censored
        floor = np.median(psd, axis=1, keepdims=True) / self._median_ratio
        keep = (psd <= self._alpha_floor * floor).astype(np.float32)
        for _ in range(2):
            wrap = ((0, 0), (half, half))  # the band wraps around at +-fs/2
            total = scipy.signal.fftconvolve(np.pad(psd * keep, wrap, mode="wrap"), support,
                                             mode="valid", axes=1)
            count = scipy.signal.fftconvolve(np.pad(keep, wrap, mode="wrap"), support,
                                             mode="valid", axes=1)
            enough = count > 0.25 * support.sum()
            noise = np.where(enough, total / np.maximum(count, 1e-9), floor)
            hits = psd > self.alpha * noise
            grown = scipy.ndimage.binary_dilation(hits, np.ones((1, 2 * self.guard + 1)))
            keep = (~grown).astype(np.float32)
        return hits

    def detect(self, psd: np.ndarray) -> list[list[tuple[float, float, float, str]]]:
        """Per PSD row: (f_low, f_high, snr_db, label) intervals in normalized frequency."""
        hits = self.threshold(psd)
        floor = np.median(psd, axis=1, keepdims=True)  # noise level for the SNR estimate
        out = []
        for row, mask in enumerate(hits):
            intervals = []
            for a, b in merge_runs(mask, self.merge_gap):
                if b - a < self.min_bins:
                    continue
                band = psd[row, a:b]
                snr = 10 * np.log10(max(band.mean() / floor[row, 0] - 1, 1e-3))
                intervals.append((*bin_edges(a, b, self.fft), snr, "signal"))
            out.append(intervals)
        return out

    def work(self, x):
        bad = self._radio.update(self.input_tags)
        if bad:
            self.count("bad_tag_values", bad)
        for intervals in self.detect(self.psd(x)):
            start, stop = self._pos, self._pos + self.decim
            self._emit_all(self._tracker.update(start, stop, intervals))
            self._pos = stop

    def finish(self):
        self._emit_all(self._tracker.flush())

    def _emit_all(self, tracks):
        for track in tracks:
            confidence = 1 - 10 ** (-max(track.peak_snr_db, 0) / 10)
            self.emit(to_message(track, self._radio.rate or 1.0, self._radio.freq,
                                 confidence))
