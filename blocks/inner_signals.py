"""A narrow signal inside a wide one's band: a flat plateau standing over the wide
signal's level (``raised_plateaus``), its edges out over its roll-off (``roll_off_edges``)
and since when it stood alone in the track's blocks (``raised_since``)."""
from __future__ import annotations

import copy

import numpy as np

from .psd_runs import beside
from .tracks import band_bins, bin_edges, merge_runs


#: ``raised_plateaus``: a narrow signal inside a wide one's band stands RAISED_DB or more
#: over the wide one's level on both sides (on its PSD smoothed over RAISED_SMOOTH bins), at
#: least RAISED_MIN_BINS wide, at most half the band and RAISED_CLEAR bins or more in from its
#: edges; the sides within RAISED_SIDE_DB of the band's median (a flat top, not a valley
#: between an FSK's lobes) and its own top flat within RAISED_FLAT_DB (not a line)
RAISED_DB, RAISED_SMOOTH, RAISED_MIN_BINS, RAISED_CLEAR = 3.0, 5, 8, 8
RAISED_SIDE_DB, RAISED_FLAT_DB = 1.5, 4.0
#: ... over a band whose median stands RAISED_FLOOR_DB over the noise (a weak one's level
#: wanders by more than a plateau's rise)
RAISED_FLOOR_DB = 6.0


def raised_plateaus(psd: np.ndarray, a: int, b: int) -> list[tuple[int, int]]:
    """The bins [lo, hi) of each narrow signal inside the band [a, b) of a wide one on
    ``psd`` (noise 1 per bin): a flat run standing RAISED_DB over the wide signal's level on
    both sides (constants above), with steep sides: the wide one's multipath ripples and
    an FSK's lobes rise gradually or stand at the band's edge."""
    db = plateau_db(psd, a, b)
    level = float(np.median(db))
    if level < RAISED_FLOOR_DB:
        return []
    out = []
    for lo, hi in merge_runs(db > level + RAISED_DB, 2):
        width = hi - lo
        if not RAISED_MIN_BINS <= width <= (b - a) // 2 or lo < RAISED_CLEAR or \
                hi > b - a - RAISED_CLEAR:
            continue
        left, right, top = plateau_levels(db, lo, hi)
        if min(left, right) < level - RAISED_SIDE_DB or abs(left - right) > 2 * RAISED_SIDE_DB \
                or float(np.median(top)) - max(left, right) < RAISED_DB or \
                float(np.quantile(top, 0.9) - np.quantile(top, 0.1)) > RAISED_FLAT_DB:
            continue
        out.append((a + lo, a + hi))
    return out


