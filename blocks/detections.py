"""Detection messages: the common format of detectors (cfar_detector, the segmenter).

A detection is a dict, ready for JSON lines, ZeroMQ messages or SigMF annotations::

    {"sample_start": int, "sample_count": int,          # absolute sample span
     "freq_lower_edge": Hz, "freq_upper_edge": Hz,      # absolute (rx_freq + f * rate)
     "center_freq": Hz, "bandwidth": Hz,
     "label": str, "confidence": 0..1, "snr_db": float}

Without a known sample rate, frequencies are normalized (cycles/sample) and ``rate`` is 1.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Track:
    """A signal followed across consecutive analysis blocks (normalized units)."""

    start: int
    stop: int
    f_low: float
    f_high: float
    peak_snr_db: float
    label: str = "signal"
    votes: float = 0.0

    def overlaps(self, f_low: float, f_high: float) -> bool:
        return f_low <= self.f_high and f_high >= self.f_low


def to_message(track: Track, rate: float, center_freq: float, confidence: float) -> dict:
    lo = center_freq + track.f_low * rate
    hi = center_freq + track.f_high * rate
    return {"sample_start": int(track.start), "sample_count": int(track.stop - track.start),
            "freq_lower_edge": float(lo), "freq_upper_edge": float(hi),
            "center_freq": float((lo + hi) / 2), "bandwidth": float(hi - lo),
            "label": track.label, "confidence": round(float(confidence), 4),
            "snr_db": round(float(track.peak_snr_db), 2)}


class Tracker:
    """Joins per-block frequency intervals into tracks; a track ends when a block has no
    interval overlapping it."""

    def __init__(self, max_gap_blocks: int = 0):
        self.open: list[Track] = []
        self.max_gap = max_gap_blocks

    def update(self, start: int, stop: int, intervals: list[tuple[float, float, float, str]]
               ) -> list[Track]:
        """Feed the intervals (f_low, f_high, snr_db, label) of block [start, stop);
        returns the tracks that ended."""
        ended, still = [], []
        used = [False] * len(intervals)
        for track in self.open:
            hit = False
            for i, (lo, hi, snr, label) in enumerate(intervals):
                if not used[i] and track.overlaps(lo, hi) and label == track.label:
                    track.stop = stop
                    track.f_low, track.f_high = min(track.f_low, lo), max(track.f_high, hi)
                    track.peak_snr_db = max(track.peak_snr_db, snr)
                    used[i] = hit = True
            (still if hit else ended).append(track)
        for i, (lo, hi, snr, label) in enumerate(intervals):
            if not used[i]:
                still.append(Track(start, stop, lo, hi, snr, label))
        self.open = still
        return ended

    def flush(self) -> list[Track]:
        ended, self.open = self.open, []
        return ended
