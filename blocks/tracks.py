"""Detections as detectors make them: a signal followed across analysis blocks
(``Track``; ``tracker.Tracker`` joins each block's runs into tracks), the message a
finished track becomes (``to_message``), the stream's radio context that makes its
frequencies absolute (``RadioContext``), and the helpers on PSD bins and runs that the
tracker and the edge rules (``detections``) share (their statistics: ``psd_stats``).

A detection message is a dict, ready for JSON lines, ZeroMQ messages or SigMF
annotations::

    {"sample_start": int, "sample_count": int,          # absolute sample span
     "freq_lower_edge": Hz, "freq_upper_edge": Hz,      # absolute (rx_freq + f * rate)
     "center_freq": Hz, "bandwidth": Hz,
     "label": str, "confidence": 0..1, "snr_db": float}

A family classifier adds ``"label_confidence"`` (its calibrated probability of the best
family) and, where that is too low and the label is ``"unknown"``, ``"label_guess"`` (the
best family).

Without a known sample rate, frequencies are normalized (cycles/sample) and ``rate`` is 1.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from cvstream.chunk import tag_number

from .psd_stats import median_of, middle_bands, noise_level, quantile_of, spread


class RadioContext:
    """Sample rate and centre frequency of a stream: the block's parameters when set,
    otherwise the latest ``rx_rate`` / ``rx_freq`` tags (0 / 0.0 while unknown)."""

    def __init__(self, rate: float = 0.0, freq: float = 0.0, fixed_freq: bool = False):
        self.fixed_rate, self.fixed_freq = bool(rate), fixed_freq or bool(freq)
        self.rate, self.freq = rate, freq

    def update(self, tags) -> int:
        """Take the latest rates and frequencies; returns how many such tags were unusable
        (not a finite number, or a rate that is not positive)."""
        bad = 0
        for tag in tags:
            if tag.key not in ("rx_rate", "rx_freq"):
                continue
            value = tag_number(tag)
            if value is None or (tag.key == "rx_rate" and value <= 0):
                bad += 1
            elif tag.key == "rx_rate" and not self.fixed_rate:
                self.rate = value
            elif tag.key == "rx_freq" and not self.fixed_freq:
                self.freq = value
        return bad


#: blocks whose ZOOM times finer PSD a track keeps one by one, for the parts
#: time_segments cuts (2048 float32 values a block: up to 256 kB a track)
FINER_ROWS = 32

#: samples a track keeps (its first blocks) for its envelope statistics
SAMPLE_LIMIT = 32768
#: in-band samples those statistics want: a narrower track keeps more of its first
#: blocks, up to NARROW_SAMPLE_BLOCKS (a 0.4 % band holds 33 samples of a block of 8192)
ENVELOPE_IN_BAND = 2048
NARROW_SAMPLE_BLOCKS = 16
#: blocks of samples a track keeps of its later life, evenly thinned as it goes on (every
#: block, then every other, every fourth, ...): a detection cut from the track later (a
#: burst beside the neighbour the track began with) takes its statistics from these
LATER_BLOCKS = 8
#: a band at most this many bins of the block-long PSD wide is a line, a tone
#: (``Track.is_line``)
LINE_BINS = 1.5
#: ``Track.unheld``: blocks a weaker signal under a part's burst must hold to be looked at
UNHELD_MIN_BLOCKS = 6


@dataclass(eq=False)
class Track:
    """A signal followed across consecutive analysis blocks (normalized units). Tracks are
    compared by identity (two signals may share every field; a value comparison would also
    compare their PSD arrays)."""

    start: int
    stop: int
    f_low: float
    f_high: float
    peak_snr_db: float
    label: str = "signal"
    score: float = 0.0   # detector confidence (0..1), the track's maximum
    votes: dict = field(default_factory=dict)  # label -> bandwidth x score seen
    edges: list = field(default_factory=list)  # (f_low, f_high) of every block it was seen in
    seen: list = field(default_factory=list)   # the start of that block, per entry of edges
    missed: int = 0      # consecutive blocks without a hit
    spectrum: np.ndarray | None = None  # sum of the fine PSDs of the blocks it was seen in
    spectra: int = 0                    # how many were summed
    zoom: np.ndarray | None = None      # the same sum at ZOOM times the resolution, if kept
    line: np.ndarray | None = None      # and at the block's length (one periodogram each)
    rows: list = field(default_factory=list)  # (start, fine PSD) of each block it was seen in
    finer_rows: list = field(default_factory=list)  # (start, zoom) of its first blocks
    samples: list = field(default_factory=list)  # (start, samples) of its first blocks
    later: list = field(default_factory=list)    # and of later blocks, thinned
    later_stride: int = 1                        # later blocks kept: one of this many
    later_offered: int = 0                       # later blocks it was seen in
    label_confidence: float | None = None  # a family classifier's, calibrated
    guess: str | None = None               # its best family, where the label is "unknown"
    window: tuple | None = None  # (f_low, f_high) refine_edges searches, if wider
    inner: bool = False  # a narrow signal cut out inside a wide one's band
    lone: bool = False   # a tone in its reach that none of its parts held (lone_lines)
    stray: bool = False   # a tone among a part's lines but none of them (stray_tones)

    def add_spectrum(self, psd: np.ndarray | None, zoom: np.ndarray | None = None,
                     start: int | None = None, line: np.ndarray | None = None) -> None:
        """Sum a block's fine PSD (and its ZOOM times finer one, and its block-long one)
        into the track's; with ``start``, also keep the block's row (``own_spans``) and,
        for its first FINER_ROWS blocks, its ZOOM times finer one (a part cut from it in
        time, ``time_segments``, sums its own)."""
        if psd is None:
            return
        if start is not None:
            self.rows.append((start, psd))
            if len(self.finer_rows) < FINER_ROWS and zoom is not None:
                self.finer_rows.append((start, zoom.astype(np.float32)))
        if self.spectrum is None:
            self.spectrum = psd.astype(np.float64)
            self.zoom = None if zoom is None else zoom.astype(np.float64)
            self.line = None if line is None else line.astype(np.float64)
        else:
            self.spectrum += psd
            if self.zoom is not None and zoom is not None:
                self.zoom += zoom
            if self.line is not None and line is not None:
                self.line += line
        self.spectra += 1

    def add_samples(self, start: int, block: np.ndarray | None) -> None:
        """Keep a copy of the samples of the block at ``start`` while fewer than
        SAMPLE_LIMIT are held, or fewer than ENVELOPE_IN_BAND in its band so far (up to
        NARROW_SAMPLE_BLOCKS blocks), then of one later block in ``later_stride`` (the
        stride doubles whenever more than LATER_BLOCKS are held; for
        ``envelope_features``)."""
        if block is None:
            return
        held = sum(len(x) for _, x in self.samples)
        if held < SAMPLE_LIMIT or (held * (self.f_high - self.f_low) < ENVELOPE_IN_BAND
                                   and len(self.samples) < NARROW_SAMPLE_BLOCKS):
            self.samples.append((start, np.array(block, np.complex64)))
            return
        if self.later_offered % self.later_stride == 0:
            self.later.append((start, np.array(block, np.complex64)))
            if len(self.later) > LATER_BLOCKS:
                self.later = self.later[::2]
                self.later_stride *= 2
        self.later_offered += 1

    def keep_samples(self, start: int, stop: int) -> None:
        """Keep only the samples of blocks in [start, stop) (a part of the track); where
        none is, all stay (the statistics then describe the track around it)."""
        first = [(t, x) for t, x in self.samples if start <= t < stop]
        later = [(t, x) for t, x in self.later if start <= t < stop]
        if first or later:
            self.samples, self.later = first, later

    def envelope_blocks(self) -> list:
        """The blocks of samples its envelope statistics are taken on, in time order:
        those held, until SAMPLE_LIMIT samples and ENVELOPE_IN_BAND in its band."""
        blocks, held = [], 0
        width = max(self.f_high - self.f_low, 0.0)
        for t, x in self.samples + self.later:
            if held >= SAMPLE_LIMIT and held * width >= ENVELOPE_IN_BAND:
                break
            blocks.append((t, x))
            held += len(x)
        return blocks

    def own_blocks(self, block: int) -> "Track":
        """A part of this track (an edge split of it, ``refine_edges``) narrowed to the
        blocks whose runs reached its band: its own time span, per-block edges and
        samples; ``block`` is the block length in samples."""
        mine = [k for k, (lo, hi) in enumerate(self.edges) if self.overlaps(lo, hi)]
        if not mine:
            return self
        self.seen = [self.seen[k] for k in mine]
        self.edges = [self.edges[k] for k in mine]
        self.start, self.stop = min(self.seen), max(self.seen) + block
        self.keep_samples(self.start, self.stop)
        return self

    def own_spans(self, block: int, frames: int, hold: int, min_blocks: int = 2,
                  pfa: float = 1e-3, rise: float = 0.25) -> list["Track"]:
        """A part of this track (an edge split of it, ``refine_edges``) cut to the blocks
        where its own band of the block's fine PSD (``rows``, ``frames`` periodograms a
        block) holds it: the band's mean stands above the noise (false-alarm probability
        ``pfa``) and at ``rise`` or more of the part's usual excess over it (the 90th
        percentile over its blocks: a neighbour's skirt in the band is not the part).
        Runs of such blocks joined across up to ``hold`` blocks without, each of at least
        ``min_blocks``, are one detection each, with their own blocks' edges, samples and
        summed PSD: a burst beside a continuous neighbour, which one coarse track followed
        through both, ends when it does, and one that comes twice is two. None where it
        holds its band only in shorter runs (a neighbour's first tile at the end of a
        track); ``own_blocks`` without rows, or where no block shows it (a weak signal)."""
        if not self.rows:
            return [self.own_blocks(block)]
        starts = np.array([t for t, _ in self.rows])
        on = self.held(frames, pfa, rise)
        runs, position = [], starts // block
        for k in np.flatnonzero(on):
            if runs and position[k] - position[runs[-1][-1]] <= hold + 1:
                runs[-1].append(k)
            else:
                runs.append([k])
        out = []
        for run in runs:
            if len(run) < min_blocks:
                continue
            out.append(self.span([self.rows[k] for k in run], int(starts[run[0]]),
                                 int(starts[run[-1]]) + block))
        if not out and on.any():
            return []   # it holds its band only in blips shorter than min_blocks
        return out or [self.own_blocks(block)]

    def unheld(self, spans: list, block: int, frames: int, pfa: float = 1e-3
               ) -> "Track | None":
        """The blocks of this part (an edge split of a track, ``refine_edges``) that none of
        its ``spans`` (``own_spans``) holds but where its band still stands over the noise
        (false-alarm probability ``pfa``, ``frames`` periodograms a block), as a part of
        their own over their rows, if UNHELD_MIN_BLOCKS or more: a weaker signal that
        shares the band with a stronger burst over it. ``block``: samples per block."""
        if not self.rows:
            return None
        taken = {int(t) for span in spans for t, _ in span.rows}
        a, b = self.band_bins(len(self.rows[0][1]))
        level = noise_level(pfa, frames * (b - a))
        rows = [(t, row) for t, row in self.rows
                if int(t) not in taken and row[a:b].mean() > level]
        if len(rows) < UNHELD_MIN_BLOCKS:
            return None
        part = self.span(rows, int(rows[0][0]), int(rows[-1][0]) + block)
        part.window = None
        return part

    def held(self, frames: int, pfa: float = 1e-3, rise: float = 0.25) -> np.ndarray:
        """Per row (``rows``), whether its own band holds it (``own_spans``' test). A band
        narrower than a bin of the rows (a CW tone) must also hold it on the rows' views
        ZOOM times finer, where it kept one for every row (``finer_rows``) and where that
        leaves any row: a neighbour's skirt in the tone's coarser bin is not the tone."""
        size = len(self.rows[0][1])
        held = _band_held([row for _, row in self.rows], self.band_bins(size), frames, pfa,
                          rise)
        if (self.f_high - self.f_low) * size < 1 and self.finer_rows:
            finer = {int(t): row for t, row in self.finer_rows}
            if all(int(t) in finer for t, _ in self.rows):
                rows = [finer[int(t)] for t, _ in self.rows]
                both = held & _band_held(rows, self.band_bins(len(rows[0])),
                                         frames * size // len(rows[0]), pfa, rise)
                if both.any():
                    return both
        return held

    def band_bins(self, fine: int) -> tuple[int, int]:
        """The bins [a, b) of a DC-centred ``fine``-point PSD inside its band (one at least)."""
        return band_bins(self.f_low, self.f_high, fine)

    def motion(self) -> tuple[float, float]:
        """How its band moved from block to block, relative to its bandwidth: the spread
        (10th to 90th percentile) of its blocks' centres and their median width (a chirp
        sweeps: a wide spread of narrow blocks; others stay put and fill their band). From
        its own blocks' fine PSD (``rows``: the band holding 10-90 % of each block's power
        over the noise), else from its blocks' edges (which, for a part of a track that
        held neighbours, are the whole track's)."""
        bw = max(self.f_high - self.f_low, 1e-12)
        if self.rows:
            a, b = self.band_bins(len(self.rows[0][1]))
            excess = np.maximum(np.stack([row[a:b] for _, row in self.rows]) - 1, 0)
            excess = excess[excess.sum(axis=1) > 0]
            if len(excess):
                lo, hi = middle_bands(excess)
                return (spread(0.5 * (lo + hi - 1)) / (b - a),
                        float(median_of(hi - lo)) / (b - a))
        if not self.edges:
            return 0.0, 1.0
        lows, highs = np.array(self.edges).T
        return spread(0.5 * (lows + highs)) / bw, float(median_of(highs - lows)) / bw

    def span(self, rows: list, start: int, stop: int, finer: bool = False) -> "Track":
        """A copy of this track over [start, stop) only: those ``rows``, their summed fine
        PSD, and its blocks' edges and samples within the span; with ``finer``, also its
        summed ZOOM times finer PSD where it kept one for each of those rows (else none;
        the block-long one is summed for whole tracks only)."""
        part = copy.copy(self)
        part.start, part.stop, part.rows = start, stop, rows
        part.spectrum = np.sum([row for _, row in rows], axis=0, dtype=np.float64)
        part.spectra = len(rows)
        part.zoom = part.line = None
        if finer:
            wanted = {int(t) for t, _ in rows}
            zooms = [z for t, z in self.finer_rows if int(t) in wanted]
            if zooms and len(zooms) == len(rows):
                part.zoom = np.sum(zooms, axis=0, dtype=np.float64)
        mine = [k for k, t in enumerate(self.seen) if start <= t < stop]
        part.seen = [self.seen[k] for k in mine] or [start]
        part.edges = [self.edges[k] for k in mine] or [(self.f_low, self.f_high)]
        part.keep_samples(start, stop)
        return part

    def block_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Each block's band (lows, highs): the union of the runs it was seen in there (a
        track over neighbours the coarse view joined meets several runs a block)."""
        lows, highs = np.array(self.edges, np.float64).reshape(-1, 2).T
        _, block = np.unique(np.asarray(self.seen), return_inverse=True)
        low = np.full(block.max() + 1, np.inf)
        high = np.full(block.max() + 1, -np.inf)
        np.minimum.at(low, block, lows)
        np.maximum.at(high, block, highs)
        return low, high

    def moves(self) -> bool:
        """Whether its band moved from block to block (a chirp, a sweep, a hopper): the
        centres of its runs spread wider than their median width (neighbours joined in one
        track that come and go move them too: ``sweeps`` tells those apart)."""
        if not self.edges:
            return False
        lows, highs = np.array(self.edges).T
        return bool(spread(0.5 * (lows + highs)) > median_of(highs - lows))

    def sweeps(self) -> bool:
        """Whether both edges of its blocks' bands (``block_edges``) moved, each spreading
        wider than their median width: a chirp's or a sweep's band, not a band that
        neighbours joined for a while widened at one edge."""
        if not self.edges:
            return False
        lows, highs = self.block_edges()
        width = median_of(highs - lows)
        return bool(spread(lows) > width and spread(highs) > width)

    def overlaps(self, f_low: float, f_high: float) -> bool:
        return f_low <= self.f_high and f_high >= self.f_low

    def shared_time(self, other: "Track") -> int:
        """Samples of its span that ``other``'s span shares (negative: the gap)."""
        return min(self.stop, other.stop) - max(self.start, other.start)

    def shared_band(self, other: "Track") -> float:
        """Width of its band that ``other``'s band shares (negative: the gap)."""
        return min(self.f_high, other.f_high) - max(self.f_low, other.f_low)

    def is_line(self, block: int) -> bool:
        """Whether its band is at most LINE_BINS bins of a ``block``-point PSD wide (a
        line: a tone)."""
        return (self.f_high - self.f_low) * block <= LINE_BINS

    @property
    def centre(self) -> float:
        """The centre of its band (normalized frequency)."""
        return 0.5 * (self.f_low + self.f_high)

    def band_iou(self, other: "Track") -> float:
        """Its band's and ``other``'s intersection over their union (negative: apart)."""
        union = max(self.f_high, other.f_high) - min(self.f_low, other.f_low)
        return self.shared_band(other) / max(union, 1e-12)


