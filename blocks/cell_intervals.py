"""A batch's observations as the tracker's intervals: per tile, the runs of the model's
cells (``model_intervals``) and the narrow lines the tones' search or the fine view found
(``narrow_intervals``), each (f_low, f_high, snr_db, label, confidence)."""
from __future__ import annotations

import numpy as np

from .narrowband import FOLLOW_SUBBINS
from .tracks import bin_edges, row_runs

INSIDE_RISE = 30.0  # a narrow peak on another signal: 15 dB over its surroundings
QUIET_AROUND = 1.5  # mean power around a peak (noise floor 1) below which it stands alone
FOLLOW_RISE = 4.0  # a tone followed beside a signal: 6 dB over the quieter side's cell


def model_intervals(logits, masks, power, presence, classes: list, merge_gap: int,
                    min_bins: int) -> list[list[tuple]]:
    """Per tile, (f_low, f_high, snr_db, label, confidence) of each run of present
    cells: the label from the run's summed class scores, the SNR from its mean power
    (noise floor 1), the confidence its peak presence; vectorized over the batch."""
    per_tile = [[] for _ in range(len(logits))]
    fft = masks.shape[1]
    row, a, b = row_runs(masks, merge_gap, min_bins)
    if not len(row):
        return per_tile
    scores = np.cumsum(logits[:, 1:], axis=2, dtype=np.float64)
    scores = np.concatenate([np.zeros(scores.shape[:2] + (1,)), scores], axis=2)
    labels = np.argmax(scores[row, :, b] - scores[row, :, a], axis=1)
    energy = np.concatenate([np.zeros((len(power), 1)), np.cumsum(power, axis=1)], axis=1)
    snr = 10 * np.log10(np.maximum((energy[row, b] - energy[row, a]) / (b - a) - 1, 1e-3))
    bounds = np.stack([row * fft + a, row * fft + b], axis=1).ravel()
    peak = np.maximum.reduceat(np.append(presence.ravel(), 0), bounds)[::2]
    low, high = bin_edges(a, b, fft)
    for k, lo, hi, s, c, p in zip(row.tolist(), low.tolist(), high.tolist(), snr.tolist(),
                                  labels.tolist(), peak.tolist()):
        per_tile[k].append((lo, hi, s, classes[c], p))
    return per_tile


def narrow_intervals(logits, masks, power, found, classes: list, decim: int, held=None
                     ) -> list[list[tuple]]:
    """Per tile, the narrow signals of the fine view as tracker intervals, labelled
    ``tone`` when no wider than a tone or by the model's votes in their cell. Where
    it sits on another signal (the bins around it are not noise, or the model finds a
    signal in its cell), a peak must rise INSIDE_RISE over that signal (the bins
    around it, and the cells two away): a tone on a wide signal, not that signal's
    own spectral lines. A tone followed for NARROW_MIN_TILES tiles or more (at
    ``held``, the tones' search's sub-bins) that a signal starts beside need only rise
    FOLLOW_RISE over the quieter of the cells two away, where that one is noise
    (QUIET_AROUND): beside that signal, not on it (a line that starts with a signal, at
    its edge, is held to INSIDE_RISE)."""
    fft = masks.shape[1]
    tile = found.tile
    cell = np.minimum(fft - 1, found.centre * fft // decim)
    crowded = (found.around > QUIET_AROUND) | masks[tile, cell]
    sides = np.stack([power[tile, np.maximum(cell - 2, 0)],
                      power[tile, np.minimum(cell + 2, fft - 1)]])
    keep = ~crowded | (found.peak >= INSIDE_RISE * np.maximum(found.around,
                                                              sides.max(axis=0)))
    if held is not None and len(held):
        centre = 0.5 * (found.f_low + found.f_high) * decim
        near = np.abs(centre[:, None] - held[None, :]).min(axis=1)
        quiet = sides.min(axis=0)
        keep |= (near <= FOLLOW_SUBBINS + 0.5) & (quiet < QUIET_AROUND) & \
            (found.peak >= FOLLOW_RISE * quiet)
    out = [[] for _ in range(len(masks))]
    for k in np.flatnonzero(keep).tolist():
        if (found.f_high[k] - found.f_low[k]) * decim <= 3:
            label = "tone"
        else:
            label = classes[int(np.argmax(logits[tile[k], 1:, cell[k]]))]
        out[tile[k]].append((float(found.f_low[k]), float(found.f_high[k]),
                             float(found.snr_db[k]), label, 1.0))
    return out
