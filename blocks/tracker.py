"""The tracker: joins each analysis block's frequency intervals into tracks (``Track``)
and settles a track's label and edges when it ends."""
from __future__ import annotations

import numpy as np

from .psd_stats import median_of, quantile_of
from .tracks import Track

#: blocks a track spans at most before it is reported and a new one continues it: a signal
#: that never ends (a carrier, a beacon) is reported in pieces instead of growing forever
MAX_TRACK_BLOCKS = 2048
# a settled track's search window: this quantile of its blocks' low edges to the mirror
# quantile of their high edges (a neighbour the coarse view merged into it for under half
# of its blocks still lies inside)
WINDOW_QUANTILE = 0.25


class Tracker:
    """Joins per-block frequency intervals into tracks; a track ends when a block has no
    interval overlapping it, or after ``max_blocks`` blocks (the next piece continues it)."""

    def __init__(self, vote_labels: bool = False, hold: int = 0, min_blocks: int = 1,
                 max_blocks: int = MAX_TRACK_BLOCKS, weak_blocks: int = 0,
                 weak_db: float = 0.0):
        """``vote_labels``: a track continues whatever the interval's label, and takes the
        label with the most votes (bins x score) when it ends; otherwise labels must match.
        ``hold``: blocks a track may miss before it ends. ``min_blocks``: shorter tracks
        are not reported, nor those shorter than ``weak_blocks`` whose peak SNR stays under
        ``weak_db`` (a weak signal's flicker; ``dropped_short`` counts both)."""
        self.open: list[Track] = []
        self.vote_labels = vote_labels
        self.hold = hold
        self.min_blocks = min_blocks
        self.weak_blocks, self.weak_db = weak_blocks, weak_db
        self.max_blocks = max_blocks
        self.dropped_short = 0

    def update(self, start: int, stop: int, intervals: list[tuple],
               spectrum: np.ndarray | None = None,
               samples: np.ndarray | None = None,
               zoom: np.ndarray | None = None,
               line: np.ndarray | None = None) -> list[Track]:
        """Feed the intervals (f_low, f_high, snr_db, label[, score]) of block
        [start, stop), and optionally the block's fine PSD (summed into every track seen in
        the block, for ``refine_edges``; ``zoom``: the same ZOOM times finer, ``line``:
        the same as long as the block) and its
        samples (the first few blocks of each track are kept, for ``envelope_features``);
        returns the tracks that ended."""
        ended, still = [], []
        used = [False] * len(intervals)
        for track in self.open:
            hit = False
            for i, (lo, hi, snr, label, *score) in enumerate(intervals):
                same = self.vote_labels or label == track.label
                if not used[i] and track.overlaps(lo, hi) and same:
                    track.votes[label] = track.votes.get(label, 0.0) + (hi - lo) * max(
                        [1e-6, *score])
                    track.stop = stop
                    track.edges.append((lo, hi))
                    track.seen.append(start)
                    track.f_low, track.f_high = min(track.f_low, lo), max(track.f_high, hi)
                    track.peak_snr_db = max(track.peak_snr_db, snr)
                    track.score = max([track.score, *score])
                    used[i] = hit = True
            if hit:
                track.add_spectrum(spectrum, zoom, start, line)
                track.add_samples(start, samples)
            track.missed = 0 if hit else track.missed + 1
            going = track.missed <= self.hold and len(track.edges) < self.max_blocks
            (still if going else ended).append(track)
        for i, (lo, hi, snr, label, *score) in enumerate(intervals):
            if not used[i]:
                track = Track(start, stop, lo, hi, snr, label, max([0.0, *score]),
                              {label: (hi - lo) * max([1e-6, *score])}, [(lo, hi)], [start])
                track.add_spectrum(spectrum, zoom, start, line)
                track.add_samples(start, samples)
                still.append(track)
        self.open = still
        return self._report(ended)

    def flush(self) -> list[Track]:
        ended, self.open = self.open, []
        return self._report(ended)

    def _report(self, tracks: list[Track]) -> list[Track]:
        out = []
        for t in tracks:
            blocks = len(t.edges)
            if blocks >= self.min_blocks and (blocks >= self.weak_blocks or
                                              t.peak_snr_db >= self.weak_db):
                out.append(self._settle(t))
            else:
                self.dropped_short += 1
        return out

    def _settle(self, track: Track) -> Track:
        """Final label (votes) and edges: the median of the per-block edges, so one block
        that saw a wider run (a burst's ramp, a neighbour) does not widen the whole box.
        A signal whose band moves from block to block (a chirp, a sweep, a hopper: the
        centres of its blocks spread wider than its median width) keeps the band it swept,
        the union of its blocks. A steady one also gets a wider search window for
        ``refine_edges`` (``WINDOW_QUANTILE``): a neighbour the coarse view merged into
        the track for under half of its blocks lies outside the median band."""
        if self.vote_labels and track.votes:
            track.label = max(track.votes, key=track.votes.get)
        if track.edges and not track.moves():
            lows, highs = np.array(track.edges).T
            # the median band, and the window's
            track.f_low, track.f_high = float(median_of(lows)), float(median_of(highs))
            track.window = (float(quantile_of(lows, WINDOW_QUANTILE)),
                            float(quantile_of(highs, 1 - WINDOW_QUANTILE)))
        return track
