"""Signals too narrow for a segmenter's model cells (a CW tone is 1/4000 of a wideband
stream; a model cell is 1/256), found at the resolution of a tile-long FFT, in three ways:
``CellTones`` zooms the few cells the model leaves whose power stands out (CW tones; the
default), ``long_tones.LongTones`` averages tile-long PSDs over up to 16 tiles for tones too
weak for one (with ``CellTones``), ``NarrowbandFinder`` searches the whole tile-long PSD (the fine
view, ``narrow``). All give their lines as ``Lines``.

``NarrowbandFinder``: per tile of ``size`` samples, the tile-long PSD (one ``size``-point
FFT through a unit-energy Hann window, in units of the tile's noise floor: the segmenter's
``TileSpectra.fine_psd``, which its tracks' block-long views share), averaged with the previous
tile's. A run of bins is a narrow signal when it stands ``level`` above the noise floor
(false-alarm probability ``pfa`` for a mean of two periodogram bins), ``contrast`` above
the mean of the ``span`` bins around it (a peak on a wide signal's shoulder is not one),
and is at most ``max_bins`` wide. Its edges: the band around its centre that holds its
power above the noise, less the window's own width (a pure tone comes out one bin wide, as
a tone is). A peak whose mirror across DC is ``image_rejection_db`` or more stronger is
that line's IQ image, not a signal. Every run of every tile is measured at once (a wide
signal's noise-like PSD crosses the thresholds at many bins a tile).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from .psd_stats import noise_level
from .tracks import dilate_rows

HANN_3DB_BINS = 1.44  # a unit Hann window's -3 dB width, in bins
GUARD = 3             # bins either side of a run left out of its surroundings (its leakage)
#: ``CellTones``: a tone followed into a cell beside a signal is looked for this many
#: sub-bins either side of where it was
FOLLOW_SUBBINS = 2


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
    """``tracks.row_runs`` (runs joined across gaps of at most ``gap``) for a 2-d mask
    with few cells set, from those cells alone (a tile-long row is thousands of bins)."""
    width = mask.shape[1]
    cells = np.flatnonzero(mask)
    if not len(cells):
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    new = np.concatenate(([True], (np.diff(cells) > gap + 1)
                          | (cells[1:] // width != cells[:-1] // width)))
    first, last = cells[new], cells[np.concatenate((new[1:], [True]))]
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
        from scipy.ndimage import uniform_filter1d   # (kept off the worker's start)
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
        around = around_runs(p, row, lo, hi[ok], self.span)
        centre = lo + (excess @ offsets) / np.maximum(total, 1e-30)
        peak = excess.max(axis=1, initial=0.0, keepdims=True)
        wide = (excess >= 0.5 * peak).sum(axis=1)   # -3 dB width, whole bins
        width = np.maximum(1.0, np.sqrt(np.maximum(wide ** 2 - HANN_3DB_BINS ** 2, 0.0)))
        return Lines(row, (centre - width / 2 - n // 2) / n, (centre + width / 2 - n // 2) / n,
                     10 * np.log10(np.maximum(total / width, 1e-3)),
                     np.round(centre).astype(np.int64), top, around)


def around_runs(p: np.ndarray, row: np.ndarray, lo: np.ndarray, hi: np.ndarray, span: int
                ) -> np.ndarray:
    """Mean power of the ``span`` bins around each run [lo, hi) of row ``row`` of ``p``,
    leaving out the run and GUARD bins either side (1 where there are none)."""
    half, n = span // 2, p.shape[1]
    steps = np.arange(half)
    index = np.concatenate([(lo - GUARD - half)[:, None] + steps,
                            (hi + GUARD)[:, None] + steps], axis=1)
    valid = (index >= 0) & (index < n)
    values = np.where(valid, p[row[:, None], np.clip(index, 0, n - 1)], 0.0)
    count = valid.sum(axis=1)
    return np.where(count > 0, values.sum(axis=1) / np.maximum(count, 1), 1.0)


def empty_lines() -> Lines:
    none = np.zeros(0)
    return Lines(np.zeros(0, np.int64), none, none, none, np.zeros(0, np.int64), none, none)


class CellTones:
    """CW tones in the cells a segmenter's model leaves, at a tile-long FFT's resolution,
    from the tiles the model's input is made of (scaled to the noise, before any
    compander): one ``frames``-point FFT for each cell looked at. A cell whose power over
    this tile and the one before stands ``sigma`` standard deviations over the noise (or
    that holds a tone being followed), ``guard`` cells or more from the model's own (a tone
    followed for a while: nearer too), is transformed once more across the tile's
    ``frames`` FFT frames: the cell's bin of each frame, through a Hann window, a zoom of
    the cell into ``frames`` sub-bins of 1/(fft x frames) of the band. A tone is one
    sub-bin standing ``level`` over the noise (false-alarm probability ``pfa``; 100 times
    that in the cell of a tone being followed) and ``contrast`` times the mean of the
    cell's others clear of its window's lobe (a wide signal fills them), in its own cell
    (the cells beside see it too, at the same sub-bin: it is strongest in its own near that
    cell's centre, and nearer an edge the cell beside on its side holds about as much and
    the other less), not in the DC cell (a receiver's own leakage), and not a strong line's
    IQ image (its mirror ``image_rejection_db`` stronger). Its place between sub-bins is
    the centroid of its sub-bin and the two beside. A tone followed for a while into a cell
    near the model's (a signal that starts beside it) is looked for within FOLLOW_SUBBINS
    sub-bins of where it was: a neighbour's skirt may outshine it at the cell's edge."""

    def __init__(self, fft: int, frames: int, sigma: float = 2.0,
                 pfa: float = 1e-4, contrast: float = 4.0, guard: int = 3,
                 image_rejection_db: float = 25.0):
        self.fft, self.frames = fft, frames
        self.image_ratio = 10 ** (image_rejection_db / 10)
        self.cell_level = 1 + sigma / np.sqrt(2 * frames)
        self.pfa, self.contrast, self.guard = pfa, contrast, guard
        w = np.hanning(frames)
        self.zoom_window = (w / np.sqrt(np.sum(w ** 2))).astype(np.float32)
        # one sub-bin of the zoom alone: row s of (sub-bin, frame) weights, the window times
        # the DFT's, in the zoom's DC-centred order
        turns = np.outer(np.arange(frames) - frames // 2, np.arange(frames)) / frames
        self.sub_bin_weights = self.zoom_window * np.exp(-2j * np.pi * turns)
        self.previous: np.ndarray | None = None

    # the levels at first use: a copy that only computes (the segmenter's worker process)
    # never finds tones and so never imports scipy, whose import costs a quarter second
    @functools.cached_property
    def level(self) -> float:
        return noise_level(self.pfa, 1)

    @functools.cached_property
    def follow_level(self) -> float:   # a tone being followed
        return noise_level(100 * self.pfa, 1)

    def find(self, stft: np.ndarray, scale: np.ndarray, power: np.ndarray,
             masks: np.ndarray, follow: np.ndarray | None = None,
             held: np.ndarray | None = None) -> Lines:
        """The tones in ``stft`` ((tiles, frames, fft) DC-centred FFT frames, the scaled
        tiles ``TileSpectra.prepare`` returns, as complex64), whose cells' power times
        ``scale`` (one per cell of each tile, or a scalar) is in units of the tile's noise
        floor, whose cells' mean power over that floor is ``power`` and the model's cells
        ``masks``; the tones being followed, at ``follow`` (their centres in sub-bins from
        DC), are looked for in every tile, over the noise or not, and those of them
        ``held`` (followed for a while: a tone, not a flicker) beside the model's cells
        too."""
        before = np.concatenate([power[:1] if self.previous is None else self.previous[None],
                                 power[:-1]])
        self.previous = power[-1].copy()
        near = dilate_rows(masks, self.guard)
        wanted = 0.5 * (power + before) > self.cell_level
        followed = np.zeros(self.fft, bool)
        expected = np.full(self.fft, -1)   # a followed tone's sub-bin in its cell
        if follow is not None and len(follow):
            at = np.round(np.asarray(follow, np.float64)).astype(np.int64)
            cells = np.clip(np.floor_divide(at + self.frames // 2, self.frames)
                            + self.fft // 2, 0, self.fft - 1)
            followed[cells] = True
            wanted[:, followed] = True
            held = np.ones(len(at), bool) if held is None else np.asarray(held, bool)
            expected[cells[held]] = (at - (cells - self.fft // 2) * self.frames
                                     + self.frames // 2)[held]
        wanted[:, self.fft // 2] = False   # DC: a receiver's own leakage
        tile, cell = np.nonzero(wanted & (~near | (expected >= 0)))
        if not len(tile):
            return empty_lines()
        scale = np.broadcast_to(scale, power.shape)
        # near the model's cells, a held tone's own sub-bins (beside the one it was in)
        window = np.where(near[tile, cell], expected[cell], -1)

        import scipy.fft   # (kept off the worker's start)

        def zoom(tile, cell):   # (C, frames) power of each cell across its tile's frames
            cell = cell % self.fft
            series = stft[tile, :, cell] * self.zoom_window
            power = np.abs(scipy.fft.fft(series, axis=1)) ** 2
            return np.fft.fftshift(power, axes=1) * scale[tile, cell][:, None]

        def sub_bin(tile, cell, sub):   # zoom(tile, cell)[k, sub[k]] for each k, alone
            cell = cell % self.fft
            value = np.einsum("cf,cf->c", stft[tile, :, cell], self.sub_bin_weights[sub])
            return (value.real ** 2 + value.imag ** 2) * scale[tile, cell]
        zoomed = zoom(tile, cell)
        if (window >= 0).any():   # a held tone's sub-bins only, where it has a window
            offsets = np.abs(np.arange(self.frames)[None, :] - window[:, None])
            sub = np.where((window[:, None] < 0) | (offsets <= FOLLOW_SUBBINS), zoomed,
                           -1.0).argmax(axis=1)
        else:
            sub = zoomed.argmax(axis=1)
        top = zoomed[np.arange(len(tile)), sub]
        # the cell's other sub-bins, clear of the line's own window (two sub-bins a side)
        lobe = np.abs(np.arange(self.frames)[None, :] - sub[:, None]) <= 2
        rest = np.where(lobe, 0.0, zoomed).sum(axis=1) / np.maximum((~lobe).sum(axis=1), 1)
        ok = (top > np.where(followed[cell], self.follow_level, self.level)) & \
            (top > self.contrast * rest)
        if not ok.any():
            return empty_lines()
        # the zoom tells a tone's place within a cell only, and the cells beside see it at
        # the same sub-bin. Near its own cell's centre it is strongest there; nearer an
        # edge, the cell beside on its side holds about as much (down to a quarter) and the
        # one on the other side less (an alias of a tone in the cell below or above fails
        # one of the two). A held tone beside a signal is where it was: the signal fills
        # the cell beside, and the test would lose the tone to it
        at = sub[ok] - self.frames // 2
        below, above = (sub_bin(tile[ok], cell[ok] + side, sub[ok]) for side in (-1, 1))
        side, other = np.where(at > 0, above, below), np.where(at > 0, below, above)
        ok[ok] &= np.where(np.abs(at) < self.frames // 4, top[ok] >= np.maximum(below, above),
                           (side >= other) & (top[ok] >= side / 4)) | (window[ok] >= 0)
        # nor is a strong line's IQ image (its mirror across DC)
        mirror = sub_bin(tile[ok], -cell[ok], (self.frames - sub[ok]) % self.frames)
        ok[ok] &= mirror < self.image_ratio * top[ok]
        tile, cell, sub, top, rest = tile[ok], cell[ok], sub[ok], top[ok], rest[ok]
        if not len(tile):
            return empty_lines()
        fine = self.fft * self.frames
        # the tone's place between sub-bins: the centroid of its sub-bin and the two beside
        zoomed, k = zoomed[ok], np.arange(len(tile))
        lower = zoomed[k, np.maximum(sub - 1, 0)]
        upper = zoomed[k, np.minimum(sub + 1, self.frames - 1)]
        shift = (upper - lower) / np.maximum(lower + top + upper, 1e-30)
        centre = (cell - self.fft // 2) * self.frames + sub + shift - self.frames // 2
        order = np.lexsort((centre, tile))
        tile, centre, top, rest = tile[order], centre[order], top[order], rest[order]
        group = np.cumsum(np.concatenate(([True], (tile[1:] != tile[:-1])
                                          | (np.diff(centre) > 1))))
        order = np.lexsort((-top, group))   # one tone seen in two cells: the stronger
        keep = order[np.concatenate(([True], group[order][1:] != group[order][:-1]))]
        tile, centre, top, rest = tile[keep], centre[keep], top[keep], rest[keep]
        return Lines(tile, (centre - 0.5) / fine, (centre + 0.5) / fine,
                     10 * np.log10(np.maximum(top - 1, 1e-3)),
                     np.round(centre).astype(np.int64) + fine // 2, top, rest)


def lines_in(lines: Lines, tiles: slice) -> Lines:
    """The ``lines`` seen in the tiles ``tiles`` of a batch, their tiles counted from its
    start."""
    keep = (lines.tile >= tiles.start) & (lines.tile < tiles.stop)
    return Lines(lines.tile[keep] - tiles.start, *(a[keep] for a in lines[1:]))


def merge_lines(first: Lines, second: Lines) -> Lines:
    """Two finders' lines together, those of ``second`` within a bin of the tile-long PSD
    of one of ``first``'s in the same tile left out."""
    if not len(second.tile):
        return first
    if len(first.tile):
        same = (second.tile[:, None] == first.tile[None, :]) & \
            (np.abs(second.centre[:, None] - first.centre[None, :]) <= 1)
        second = Lines(*(a[~same.any(axis=1)] for a in second))
    return Lines(*(np.concatenate([a, b]) for a, b in zip(first, second)))
