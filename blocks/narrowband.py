"""The segmenter's fine view: signals too narrow for its model's cells (a CW tone is 1/4000
of a wideband stream; a model cell is 1/256), found on a PSD as fine as one tile allows.

Per tile of ``size`` samples, one ``size``-point FFT (a unit-energy Hann window, so white
noise keeps the coarse cells' power per bin and the tile's noise floor carries over),
averaged with the previous tile's. A run of bins is a narrow signal when it stands
``level`` above the noise floor (false-alarm probability ``pfa`` for a mean of two
periodogram bins), ``contrast`` above the mean of the ``span`` bins around it (a peak on
a wide signal's shoulder is not one), and is at most ``max_bins`` wide. Its edges: the band
around its centre that holds its power above the noise, less the window's own width (a pure
tone comes out one bin wide, as a tone is).
"""
from __future__ import annotations

import numpy as np
import scipy.fft
from scipy.ndimage import uniform_filter1d

from .detections import noise_level, row_runs

HANN_3DB_BINS = 1.44  # a unit Hann window's -3 dB width, in bins


class NarrowbandFinder:
    def __init__(self, size: int, max_bins: int = 8, pfa: float = 1e-6,
                 contrast: float = 4.0, span: int = 65):
        self.size, self.max_bins, self.contrast, self.span = size, max_bins, contrast, span
        self.level = noise_level(pfa, 2)
        w = np.hanning(size)
        w /= np.sqrt(np.sum(w ** 2))
        self.window = (w * np.where(np.arange(size) % 2, -1, 1)).astype(np.float32)
        self.previous: np.ndarray | None = None

    def psd(self, tiles: np.ndarray, floor: np.ndarray) -> np.ndarray:
        """(tiles, size) DC-centred PSD of each tile's samples in units of its noise floor,
        averaged with the tile before."""
        spec = scipy.fft.fft(tiles * self.window, axis=1)
        p = (spec.real ** 2 + spec.imag ** 2) / floor[:, None]
        before = np.concatenate([p[:1] if self.previous is None else self.previous[None],
                                 p[:-1]])
        self.previous = p[-1].copy()
        return 0.5 * (p + before)

    def _around(self, row: np.ndarray, lo: int, hi: int, guard: int = 3) -> float:
        """Mean power of the ``span`` bins around run [lo, hi), leaving out the run and
        ``guard`` bins either side (its own window leakage)."""
        half = self.span // 2
        left = row[max(0, lo - guard - half):max(0, lo - guard)]
        right = row[hi + guard:hi + guard + half]
        both = np.concatenate([left, right])
        return float(both.mean()) if len(both) else 1.0

    def find(self, tiles: np.ndarray, floor: np.ndarray) -> list[list[tuple]]:
        """Per tile, (f_low, f_high, snr_db, centre_bin, peak, around) of each narrow
        signal: its peak bin and the mean of the bins around it (noise floor 1)."""
        p = self.psd(tiles, floor)
        local = uniform_filter1d(p, self.span, axis=1, mode="nearest")
        mask = (p > self.level) & (p > self.contrast * local)
        row, a, b = row_runs(mask, 1)
        out = [[] for _ in range(len(p))]
        keep = b - a <= self.max_bins
        n = self.size
        for k, lo, hi in zip(row[keep].tolist(), a[keep].tolist(), b[keep].tolist()):
            excess = np.maximum(p[k, lo:hi] - 1.0, 0.0)
            total = excess.sum()
            if total <= 0:
                continue
            centre = lo + float(np.dot(excess, np.arange(hi - lo))) / total
            peak = excess.max()
            wide = float(np.sum(excess >= 0.5 * peak))  # -3 dB width, whole bins
            width = max(1.0, np.sqrt(max(wide ** 2 - HANN_3DB_BINS ** 2, 0.0)))
            f_low = (centre - width / 2 - n // 2) / n
            f_high = (centre + width / 2 - n // 2) / n
            snr = 10 * np.log10(max(total / width, 1e-3))
            around = self._around(p[k], lo, hi)
            out[k].append((f_low, f_high, snr, int(round(centre)), float(p[k, lo:hi].max()),
                           around))
        return out
