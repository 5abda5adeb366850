"""``LongTones``: CW tones too weak for one tile, found on tile-long PSDs averaged over up
to 16 tiles (with ``narrowband.CellTones``, which sees strong tones at once)."""
from __future__ import annotations

import functools

import numpy as np

from .narrowband import Lines, around_runs, empty_lines
from .psd_stats import float32_threshold, noise_level
from .tracks import dilate_rows

#: the windows (tiles) its means run over, up to its ``tiles`` (multiples of STRIDE)
WINDOWS = (4, 8, 16)
#: ... looked at once every STRIDE tiles (a mean over 4 or more moves little in between)
STRIDE = 4
#: ... the bins around a tone its contrast is measured against, and its flanks (these many
#: bins out: past a Hann window's main lobe), whose excess stays under FLANK_RATIO of its
SPAN = 65
FLANK = (3, 8)
FLANK_RATIO = 0.1
#: ... and over the last RECENT tiles it still stands out (false-alarm probability
#: RECENT_PFA): a tone that ended is not held while the means forget it
RECENT = 2
RECENT_PFA = 1e-2
#: offsets of the SPAN bins about a bin (its contrast's), and of its flanks below and above
OFFSETS = np.arange(-(SPAN // 2), SPAN // 2 + 1)
FLANKS = np.concatenate([np.arange(-FLANK[1], -FLANK[0] + 1), np.arange(FLANK[0], FLANK[1] + 1)])
ROUGH_FLANKS = FLANKS.reshape(2, -1)[:, [0, -1]].ravel()   # the first and last bin of each
MIRROR = np.array([-1, 0, 1])   # an IQ image's bins, about the mirror of a bin
PAD = SPAN // 2


@functools.lru_cache(maxsize=4)
def _valid(size: int) -> np.ndarray:
    """(3, size): how many of the SPAN bins about each bin of a row of ``size`` bins, of its
    flanks below and of its flanks above are in the row (at least 1)."""
    inside = np.zeros(size + 2 * PAD)
    inside[PAD:-PAD] = 1.0
    at = PAD + np.arange(size)[:, None]
    below, above = np.split(FLANKS, 2)
    counts = np.stack([inside[at + o].sum(axis=1) for o in (OFFSETS, below, above)])
    counts = np.maximum(counts, 1.0)
    counts.flags.writeable = False
    return counts


class LongTones:
    """CW tones too weak for one tile (a few dB in-band: under CellTones' gate and level), on
    the tile-long PSDs (noise floor 1) averaged over the last 4, 8 and 16 tiles
    (``WINDOWS``, up to ``tiles``), looked at once every STRIDE tiles. A tone is a run of
    at most ``max_bins`` bins whose mean over a window (or the sum of two bins beside, a
    tone between them) stands over the noise (false-alarm probability ``pfa`` for a mean of
    that many periodogram bins), ``contrast`` times the mean of the SPAN bins around it (or
    as many times as that level, where lower: a 16-tile mean's) and FLANK_RATIO of its
    excess over the bins FLANK bins out (a line, not a narrow signal's hump), that still
    stands out over the last RECENT tiles (over the noise, or nearer its mean than the
    noise's: a tone that ended is not held while the means forget it), not a strong line's
    IQ image (its mirror ``image_rejection_db`` stronger); found so, it is reported for
    each of the STRIDE tiles, and kept where it is ``guard`` cells or more from the model's
    own and not in the DC cell (``outside``). Late by up to the window it needs where it
    starts (CellTones sees strong tones at once).

    Each look sums its STRIDE tiles once; a window's sum adds the looks' sums before it.
    Every look of a call and every window of a look is tested at once."""

    def __init__(self, fft: int, tiles: int = 16, pfa: float = 1e-9,
                 contrast: float = 4.0, guard: int = 3, max_bins: int = 3,
                 image_rejection_db: float = 25.0):
        self.fft, self.pfa = fft, pfa
        self.image_ratio = 10 ** (image_rejection_db / 10)
        self.contrast, self.guard, self.max_bins = contrast, guard, max_bins
        self.windows = [w for w in WINDOWS if w <= tiles]
        self.keep = max([STRIDE, RECENT]) - 1
        self.history: list = []   # the last tiles' PSDs, a row each
        self.sums: list = []      # the last looks' sums of their STRIDE tiles, latest first
        self.seen = 0   # tiles seen before this batch

    def find(self, psd: np.ndarray, masks: np.ndarray | None = None) -> Lines:
        """The weak tones in ``psd`` ((tiles, size) tile-long PSDs in units of the noise
        floor, DC-centred), one entry of ``Lines``' arrays per tone and tile; with the
        model's cells ``masks`` ((tiles, fft)), those ``outside`` them, each look searching
        only the bins where ``outside`` may keep a tone (most of a busy band is not). The
        last tiles' rows are copied for the next call (``psd`` may be a view of memory
        that its caller reuses)."""
        count, size = psd.shape
        seen = self.history + list(psd)   # rows (views), not a copy of them all
        self.history = [row.copy() for row in seen[-self.keep:]]
        first, before = len(seen) - count, self.seen
        self.seen += count
        free = None if masks is None else self._free(masks)
        looks = []   # (its tiles, its last RECENT tiles' mean, its windows' sums, zone)
        for last in range(STRIDE - 1 - before % STRIDE, count, STRIDE):
            end = first + last + 1
            totals = self._window_sums(_sum_rows(seen[end - STRIDE:end]))
            tiles = np.arange(max(last - STRIDE + 1, 0), last + 1)
            zone = None if free is None else self._zone(free[tiles].any(axis=0), size)
            if totals and (zone is None or zone.any()):
                looks.append((tiles, _sum_rows(seen[end - RECENT:end]) / RECENT, totals, zone))
        found = self._lines(looks, size) if looks else []
        if not found:
            return empty_lines()
        tile, lo, hi, snr, centre, top, around = (np.array(v) for v in zip(*found))
        lines = Lines(tile.astype(np.int64), lo, hi, snr, centre.astype(np.int64), top, around)
        return lines if free is None else _kept(lines, free, self.fft)

    def _window_sums(self, group: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(window, the sum of its last tiles' PSDs) for each window the stream so far
        fills, from this look's sum of its STRIDE tiles ``group`` (kept for the next)."""
        totals, total, groups = [], group, 1
        for w in self.windows:
            while groups < w // STRIDE and groups <= len(self.sums):
                total = total + self.sums[groups - 1]
                groups += 1
            if groups < w // STRIDE:
                break
            totals.append((w, total))
        self.sums = ([group] + self.sums)[:max(self.windows, default=STRIDE) // STRIDE - 1]
        return totals

    def outside(self, lines: Lines, masks: np.ndarray) -> Lines:
        """The ``lines`` ``guard`` cells or more from the model's cells ``masks`` ((tiles,
        fft)) in their tile, and not in the DC cell (a receiver's own leakage)."""
        return _kept(lines, self._free(masks), self.fft) if len(lines.tile) else lines

    def _free(self, masks: np.ndarray) -> np.ndarray:
        """(tiles, fft): the cells where ``outside`` keeps a tone."""
        near = dilate_rows(masks, self.guard)
        near[:, self.fft // 2] = True
        return ~near

    def _zone(self, free: np.ndarray, size: int) -> np.ndarray:
        """The bins a look searches where its tiles' free cells are ``free``: theirs and
        those of the cells either side. A run of bins that reaches a free cell from outside
        its neighbours is a cell wide there, too wide for a tone either way; one that stays
        in a neighbour has its centre there, which ``outside`` drops."""
        return np.repeat(dilate_rows(free[None], 1)[0], size // self.fft)

    def _lines(self, looks: list, size: int) -> list[tuple]:
        """(tile, f_low, f_high, snr_db, centre, peak, around) of each tone at each of the
        ``looks`` (``find``'s), for each of the look's tiles."""
        which = np.array([j for j, look in enumerate(looks) for _ in look[2]])
        w = np.array([w for look in looks for w, _ in look[2]])
        # the windows' means, a row each, between PAD zeros (what the gathers below read
        # past the row's ends; ``_valid`` counts the bins that are not)
        padded = np.zeros((len(w), size + 2 * PAD), np.float32)
        m = padded[:, PAD:-PAD]
        for k, total in enumerate(total for look in looks for _, total in look[2]):
            np.divide(total, float(w[k]), out=m[k])   # (float32: a Python float)
        level = np.array([noise_level(self.pfa, k) for k in w])
        pair = float32_threshold(2 * np.array([noise_level(self.pfa, 2 * k) for k in w]))
        # over its level, or the sum of two bins beside over that of two bins (float32
        # thresholds: the same verdicts, without promoting the means to float64 first)
        over = m > float32_threshold(level)[:, None]
        over[:, 1:] |= m[:, 1:] + m[:, :-1] > pair[:, None]
        over[:, 0] |= m[:, 0] + m[:, -1] > pair
        if looks[0][3] is not None:
            over &= np.stack([look[3] for look in looks])[which]
        flat = np.flatnonzero(over)
        row = flat // size
        hit = flat - row * size
        at = row * padded.shape[1] + PAD + hit   # each hit in ``padded``, flat
        padded = padded.ravel()
        peak = padded[at]
        # a line, not a signal's hump: its flanks FLANK bins out hardly over the noise
        # (two bins of each flank first: a bound that drops most of a busy band's bins,
        # where the flanks stand as high as the bin; then all of them)
        for offsets, exact in ((ROUGH_FLANKS, False), (FLANKS, True)):
            near = padded[at[:, None] + offsets].reshape(len(at), 2, len(offsets) // 2).sum(axis=2)
            if exact:   # (the bins in the row; the rough bound divides by all)
                near /= _valid(size)[1:, hit].T
            else:
                near /= len(FLANKS) // 2
            ok = near.max(axis=1) - 1 < FLANK_RATIO * (peak - 1)
            row, hit, at, peak = row[ok], hit[ok], at[ok], peak[ok]
        # still there over the last RECENT tiles (or, for a weak tone, nearer its mean than
        # the noise's), not a strong line's IQ image (its mirror across DC, a bin either
        # side), and ``contrast`` times the mean of the SPAN bins around it
        recent = np.stack([look[1] for look in looks])
        image = padded[(at - hit)[:, None] + (size - hit[:, None] + MIRROR) % size].max(axis=1)
        local = padded[at[:, None] + OFFSETS].sum(axis=1) / _valid(size)[0, hit]
        rise = np.minimum(self.contrast, level[row])   # a long mean's noise level, if lower
        ok = (recent[which[row], hit] > np.minimum(noise_level(RECENT_PFA, RECENT),
                                                   0.5 * (1 + peak))) \
            & (image < self.image_ratio * peak) & (peak > rise * local)
        return self._runs(looks, which, m, row[ok], hit[ok], size)

    def _runs(self, looks: list, which: np.ndarray, m: np.ndarray, row: np.ndarray,
              hit: np.ndarray, size: int) -> list[tuple]:
        """``_lines``' tones from the bins ``hit`` that pass in the rows ``row`` of ``m``
        (the windows' means; ``which``: each row's look): per look, each run of such bins
        (gaps of up to 2) at most ``max_bins`` wide, measured on the mean of the longest
        window that finds its first bin."""
        out = []
        for j in np.unique(which[row]).tolist():
            mine = which[row] == j
            bins, rows = hit[mine], row[mine]
            order = np.lexsort((rows, bins))   # by bin; its longest window last
            bins, rows = bins[order], rows[order]
            last = np.concatenate((bins[1:] != bins[:-1], [True]))
            bins, rows = bins[last], rows[last]
            starts = np.flatnonzero(np.concatenate(([True], np.diff(bins) > 2)))
            ends = np.concatenate((starts[1:], [len(bins)]))
            lo, hi = bins[starts], bins[ends - 1] + 1
            keep = hi - lo <= self.max_bins
            lo, hi, rows = lo[keep], hi[keep], rows[starts][keep]
            if not len(lo):
                continue
            around = around_runs(m, rows, lo, hi, SPAN)
            lines = []
            for a, b, r, rest in zip(lo.tolist(), hi.tolist(), rows.tolist(), around.tolist()):
                values = m[r, a:b]
                excess = np.maximum(values - 1.0, 0.0)
                centre = a + float(excess @ np.arange(b - a)) / max(float(excess.sum()), 1e-30)
                top = float(values.max())
                lines.append(((centre - 0.5 - size // 2) / size,
                              (centre + 0.5 - size // 2) / size,
                              10 * np.log10(max(top - 1, 1e-3)), round(centre), top,
                              float(rest)))
            out += [(t, *line) for t in looks[j][0].tolist() for line in lines]
        return out


def _sum_rows(rows: list) -> np.ndarray:
    """The sum of a list of equal rows, one after the other (as a 2-d array's sum over its
    first axis adds them), without stacking them first."""
    total = rows[0] + rows[1] if len(rows) > 1 else rows[0].copy()
    for row in rows[2:]:
        total += row
    return total


def _kept(lines: Lines, free: np.ndarray, fft: int) -> Lines:
    """The ``lines`` whose centre is in a cell ``free`` ((tiles, fft)) in their tile."""
    centre = 0.5 * (lines.f_low + lines.f_high)
    cell = np.minimum(((centre + 0.5) * fft).astype(np.int64), fft - 1)
    return Lines(*(a[free[lines.tile, cell]] for a in lines))