def _band_held(rows: list, band: tuple[int, int], frames: int, pfa: float, rise: float
               ) -> np.ndarray:
    """``Track.held``'s test on PSD ``rows`` (``frames`` periodograms each): the mean of
    each over ``band`` ([a, b) bins) stands above the noise (false-alarm probability
    ``pfa``) and at ``rise`` or more of the 90th percentile of their excess over it."""
    a, b = band
    level = np.array([row[a:b] for row in rows]).mean(axis=1).astype(np.float64)
    excess = level - 1
    return (level > noise_level(pfa, frames * (b - a))) & \
        (excess >= rise * quantile_of(excess, 0.9))


def dilate_rows(mask: np.ndarray, reach: int) -> np.ndarray:
    """A 2-d ``mask`` dilated along its rows by ``reach`` cells each way (what
    ``binary_dilation`` with a (1, 2 reach + 1) structure gives, at a quarter of the cost
    on a batch's cells)."""
    rows, n = mask.shape
    count = np.zeros((rows, n + 2 * reach + 1), np.int32)   # cells set up to each
    np.cumsum(mask, axis=1, out=count[:, reach + 1:n + reach + 1])
    count[:, n + reach + 1:] = count[:, n + reach:n + reach + 1]
    return count[:, 2 * reach + 1:] > count[:, :-2 * reach - 1]


