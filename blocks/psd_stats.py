"""Statistics of PSD bins that the tracks, the tones' searches and the edge rules share:
the level a mean of white-noise periodogram bins exceeds with a given probability, and
medians and quantiles with numpy's values at a tenth of the cost of its general machinery
(the detections ask for thousands a second)."""
from __future__ import annotations

import functools
import math

import numpy as np


def spread(values: np.ndarray) -> float:
    """The spread of ``values`` from their 10th to their 90th percentile (how far a
    track's band moved, its outliers aside)."""
    return float(quantile_of(values, 0.9) - quantile_of(values, 0.1))


def median_of(values: np.ndarray):
    """``np.median`` of a 1-d array of finite numbers (the same value, and for floats the
    same type), without numpy's general machinery (which costs ten times the partition)."""
    half = len(values) // 2
    if len(values) % 2:
        return np.partition(values, half)[half]
    part = np.partition(values, (half - 1, half))
    return (part[half - 1] + part[half]) / 2


def quantile_of(values: np.ndarray, q: float):
    """``np.quantile(values, q, axis=0)`` (linear between the sorted values; the same value
    and type) for one quantile of finite floats, without numpy's general machinery."""
    at = (len(values) - 1) * q
    lo = min(math.floor(at), len(values) - 1)
    hi = min(lo + 1, len(values) - 1)
    part = np.partition(values, (lo, hi) if hi != lo else lo, axis=0)
    low, step, t = part[lo], part[hi] - part[lo], at - lo
    return part[hi] - step * (1 - t) if t >= 0.5 else low + step * t


def noise_levels(pfa: float, n: np.ndarray) -> np.ndarray:
    """The level a mean of ``n`` white-noise periodogram bins (unit mean) exceeds with
    probability ``pfa`` (the gamma distribution's upper tail inverted), for each of the
    counts ``n``."""
    import scipy.special   # here: a quarter second to import, kept off the worker's start
    count = np.asarray(n, np.float64)
    return scipy.special.gammainccinv(count, pfa) / count


@functools.lru_cache(maxsize=64)
def noise_level_table(pfa: float, step: int, count: int) -> np.ndarray:
    """``noise_levels`` for the counts step, 2 step, ... count step (k step at index k - 1),
    kept: ``split_by_presence`` asks for hundreds of them on every run it looks at."""
    table = noise_levels(pfa, step * np.arange(1, count + 1))
    table.flags.writeable = False
    return table


@functools.lru_cache(maxsize=256)
def noise_level(pfa: float, n: int) -> float:
    """``noise_levels`` for one count (kept: the same few are asked for every block)."""
    return float(noise_levels(pfa, n))


def float32_threshold(levels) -> np.ndarray:
    """``levels`` (float64) as float32 thresholds that float32 values pass (``>``) exactly
    where they pass ``levels``: the largest float32 not above each (a float32 array
    compared with float64 levels is promoted first, four times slower)."""
    levels = np.asarray(levels, np.float64)
    rounded = levels.astype(np.float32)
    return np.where(rounded > levels, np.nextafter(rounded, np.float32(-np.inf)), rounded)


def middle_bands(excess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``excess`` (power over the noise, bins of a band), the bins [lo, hi) that
    hold the middle 80 % of it."""
    share = np.cumsum(excess, axis=1) / np.maximum(excess.sum(axis=1, keepdims=True), 1e-12)
    return np.argmax(share >= 0.1, axis=1), np.argmax(share >= 0.9, axis=1) + 1
