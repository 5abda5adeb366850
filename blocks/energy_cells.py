"""The energy test (``spectrum_segmenter``'s ``energy_sigma``): cells the model leaves
whose power shows a weak signal, narrow against the model's cells."""
from __future__ import annotations

import numpy as np

from .tracks import dilate_rows

#: the energy test (``energy_sigma``) looks this many cells or more away from the model's own
ENERGY_GUARD = 4
#: and at cells under this power over their bin's floor (10 dB): what stands higher and the
#: model leaves is a strong signal's skirt or line, not a weak signal it missed
ENERGY_CAP = 10.0
#: nor at a strong signal's IQ image: receivers reject images by some 25-40 dB
IMAGE_REJECTION_DB = 25.0
#: a cell the energy test finds alone holds a line (a CW tone), not a narrow signal, where
#: its strongest bin of the tile-long PSD stands this many times its median bin
LINE_PEAK = 15.0


def energy_level(sigma: float, frames: int) -> float:
    """The mean cell power over two tiles (noise floor 1) that ``sigma`` deviations of
    white noise reach: mean 1, deviation 1 / sqrt(2 frames)."""
    return 1 + sigma / np.sqrt(2 * frames)


class EnergyCells:
    """Cells the model leaves that hold a weak signal by their energy: the cell's mean
    power over this tile and the previous stands ``energy_sigma`` deviations over the
    noise (white-noise cells: mean 1, standard deviation 1 / sqrt(2 frames)) in units
    of both its tile's floor and its bin's (``power`` / ``bins``: a floor fitted across
    the band strays at its edges, a flat one where the receiver tilts it), under
    ENERGY_CAP over its bin's, not a strong signal's IQ image (its mirror across DC at
    most IMAGE_REJECTION_DB stronger), ENERGY_GUARD cells or more from the model's own
    cells, in runs of two cells or more, or alone where the cell held energy in the
    tile before too (a signal half a cell wide stays; a chirp's sweep or a strong
    signal's flicker moves on) and is no line (``not_lines``; with the tile-long PSDs
    at hand: ``weak_tones`` or ``narrow``). The model misses such signals (a few dB
    over the noise in a cell, narrow against it) that the cell's frames show.
    The block counts them as ``energy_cells``."""

    def __init__(self, sigma: float, fft: int, frames: int):
        self.level = energy_level(sigma, frames)
        self.fft, self.decim = fft, fft * frames
        self.mirror = np.r_[0, np.arange(fft - 1, 0, -1)]  # bin of -f, DC-centred
        self.last_power = None   # the previous tile's cell power over its floors
        self.last_cells = None   # and its cells that held energy

    def find(self, power: np.ndarray, bins: np.ndarray, masks: np.ndarray,
             whole: np.ndarray | None) -> np.ndarray:
        """(tiles, fft) the cells of one batch that hold a weak signal by their energy
        (``power``: cell power over the tile's floor, ``bins``: each bin's floor over the
        tile's, ``masks``: the model's cells, ``whole``: the tile-long PSDs or None)."""
        both = np.stack([power, power / bins])
        prev = np.concatenate([both[:, :1] if self.last_power is None else
                               self.last_power[:, None], both[:, :-1]], axis=1)
        self.last_power = both[:, -1].copy()
        flat, fitted = 0.5 * (both + prev)
        level = self.level
        cells = (flat > level) & (fitted > level) & (fitted < ENERGY_CAP)
        cells &= fitted[:, self.mirror] < fitted * 10 ** (IMAGE_REJECTION_DB / 10)
        cells &= ~dilate_rows(masks, ENERGY_GUARD)
        paired = np.zeros_like(cells)
        paired[:, 1:] |= cells[:, :-1]
        paired[:, :-1] |= cells[:, 1:]
        before = np.concatenate([np.zeros_like(cells[:1]) if self.last_cells is None else
                                 self.last_cells[None], cells[:-1]])
        self.last_cells = cells[-1].copy()
        cells &= paired | self.not_lines(before & cells & ~paired, whole)
        return cells

    def not_lines(self, lone: np.ndarray, whole: np.ndarray | None) -> np.ndarray:
        """Of the cells ``lone``, those whose power the tile-long PSDs ``whole`` do not
        show in one line (a CW tone, which the tones' search reports at its width): their
        strongest bin under LINE_PEAK times their median bin; none without ``whole``."""
        if whole is None or not lone.any():
            return np.zeros_like(lone)
        tile, cell = np.nonzero(lone)
        per_cell = self.decim // self.fft   # a cell's bins, centred on it
        bin_ = (cell[:, None] * per_cell - per_cell // 2 + np.arange(per_cell)) % self.decim
        fine = whole[tile[:, None], bin_]
        keep = np.zeros_like(lone)
        keep[tile, cell] = fine.max(axis=1) < LINE_PEAK * np.median(fine, axis=1)
        return keep