def band_bins(f_low: float, f_high: float, fine: int) -> tuple[int, int]:
    """The bins [a, b) of a DC-centred ``fine``-point PSD whose centres lie in the band
    [f_low, f_high]; for a band that holds no bin's centre, the bin nearest its centre
    (a CW tone's band, one bin of a finer PSD); ``bin_edges`` the other way."""
    a, b = int(np.ceil(f_low * fine)), int(np.floor(f_high * fine)) + 1
    if b <= a:
        a = int(np.floor(0.5 * (f_low + f_high) * fine + 0.5))
        b = a + 1
    a = min(max(a + fine // 2, 0), fine - 1)
    return a, max(min(b + fine // 2, fine), a + 1)


def bin_edges(a, b, fft: int):
    """Normalized frequency edges of DC-centred FFT bins [a, b), within [-0.5, 0.5]; ``a``
    and ``b`` may be arrays of runs."""
    return (np.maximum(-0.5, (a - fft // 2 - 0.5) / fft),
            np.minimum(0.5, (b - fft // 2 - 0.5) / fft))


def merge_runs(mask, gap: int) -> list[tuple[int, int]]:
    """[start, stop) runs of True in a 1-d mask, joining runs at most ``gap`` apart."""
    _, start, stop = row_runs(np.asarray(mask, bool)[None], gap)
    return list(zip(start.tolist(), stop.tolist()))


def row_runs(masks: np.ndarray, gap: int, min_len: int = 1
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``merge_runs`` for every row of a 2-d mask at once: (row, start, stop) arrays of the
    runs, in row order, joined across gaps of at most ``gap`` and at least ``min_len`` long."""
    rows, width = masks.shape
    edges = np.zeros((rows, width + 2), np.int8)
    edges[:, 1:-1] = masks
    # row-major order: each run's start, then its stop (the rows' ends are zeros)
    change = np.flatnonzero(np.diff(edges, axis=1))
    row, start = np.divmod(change[0::2], width + 1)
    stop = change[1::2] - row * (width + 1)
    if len(row) > 1:
        join = (row[1:] == row[:-1]) & (start[1:] - stop[:-1] <= gap)
        if join.any():
            first, last = np.concatenate(([True], ~join)), np.concatenate((~join, [True]))
            row, start, stop = row[first], start[first], stop[last]
    keep = stop - start >= min_len
    return row[keep], start[keep], stop[keep]


def to_message(track: Track, rate: float, center_freq: float, confidence: float) -> dict:
    lo = center_freq + track.f_low * rate
    hi = center_freq + track.f_high * rate
    return {"sample_start": int(track.start), "sample_count": int(track.stop - track.start),
            "freq_lower_edge": float(lo), "freq_upper_edge": float(hi),
            "center_freq": float((lo + hi) / 2), "bandwidth": float(hi - lo),
            "label": track.label, "confidence": round(float(confidence), 4),
            "snr_db": round(float(track.peak_snr_db), 2),
            **({} if track.label_confidence is None else
               {"label_confidence": round(float(track.label_confidence), 4)}),
            **({} if track.guess is None else {"label_guess": track.guess})}