def plateau_levels(db: np.ndarray, lo: int, hi: int) -> tuple[float, float, np.ndarray]:
    """Of a run [lo, hi) of ``plateau_db``: the wide signal's level either side of it (the
    medians of as many bins as half the run, RAISED_MIN_BINS or more, ``beside``) and its
    top (the run less its edge bins), in dB."""
    left, right = (float(np.median(s)) for s in
                   beside(db, lo, hi, max(RAISED_MIN_BINS, (hi - lo) // 2)))
    return left, right, db[lo + 1:hi - 1]


def plateau_db(psd: np.ndarray, a: int, b: int) -> np.ndarray:
    """Bins [a, b) of ``psd`` in dB, smoothed over RAISED_SMOOTH bins (a median: a line or
    a noise spike does not move it), as ``raised_plateaus`` reads a wide signal's band."""
    from scipy.ndimage import median_filter   # (kept off the worker's start)
    return median_filter(10 * np.log10(np.maximum(psd[a:b], 1e-12)), RAISED_SMOOTH,
                         mode="nearest")


#: ``roll_off_edges``: a narrow signal inside a wide one reaches out from its plateau to
#: where its excess over the wide one falls to ROLL_OFF_SHARE of the plateau's (a raised
#: cosine's outer tenth), at most ROLL_OFF_REACH of the plateau's width on either side
ROLL_OFF_SHARE, ROLL_OFF_REACH = 0.1, 0.25


def roll_off_edges(psd: np.ndarray, a: int, b: int, plateau: tuple[int, int]
                   ) -> tuple[int, int]:
    """The bins [lo, hi) of a narrow signal inside the band [a, b) of a wide one on
    ``psd``, from its ``plateau`` (``raised_plateaus``) out over its pulse shaping's
    roll-off, which stands on the wide one's level: to where its excess over the level
    beside it falls to ROLL_OFF_SHARE of the plateau's (constants above). A raised-cosine
    spectrum's flat top is 1 - beta times its symbol rate wide, its band 1 + beta times;
    this reaches 1 + 0.6 beta (an edge as sharp as a step stays where it is)."""
    db = plateau_db(psd, a, b)
    lo, hi = plateau[0] - a, plateau[1] - a
    reach = int(ROLL_OFF_REACH * (hi - lo))
    *sides, top = plateau_levels(db, lo, hi)
    top = 10 ** (float(np.median(top)) / 10)
    floors = [10 * np.log10(level + ROLL_OFF_SHARE * (top - level))
              for level in (10 ** (side / 10) for side in sides)]
    first, last = max(lo - reach, 0), min(hi + reach, len(db))
    while lo > first and db[lo - 1] > floors[0]:
        lo -= 1
    while hi < last and db[hi] > floors[1]:
        hi += 1
    return a + lo, a + hi


def raised_since(rows: list, start: int, f_low: float, f_high: float, block: int,
                 hold: int) -> int:
    """Where a narrow signal found inside a wide one from ``start`` on (``raised_plateaus``)
    began, if before: the start of the run of ``rows`` ((start, fine PSD) per block, in time
    order, as ``Track.rows``) just before ``start``, at most ``hold`` blocks apart, in which
    its band [f_low, f_high] stands RAISED_DB over the bins either side (as wide as half the
    band, RAISED_MIN_BINS / 2 or more, 2 bins out) and RAISED_FLOOR_DB over the noise
    (median levels): the narrow signal alone, before the wide one came up around it."""
    if not rows:
        return start
    lo, hi = band_bins(f_low, f_high, len(rows[0][1]))
    side = max(RAISED_MIN_BINS // 2, (hi - lo) // 2)
    for t, psd in reversed(rows):
        if t >= start:
            continue
        if start - t > (hold + 1) * block:
            break
        db = 10 * np.log10(np.maximum(psd, 1e-12))
        level = float(np.median(db[lo:hi]))
        if level < RAISED_FLOOR_DB or any(len(s) < 2 or level - float(np.median(s)) < RAISED_DB
                                          for s in beside(db, lo, hi, side)):
            break
        start = t
    return start


def add_inner_signals(split: list, families: tuple, block: int, hold: int, classify) -> int:
    """Add to each track's detections in ``split`` ((track, its detections)) the narrow
    signals inside the band of one labelled one of ``families`` (flat-topped), each a
    plateau over it on its finest view (``raised_plateaus``) with its time (from where its
    band stood alone before the wide one, ``raised_since``; ``block`` samples a block,
    ``hold`` blocks apart at most) and the plateau's SNR, labelled by ``classify`` on the
    plateau (the shape the family classifier learnt), then reported out over its roll-off
    (``roll_off_edges``). Returns how many."""
    found, plateaus = [], []
    for track, parts in split:
        for part in [p for p in parts if p.label in families and p.spectra]:
            view = (part.spectrum if part.zoom is None else part.zoom) / part.spectra
            band = band_bins(part.f_low, part.f_high, len(view))
            for lo, hi in raised_plateaus(view, *band):
                inner = copy.copy(part)
                inner.f_low, inner.f_high = (float(e) for e in bin_edges(lo, hi, len(view)))
                inner.label_confidence = inner.guess = None
                inner.inner = True
                # its SNR: the plateau's mean excess over the noise (not the wide one's)
                excess = float(np.mean(view[lo:hi])) - 1.0
                inner.peak_snr_db = 10 * np.log10(max(excess, 1e-3))
                # where it was there alone before the wide one came up around it
                inner.start = raised_since(track.rows, inner.start, inner.f_low,
                                           inner.f_high, block, hold)
                parts.append(inner)
                found.append(inner)
                plateaus.append((view, band, (lo, hi)))
    if found:
        classify(found)
        for inner, (view, band, plateau) in zip(found, plateaus):
            inner.f_low, inner.f_high = (float(e) for e in bin_edges(
                *roll_off_edges(view, *band, plateau), len(view)))
    return len(found)
