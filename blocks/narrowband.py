"""The segmenter's fine view: signals too narrow for its model's cells (a CW tone is 1/4000
of a wideband stream; a model cell is 1/256), found on a PSD as fine as one tile allows.

Per tile of ``size`` samples, the tile-long PSD (one ``size``-point FFT through a unit-energy
Hann window, in units of the tile's noise floor: the segmenter's ``fine_psd``, which its
tracks' block-long views share), averaged with the previous tile's. A run of bins is a
narrow signal when it stands ``level`` above the noise floor (false-alarm probability
``pfa`` for a mean of two periodogram bins), ``contrast`` above the mean of the ``span``
bins around it (a peak on a wide signal's shoulder is not one), and is at most
``max_bins`` wide. Its edges: the band around its centre that holds its power above the
noise, less the window's own width (a pure tone comes out one bin wide, as a tone is). A
peak whose mirror across DC is ``image_rejection_db`` or more stronger is that line's IQ
image, not a signal. Every run of every tile is measured at once (a wide signal's noise-like
PSD crosses the thresholds at many bins a tile).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.ndimage import uniform_filter1d

from .detections import noise_level

HANN_3DB_BINS = 1.44  # a unit Hann window's -3 dB width, in bins
GUARD = 3             # bins either side of a run left out of its surroundings (its leakage)


class Lines(NamedTuple):
    """The fine view's narrow signals, one entry per signal in each array."""
    tile: np.ndarray      # the tile it was seen in
    f_low: np.ndarray     # normalized frequency edges
    f_high: np.ndarray
    snr_db: np.ndarray    # mean power over its width, dB over the noise
    centre: np.ndarray    # its centre bin
    peak: np.ndarray      # its strongest bin (noise floor 1)
    around: np.ndarray    # the mean of the bins around it (noise floor 1)


def sparse_runs(mask: np.ndarray, gap: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``detections.row_runs`` (runs joined across gaps of at most ``gap``) for a 2-d mask
    with few cells set, from those cells alone (a tile-long row is thousands of bins)."""
    width = mask.shape[1]
    cells = np.flatnonzero(mask)
    if not len(cells):
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    new = np.r_[True, (np.diff(cells) > gap + 1) | (cells[1:] // width != cells[:-1] // width)]
    first, last = cells[new], cells[np.r_[new[1:], True]]
    return first // width, first % width, last % width + 1


class NarrowbandFinder:
    def __init__(self, size: int, max_bins: int = 8, pfa: float = 1e-6,
                 contrast: float = 4.0, span: int = 65, image_rejection_db: float = 25.0):
        self.size, self.max_bins, self.contrast, self.span = size, max_bins, contrast, span
        self.image_ratio = 10 ** (image_rejection_db / 10)
        self.level = noise_level(pfa, 2)
        self.previous: np.ndarray | None = None

    def average(self, psd: np.ndarray) -> np.ndarray:
        """Each tile's PSD averaged with the tile before (the last one kept for the next
        call)."""
        before = np.concatenate([psd[:1] if self.previous is None else self.previous[None],
                                 psd[:-1]])
        self.previous = psd[-1].copy()
        return 0.5 * (psd + before)

    def find(self, psd: np.ndarray) -> Lines:
        """The narrow signals in ``psd`` ((tiles, size) tile-long PSDs in units of the noise
        floor, DC-centred), one entry of each of ``Lines``' arrays per signal."""
        p = self.average(psd)
        local = uniform_filter1d(p, self.span, axis=1, mode="nearest")
        row, lo, hi = sparse_runs((p > self.level) & (p > self.contrast * local), 1)
        keep = hi - lo <= self.max_bins
        row, lo, hi = row[keep], lo[keep], hi[keep]
        n, r = self.size, row[:, None]
        offsets = np.arange(self.max_bins)
        inside = lo[:, None] + offsets < hi[:, None]
        values = np.where(inside, p[r, np.minimum(lo[:, None] + offsets, n - 1)], 0.0)
        excess = np.maximum(values - 1.0, 0.0)
        total = excess.sum(axis=1)
        top = values.max(axis=1, initial=0.0)
        mirror = (n - (lo[:, None] - 1 + np.arange(self.max_bins + 2))) % n
        near = lo[:, None] - 1 + np.arange(self.max_bins + 2) <= hi[:, None]
        image = np.where(near, p[r, mirror], 0.0).max(axis=1, initial=0.0) >= \
            self.image_ratio * top
        ok = (total > 0) & ~image   # not a strong line's IQ image
        row, lo, excess, total, top = row[ok], lo[ok], excess[ok], total[ok], top[ok]
        around = self._around(p, row, lo, hi[ok])
        centre = lo + (excess @ offsets) / np.maximum(total, 1e-30)
        peak = excess.max(axis=1, initial=0.0, keepdims=True)
        wide = (excess >= 0.5 * peak).sum(axis=1)   # -3 dB width, whole bins
        width = np.maximum(1.0, np.sqrt(np.maximum(wide ** 2 - HANN_3DB_BINS ** 2, 0.0)))
        return Lines(row, (centre - width / 2 - n // 2) / n, (centre + width / 2 - n // 2) / n,
                     10 * np.log10(np.maximum(total / width, 1e-3)),
                     np.round(centre).astype(np.int64), top, around)

    def _around(self, p: np.ndarray, row: np.ndarray, lo: np.ndarray, hi: np.ndarray
                ) -> np.ndarray:
        """Mean power of the ``span`` bins around each run [lo, hi) of row ``row``, leaving
        out the run and GUARD bins either side (1 where there are none)."""
        half, n = self.span // 2, p.shape[1]
        steps = np.arange(half)
        index = np.concatenate([(lo - GUARD - half)[:, None] + steps,
                                (hi + GUARD)[:, None] + steps], axis=1)
        valid = (index >= 0) & (index < n)
        values = np.where(valid, p[row[:, None], np.clip(index, 0, n - 1)], 0.0)
        count = valid.sum(axis=1)
        return np.where(count > 0, values.sum(axis=1) / np.maximum(count, 1), 1.0)
