"""How a track's detections are settled (``refine_edges`` and the rules it calls): edges
on the track's finer PSDs, neighbours split at valleys, gaps and where their blocks
differ, spectral lines and combs, CW tones at a part's edges, a carrier's sidebands,
parts cut in time, narrow signals inside a wide one's band (``raised_plateaus``), and
which detections of one track are one signal or another's line. Tracks, their messages
and the shared helpers are in ``tracks``; the family classifier's features in
``family_features``."""
from __future__ import annotations

import bisect
import copy

import numpy as np
from scipy.ndimage import binary_dilation, median_filter

from .family_features import envelope_features
from .tracks import (Track, band_bins, bin_edges, median_of, merge_runs, middle_bands,
                     noise_level, noise_level_table, quantile_of)


#: how much finer than the fine PSD the view is that splits close neighbours (refine_edges)
ZOOM = 2
#: bins a valley between neighbours spans at least on that view (split_finer; odd)
VALLEY_BINS = 3
#: ``cut_near_noise``: a dip this close over the noise (6 dB) between parts whose median
#: levels both stand this high over it (10 dB) is a gap between two signals
NEAR_NOISE = 10 ** (6.0 / 10)
NEAR_SIDES = 10 ** (10.0 / 10)
#: runs either side of a notch that are one signal's halves (``halves``): widths within
#: this share of each other, levels within HALVES_DB (a multipath channel tilts an OFDM
#: signal's band), the notch under HALVES_NOTCH of a width
HALVES_WIDTH, HALVES_DB, HALVES_NOTCH = 0.25, 3.5, 0.1
#: a gap splits two weak parts (median levels under ``side_db``) where both medians stand
#: 1 + SIDE_DEVIATIONS / sqrt(looks) times the level (the deviation of a mean of that many
#: periodograms, each 1), and no part of the run stands WEAK_RUN_DB over the noise (weak
#: neighbours; a strong signal's weak stretches, a wide FSK's between its lobes, are its own)
SIDE_DEVIATIONS = 5.0
WEAK_RUN_DB = 8.0
#: ... or, where a part does, both stand so and the weaker is APART_MIN_BINS wide or more
#: with few lines (``few_lines``): an AM's sidebands beside a strong neighbour, not an FM's
#: outer lines (two or three bins) or its comb
APART_MIN_BINS = 12












#: ``split_by_presence``: blocks in a row (and share of a track's blocks) that must hold
#: one side of a cut without the other, each side's width at least, and the notch (dB
#: under both sides' median levels) where they meet
PRESENCE_SHARE = 0.1
PRESENCE_EDGE = 4
PRESENCE_DIP_DB = 1.0
#: where the cuts that part are no notch, the notch up to NOTCH_REACH bins from them, in
#: a run standing SKIRT_DB over the noise (a strong neighbour's skirt past the notch)
NOTCH_REACH = 4
SKIRT_DB = 10.0


def split_by_presence(rows: np.ndarray, psd: np.ndarray, a: int, b: int, frames: int,
                      pfa: float = 1e-3, rise: float = 0.25) -> list[tuple[int, int]]:
    """The run [a, b) of a track's fine PSD cut where the blocks that hold its two sides
    differ: ``rows`` (blocks, bins) are its blocks' fine PSDs (``frames`` periodograms
    each, noise 1), ``psd`` their mean. A side is present in a block where its mean
    excess over the noise stands over the noise (false-alarm probability ``pfa``) and at
    ``rise`` or more of its usual one (the 90th percentile over the blocks), absent
    where it does not stand over the noise at all. Where one side is present and the
    other absent for MIN_SEGMENT blocks in a row or more (and PRESENCE_SHARE of the
    blocks), each side is present in MIN_SEGMENT blocks or more, and the PSD dips
    PRESENCE_DIP_DB where they meet, the two are neighbours that come and go apart (a
    burst beside a continuous signal, one signal after another, their skirts touching):
    cut at the weakest bin among the cuts that part the longest run of blocks, or where
    that is no notch, at the deepest among those that part enough (and, in a strong run,
    those within NOTCH_REACH bins of them); recursively, each part at least
    PRESENCE_EDGE bins wide. One signal's halves come and go together, a slow FSK's
    tones take turns (not cut), and a wide signal's band has no notch to cut at."""
    edge = PRESENCE_EDGE
    if b - a < 2 * edge + 1 or len(rows) < MIN_SEGMENT:
        return [(a, b)]
    excess = rows[:, a:b] - 1.0
    total = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(excess, axis=1)], axis=1)
    cuts = np.arange(edge, b - a - edge + 1)   # bins left of the cut
    left = total[:, cuts] / cuts
    right = (total[:, -1:] - total[:, cuts]) / (b - a - cuts)

    levels = noise_level_table(pfa, frames, 1 << int(b - a).bit_length())

    def states(side, width):   # (present, absent) per block and cut
        floor = levels[width - 1] - 1
        return (side > floor) & (side >= rise * quantile_of(side, 0.9)), side <= floor
    (on_l, off_l), (on_r, off_r) = states(left, cuts), states(right, b - a - cuts)
    apart = longest_runs(on_l & off_r | on_r & off_l)   # blocks in a row, per cut
    only = (on_l & ~on_r).astype(np.int8) - (on_r & ~on_l)   # +1 left only, -1 right
    turned = turns(only) > 1
    apart[turned] = 0   # the sides took turns more than once: one signal's
    # each side present in MIN_SEGMENT blocks at least: a signal of its own somewhere
    apart[(on_l.sum(axis=0) < MIN_SEGMENT) | (on_r.sum(axis=0) < MIN_SEGMENT)] = 0
    need = max(MIN_SEGMENT, PRESENCE_SHARE * len(rows))
    if apart.max() < need:
        return [(a, b)]

    def dip(m):   # dB under the median levels of both sides
        level = min(median_of(psd[a:m]), median_of(psd[m:b]))
        return 10 * np.log10(level / max(psd[m], 1e-12))
    # at the weakest bin among the cuts that part the longest run of blocks; where that
    # is no notch (it lies at the slope of one signal's edge), at the deepest notch among
    # the cuts that part enough blocks (local minima of the PSD) and, in a run standing
    # SKIRT_DB over the noise, those within NOTCH_REACH of them where the sides did not
    # take turns (a strong neighbour's skirt keeps the side past the notch present, so
    # the cuts that part lie just beyond it)
    best = a + cuts[apart == apart.max()]
    m = int(best[np.argmin(psd[best])])
    if dip(m) < PRESENCE_DIP_DB:
        reach = apart >= need
        if median_of(psd[a:b]) >= 10 ** (SKIRT_DB / 10):
            reach = binary_dilation(reach, np.ones(2 * NOTCH_REACH + 1, bool)) & ~turned
        some = a + cuts[reach]
        some = some[(psd[some] <= psd[some - 1]) & (psd[some] <= psd[some + 1])]
        dips = [dip(k) for k in some.tolist()]
        if not dips or max(dips) < PRESENCE_DIP_DB:
            return [(a, b)]
        m = int(some[int(np.argmax(dips))])
    return split_by_presence(rows, psd, a, m, frames, pfa, rise) + \
        split_by_presence(rows, psd, m, b, frames, pfa, rise)


def longest_runs(mask: np.ndarray) -> np.ndarray:
    """The longest run of True down each column of a 2-d mask."""
    count = np.cumsum(mask, axis=0)
    before = np.maximum.accumulate(np.where(mask, 0, count), axis=0)   # at the last False
    return (count - before).max(axis=0, initial=0)


def turns(sides: np.ndarray) -> np.ndarray:
    """How often each column of ``sides`` (+1, -1 or 0 per row) changes sign, zeros
    skipped."""
    rows = np.arange(len(sides))[:, None]
    last = np.maximum.accumulate(np.where(sides != 0, rows, -1), axis=0)   # its last nonzero
    held = np.take_along_axis(sides, np.maximum(last, 0), axis=0) * (last >= 0)
    return ((held[1:] != held[:-1]) & (held[:-1] != 0)).sum(axis=0)


def cut_at(parts: list, cuts: list, edge: int) -> list[tuple[int, int]]:
    """Parts [a, b) cut again at each of ``cuts`` that lies ``edge`` or more inside."""
    out = []
    for a, b in parts:
        inner = sorted(m for m in cuts if a + edge <= m <= b - edge)
        out += list(zip([a] + inner, inner + [b]))
    return out


def split_at_valleys(db: np.ndarray, a: int, b: int, depth: float, edge: int = 2
                     ) -> list[tuple[int, int]]:
    """The run [a, b) of a PSD (dB) cut at its deepest interior valley while that valley lies
    ``depth`` dB or more under the median level of both of its sides (neighbours whose
    skirts touch; the lines of one signal's line spectrum, whose sides are mostly gaps, are
    not cut), each part at least ``edge`` bins wide; recursively."""
    if b - a < 2 * edge + 1:
        return [(a, b)]
    m = a + edge + int(np.argmin(db[a + edge:b - edge]))
    if min(median_of(db[a:m]), median_of(db[m + 1:b])) - db[m] < depth:
        return [(a, b)]
    return split_at_valleys(db, a, m, depth, edge) + split_at_valleys(db, m + 1, b, depth, edge)


def join_line_spectra(runs: list[tuple[int, int]], min_lines: int = 3,
                      tolerance: float = 0.25, max_step: int = 1, min_humps: int = 3
                      ) -> list[tuple[int, int]]:
    """Runs ([start, stop) bins, in order) that form a comb joined into one: at least
    ``min_lines`` consecutive runs whose centres are equally spaced (within ``tolerance`` of
    the first spacing), each as wide as the first run (within ``tolerance``) or, where the
    first is narrower than half the spacing (lines), narrower than half the spacing too,
    each apart from the one before (runs that touch were cut apart where their blocks
    differ: neighbours). A carrier modulated by a tone (FM, AM) shows such lines, a
    periodic sweep such humps; neighbouring signals of their own widths do not, nor a
    narrow one between two wide ones that happen to be equally spaced. A comb of humps
    needs ``min_humps`` of them (in a band that holds still, three equally wide neighbours
    packed at one gap look like a comb; four seldom)."""
    centre = [0.5 * (a + b) for a, b in runs]
    width = [b - a for a, b in runs]
    out, i = [], 0
    while i < len(runs):
        j = i + 1
        if i + 1 < len(runs):
            spacing = centre[i + 1] - centre[i]
            lines = width[i] <= 0.5 * spacing   # a comb of lines, else of humps
            while j < len(runs) and runs[j][0] > runs[j - 1][1] and abs(
                    (step := centre[j] - centre[j - 1]) - spacing * min(
                        max(round(step / spacing), 1), max_step)) <= tolerance * spacing and (
                    lines and width[j] <= 0.5 * spacing or abs(width[j] - width[i]) <=
                    tolerance * width[i]):
                j += 1
        if j - i >= min_lines and (lines or j - i >= min_humps):
            out.append((runs[i][0], runs[j - 1][1]))
        else:
            out.append(runs[i])
            j = i + 1
        i = j
    return out


#: humps a comb needs on a track whose band holds still (``join_line_spectra``)
STEADY_MIN_HUMPS = 4
#: a comb of lines on the block-long PSD may miss every other line (an FM tone's Bessel nulls)
LINE_COMB_STEP = 2


def line_runs(runs: list[tuple[tuple[int, int], tuple[int, int]]], min_humps: int = 3
              ) -> list[tuple[int, int]]:
    """The runs of the block-long PSD to take edges on, from (tight, whole) runs in order:
    each part of the finer view's, trimmed to its signal (tight) within the bins it covers
    (whole), or each piece of one it cut. Runs whose tight bands form a comb
    (``join_line_spectra``) are joined across the finer view's parts: the lines of an FM
    carrier's tone, a few of them in each part, where that view's window blurs them into
    humps as wide as their spacing; the others keep their whole runs."""
    out, tight = [], [t for t, _ in runs]
    for lo, hi in join_line_spectra(tight, max_step=LINE_COMB_STEP,
                                   min_humps=min_humps):
        members = [w for t, w in runs if lo <= t[0] and t[1] <= hi]
        out.append((members[0][0], members[-1][1]) if len(members) > 1 else members[0])
    return out


def lines_of_one_comb(track: Track, runs: list, joined: tuple[int, int], size: int,
                      frames: int) -> list[tuple[int, int]]:
    """[joined], a run ``line_runs`` made of the (tight, whole) ``runs`` of a ``size``-bin
    view, or its members' whole runs again where they are not one signal's comb: a
    comb's lines mirrored about its centre (an AM carrier's two sidebands, an FM's Bessel
    pairs) carry one message and come and go together; a line there as a burst
    (``burst_rows``) whose mirror holds on past it, each for MIN_SEGMENT blocks and
    PRESENCE_SHARE of the track's or more, is another CW tone beside them (tones packed at
    one spacing look like a comb)."""
    members = [(tight, whole) for tight, whole in runs
               if joined[0] <= whole[0] and whole[1] <= joined[1]]
    if len(members) < 3 or not track.rows:
        return [joined]
    held = []
    for (a, b), _ in members:
        part = copy.copy(track)
        part.f_low, part.f_high = (float(e) for e in bin_edges(a, b, size))
        held.append(part.held(frames))
    need = max(MIN_SEGMENT, PRESENCE_SHARE * len(track.rows))
    for k in range(len(members) // 2):
        for one, mirror in ((held[k], held[-1 - k]), (held[-1 - k], held[k])):
            span = burst_rows(one)
            if span is not None and min(np.sum(one), np.sum(mirror & ~span)) >= need:
                return [whole for _, whole in members]
    return [joined]


def comb_lines(pieces: list[tuple[int, int]], min_humps: int = 3) -> list[tuple[int, int]]:
    """The ``pieces`` of a run of the block-long PSD (``split_finer``) where they are the
    lines of one comb (``join_line_spectra`` joins them all: an FM carrier's tone), else
    []."""
    if len(pieces) < 3 or len(join_line_spectra(pieces, max_step=LINE_COMB_STEP,
                                                min_humps=min_humps)) > 1:
        return []
    return pieces


#: a signal whose block-long PSD stands within FLAT_DB of its median at its 90th
#: percentile has no lines of its own (PSK, QAM, OFDM; an FM's or FSK's lines stand out)
FLAT_DB = 2.5


def flat(psd: np.ndarray) -> bool:
    """Whether a run of a PSD is a flat spectrum, one without lines (FLAT_DB)."""
    db = 10 * np.log10(np.maximum(psd, 1e-12))
    return float(quantile_of(db, 0.9) - median_of(db)) <= FLAT_DB


#: ``smooth``: no bin of a spectrum SMOOTH_DB over the median of the SMOOTH_SPAN bins
#: around it (GMSK, GFSK, PSK: no lines; an FM's, an AM's or OFDM pilots' lines stand out)
SMOOTH_DB = 3.0
SMOOTH_SPAN = 9
#: ``few_lines``: the share of a run's bins that may stand out so
FEW_LINES_SHARE = 0.1


def lines_in(psd: np.ndarray) -> np.ndarray:
    """Per bin of a run of a PSD, whether it stands SMOOTH_DB over the median of the
    SMOOTH_SPAN bins around it (a line)."""
    return psd > 10 ** (SMOOTH_DB / 10) * median_filter(psd, SMOOTH_SPAN, mode="nearest")


def few_lines(psd: np.ndarray) -> bool:
    """Whether at most FEW_LINES_SHARE of a run's bins are lines (``lines_in``: an AM's
    sidebands beside its carrier; not an FM's comb of lines)."""
    return float(np.mean(lines_in(psd))) <= FEW_LINES_SHARE


def smooth(psd: np.ndarray) -> bool:
    """Whether a run of a PSD holds no line (``lines_in``), however it is shaped."""
    return not lines_in(psd).any()


def tone_cuts(line: np.ndarray, level: float, pieces: list[tuple[int, int]], a: int,
              b: int) -> list[tuple[int, int]]:
    """Run [a, b) of the block-long PSD ``line`` (a wide run the finer view left whole) cut
    around each CW tone in a valley between two flat signals: of its ``pieces``
    (``split_finer``), a line (``line_edges``: one bin) whose neighbours are both wider,
    FLAT_DB flat and not mirror images about it (``mirrored``: an AM carrier's
    sidebands); neither neighbour's own line, as a flat spectrum has none. The parts
    either side stay whole; [] where no tone is cut out."""
    if len(pieces) < 3:
        return []
    db = 10 * np.log10(np.maximum(line, 1e-12))

    def is_line(lo: int, hi: int) -> bool:
        e_lo, e_hi = line_edges(line, lo, hi, 0.999, level)
        return one_bin(e_lo, e_hi)

    cuts = [k for k in range(1, len(pieces) - 1)
            if is_line(*pieces[k]) and all(not is_line(*p) and flat(line[p[0]:p[1]])
                                           for p in (pieces[k - 1], pieces[k + 1]))
            and not mirrored(db, pieces[k - 1], pieces[k], pieces[k + 1])]
    if not cuts:
        return []
    out, lo = [], a
    for k in cuts:
        out += [(lo, pieces[k - 1][1]), pieces[k]]
        lo = pieces[k + 1][0]
    return out + [(lo, b)]


def mirrored(db: np.ndarray, left: tuple[int, int], centre: tuple[int, int],
             right: tuple[int, int]) -> bool:
    """Whether runs ``left`` and ``right`` of a PSD (dB) are mirror images about run
    ``centre``: ``alike`` and as far from it (to LINE_GAP bins); a carrier's two
    sidebands."""
    return alike(db, left, right) and \
        abs((centre[0] - left[1]) - (right[0] - centre[1])) <= LINE_GAP


def smooth_apart(line: np.ndarray, pieces: list[tuple[int, int]]) -> bool:
    """Whether the ``pieces`` of a wide run on the block-long PSD ``line`` (``split_finer``)
    are neighbours whose gap only that view resolves: two or more, each wider than two
    lines (LINE_WIDTH) and ``smooth`` (an FM's or AM's lines between its nulls are not)."""
    return len(pieces) > 1 and all(hi - lo >= 2 * LINE_WIDTH and smooth(line[lo:hi])
                                   for lo, hi in pieces)


def occupied_edges(psd: np.ndarray, a: int, b: int, power_share: float
                   ) -> tuple[float, float]:
    """Fractional bin positions of the band of run [a, b) holding ``power_share`` of its
    power above the noise (noise power 1 per bin)."""
    excess = np.maximum(psd[a:b] - 1, 0)
    cum = np.concatenate([[0.0], np.cumsum(excess)]) / max(excess.sum(), 1e-12)
    tail = (1 - power_share) / 2
    return (a + float(np.interp(tail, cum, np.arange(b - a + 1))),
            a + float(np.interp(1 - tail, cum, np.arange(b - a + 1))))


#: a run at most this many bins wide on the finer view (3 % of the band at 2048) is cut again
#: and takes its edges on the block-long PSD (``Track.line``), where the finer view's window
#: blurs narrow neighbours into one and widens a narrow signal by its main lobe
LINE_VIEW_BINS = 64
#: ... at gaps of more than this many of its bins (0.15 % of the band at 8192)
LINE_GAP = 12
#: narrower than this many bins there (99 % of its power), a detection is a line (a tone):
#: the Hann window spreads one over three to four bins
LINE_WIDTH = 4.5
#: a line (a detection at most LINE_BINS bins of the block-long PSD wide: a tone) that
#: ``refine_edges`` cuts beside another part of its track is a signal of its own where it
#: holds for this many blocks (a carrier holds; an FM's outer line that surfaces for a few
#: blocks does not), as a line of the segmenter's narrow view must
LINE_MIN_BLOCKS = 5


#: ``line_over_floor``'s local floor: the median of this many bins either side of a run
#: of at most LINE_FLOOR_MAX_BINS (a tone and a neighbour's skirt, not a signal's band)
LINE_FLOOR_BINS = 16
LINE_FLOOR_MAX_BINS = 48
#: ``line_over_floor`` takes a tone beside a neighbour where its floor's excess over the
#: noise is SKIRT_LOPSIDED times larger on one side than on the other, and SKIRT_MIN_EXCESS
#: or more there (a neighbour's skirt; an AM's sidebands raise both sides alike)
SKIRT_LOPSIDED = 3.0
SKIRT_MIN_EXCESS = 0.5


def line_over_floor(psd: np.ndarray, a: int, b: int, power_share: float, level: float,
                    skirt: bool = True) -> tuple[float, float] | None:
    """A tone in run [a, b) of a PSD (noise 1 per bin; at most LINE_FLOOR_MAX_BINS wide)
    whose floor there stands over the noise (a neighbour's skirt in some of the blocks
    summed, which ``line_edges`` counts as the run's own power): ``line_edges`` of the
    run in units of its local floor, where that finds one bin. The floor is the median of
    LINE_FLOOR_BINS bins on either side, as far out from the run's peak past the run, the
    higher (a skirt falls off into the run), or else the median of the run's own bins
    less the line's (a neighbour's flat top beyond the run, higher than the line, with
    its skirt under it). With ``skirt`` (a line beside a neighbour), only where the run's
    peak stands EDGE_TONE_RISE times over the floor or more and one side's floor stands
    SKIRT_MIN_EXCESS over the noise or more and SKIRT_LOPSIDED times the other side's
    excess (a skirt; an AM carrier's sidebands raise both sides alike). Else None."""
    if b - a > LINE_FLOOR_MAX_BINS:
        return None
    k = a + int(np.argmax(psd[a:b]))
    reach = max(k - a, b - 1 - k) + 1   # the sides as far out from the peak, past the run
    if k - reach - LINE_FLOOR_BINS < 0 or k + reach + LINE_FLOOR_BINS > len(psd):
        return None
    sides = sorted(float(median_of(side)) for side in (
        psd[k - reach - LINE_FLOOR_BINS:k - reach], psd[k + reach:k + reach + LINE_FLOOR_BINS]))
    if sides[1] <= 0 or skirt and \
            sides[1] - 1 < max(SKIRT_LOPSIDED * abs(sides[0] - 1), SKIRT_MIN_EXCESS):
        return None
    rise = EDGE_TONE_RISE if skirt else 0.0
    own = np.concatenate([psd[a:max(k - 1, a)], psd[k + 2:b]])   # the run less the line
    for floor in [sides[1]] + ([float(median_of(own))] if len(own) else []):
        local = psd[a:b] / floor
        if local.max() < rise:
            continue
        t_lo, t_hi = line_edges(local, 0, b - a, power_share, level)
        if one_bin(t_lo, t_hi):
            return a + t_lo, a + t_hi
    return None


def one_bin(lo: float, hi: float) -> bool:
    """Whether fractional bin edges [lo, hi) span one bin or less (``line_edges``' line,
    whose edges a float sum may leave a hair over one bin apart)."""
    return hi - lo <= 1 + 1e-9


def line_edges(psd: np.ndarray, a: int, b: int, power_share: float, level: float
               ) -> tuple[float, float]:
    """``occupied_edges`` of run [a, b) of a PSD, except that a run whose 99 % power band
    over the bins above ``level`` (the noise's false-alarm level: a PSD of few periodograms
    has noise bins whose excess adds up to more than a tone's last percent) is under
    LINE_WIDTH bins (a tone, spread by the window) is one bin wide at its power-weighted
    centre."""
    clipped = np.where(psd[a:b] > level, psd[a:b], 1.0)
    lo, hi = occupied_edges(clipped, 0, b - a, 0.99)
    if hi - lo >= LINE_WIDTH:
        return occupied_edges(psd, a, b, power_share)
    excess = clipped - 1
    centre = float(np.sum(np.arange(b - a) * excess) / max(excess.sum(), 1e-12))
    return a + centre, a + centre + 1


#: a line's sidebands (an AM carrier's, whose message may hold a few % of its power): the
#: bins from SIDEBAND_GAP out (past the window's main lobe) to B either side, for B on the
#: geometric grid SIDEBAND_WIDTHS, against the floor of the next max(B, SIDEBAND_FLOOR_BINS)
#: bins out on the quieter side (a neighbour may stand on the other); B where the two
#: sides' mean excess is most significant, SIDEBAND_Z deviations or more (a Hann window's
#: bins: HANN_ENBW to an independent one; the floor's own deviation counted)
SIDEBAND_GAP = 3
SIDEBAND_WIDTHS = np.unique(np.geomspace(6, 2048, 48).astype(np.int64))
SIDEBAND_Z = 4.5
SIDEBAND_FLOOR_BINS = 64
HANN_ENBW = 1.5
#: ... with the two sides alike (their excesses apart by at most SIDEBAND_MIRROR of their
#: mean, plus the noise: a neighbour raises one side), each side's two halves within a
#: factor SIDEBAND_HALVES (a strong tone's skirt falls off), holding SIDEBAND_SHARE of the
#: carrier's power or more (less is a line to a 99 % power band; GNU Radio's AM at 30-90 %
#: depth: 1-8 %) and at most SIDEBAND_MAX_SHARE (AM at full depth with a sine message: a
#: weak tone between strong signals is not their carrier)
SIDEBAND_MIRROR = 0.25
SIDEBAND_HALVES = 4.0
SIDEBAND_SHARE = 0.01
SIDEBAND_MAX_SHARE = 0.5
CARRIER_BINS = 2   # bins either side of the carrier's peak that hold its power


def carrier_band(psd: np.ndarray, centre: float, n: int) -> tuple[int, int] | None:
    """The bins [a, b) of a line near bin ``centre`` of a block-long PSD (noise about 1 per
    bin, the mean of ``n`` periodograms) together with its sidebands, where it has them: a
    carrier whose modulation (AM) is a few % of its power, under the noise in every bin but
    not in their mean, which the line's own edges leave out. None for a line without
    sidebands (a CW tone)."""
    size = len(psd)
    lo = min(max(int(round(centre)) - CARRIER_BINS, 0), size - 1)
    c = lo + int(np.argmax(psd[lo:lo + 2 * CARRIER_BINS + 1]))
    reach = min(c, size - 1 - c)
    outer = np.maximum(SIDEBAND_WIDTHS, SIDEBAND_FLOOR_BINS)   # the floor's bins
    fits = SIDEBAND_WIDTHS + outer <= reach
    widths, outer = SIDEBAND_WIDTHS[fits], outer[fits]
    if not len(widths):
        return None
    left = np.cumsum(psd[c - 1::-1][:reach], dtype=np.float64)   # left[d - 1]: c-1 .. c-d
    right = np.cumsum(psd[c + 1:c + 1 + reach], dtype=np.float64)

    def mean(side, a, b):   # the mean of the bins a+1 .. b out
        return (side[b - 1] - side[a - 1]) / (b - a)

    gap = SIDEBAND_GAP
    floor = np.minimum(mean(left, widths, widths + outer), mean(right, widths, widths + outer))
    count = widths - gap
    half = gap + count // 2
    a_l, a_r = mean(left, gap, widths) - floor, mean(right, gap, widths) - floor
    excess = 0.5 * (a_l + a_r)
    z = excess / (floor * np.sqrt(HANN_ENBW / n * (0.5 / count + 1 / outer)))
    # three deviations of a difference of two sides' means (or of a side's two halves)
    slack = 3 * np.sqrt(2) * floor * np.sqrt(HANN_ENBW / (n * count))
    ok = (z >= SIDEBAND_Z) & (np.abs(a_l - a_r) <= SIDEBAND_MIRROR * excess + slack)
    for side in (left, right):
        near, far = mean(side, gap, half) - floor, mean(side, half, widths) - floor
        ok &= (near >= far / SIDEBAND_HALVES - slack) & (far >= near / SIDEBAND_HALVES - slack)
    carrier = np.sum(psd[c - CARRIER_BINS:c + CARRIER_BINS + 1]) - \
        (2 * CARRIER_BINS + 1) * floor
    sidebands = 2 * excess * count
    ok &= (sidebands >= SIDEBAND_SHARE * carrier) & \
        (sidebands <= SIDEBAND_MAX_SHARE * carrier + slack * count)
    if not ok.any():
        return None
    width = int(widths[np.flatnonzero(ok)[np.argmax(z[ok])]])
    return c - width, c + width + 1


def split_finer(zoom: np.ndarray, level: float, a: int, b: int, split_gap: int,
                valley_db: float, side_db: float = 5.0, looks: int = 0
                ) -> list[tuple[int, int]]:
    """Run [a, b) of the finer PSD ``zoom`` (noise power 1 per bin) cut where its bins fall
    under ``level`` for more than ``split_gap`` bins between parts whose median levels
    both stand ``side_db`` over the noise (a weak signal's own bins dip under the level by
    chance), or under NEAR_NOISE between parts that both stand NEAR_SIDES over it
    (``cut_near_noise``: strong neighbours whose skirts fill the gap), or, with ``looks``
    (the periodograms each bin is the mean of) and no part of the run WEAK_RUN_DB over the
    noise, both SIDE_DEVIATIONS deviations of such a mean over
    ``level`` (weak neighbours a long track's mean holds apart; with a part that high, the
    weaker APART_MIN_BINS wide or more and with ``few_lines``: an AM's sidebands beside a
    strong neighbour), and at valleys
    ``valley_db`` deep (``split_at_valleys``) on the PSD averaged over VALLEY_BINS (a notch
    narrower than that, a sweep's taper between two periodograms, is not a gap between
    signals); parts of one bin dropped."""
    # the run and the VALLEY_BINS // 2 bins either side that its average reaches
    lo0 = max(a - VALLEY_BINS // 2, 0)
    run = zoom[lo0:b + VALLEY_BINS // 2]
    db = 10 * np.log10(np.maximum(run, 1e-12))
    smooth = np.convolve(run, np.ones(VALLEY_BINS) / VALLEY_BINS, "same")
    smooth_db = 10 * np.log10(np.maximum(smooth, 1e-12))
    found = [(lo + a - lo0, hi + a - lo0)
             for lo, hi in merge_runs(zoom[a:b] > level, split_gap) if hi - lo >= 2]
    found = [piece for lo, hi in found for piece in cut_near_noise(run, lo, hi, split_gap)]
    medians = [float(median_of(run[lo:hi])) for lo, hi in found]
    stands = 10 ** (side_db / 10)
    held = level * (1 + SIDE_DEVIATIONS / np.sqrt(looks)) if looks else stands
    if looks and medians and max(medians) < 10 ** (WEAK_RUN_DB / 10):
        stands = min(stands, held)

    def apart(left, right):   # a weak neighbour without lines beside a strong signal
        weaker, stronger = sorted((left, right), key=lambda p: float(median_of(run[slice(*p)])))
        width = weaker[1] - weaker[0]
        return width >= max(APART_MIN_BINS, stronger[1] - stronger[0]) and \
            float(median_of(run[slice(*weaker)])) > held and few_lines(run[slice(*weaker)])
    parts = join_low_pieces(run, found, medians, stands,   # in bins of ``run``
                            lambda left, right: halves(db, left, right),
                            apart if looks else None)
    cut = [(lo + lo0, hi + lo0) for p, q in parts
           for lo, hi in split_at_valleys(smooth_db, p, q, valley_db)]
    return cut or [(a, b)]


def cut_near_noise(psd: np.ndarray, lo: int, hi: int, gap: int) -> list[tuple[int, int]]:
    """The run [lo, hi) of a PSD (noise power 1 per bin) cut where it dips under NEAR_NOISE
    for more than ``gap`` bins between parts whose median levels both stand NEAR_SIDES
    over the noise (two strong neighbours whose skirts fill the gap between them just over
    the noise); its outer edges kept."""
    pieces = [(lo + p, lo + q) for p, q in merge_runs(psd[lo:hi] > NEAR_NOISE, gap)
              if q - p >= 2]
    if len(pieces) < 2:
        return [(lo, hi)]
    out = join_low_pieces(psd, pieces, [float(median_of(psd[p:q])) for p, q in pieces],
                          NEAR_SIDES)
    out[0], out[-1] = (lo, out[0][1]), (out[-1][0], hi)
    return out


def join_low_pieces(psd: np.ndarray, pieces: list[tuple[int, int]], medians: list[float],
                    stands: float, joins=None, apart=None) -> list[tuple[int, int]]:
    """The runs ``pieces`` of a PSD (in order, ``medians`` their median levels), each
    joined to the part before it where either's median level stands under ``stands`` (a
    weak signal's own dip, or a skirt: not a gap between two signals) unless ``apart``
    (part, piece) says they are two, or where ``joins`` (part, piece) says they are one
    signal; a joined part's level is its own median."""
    parts, last = [], 0.0   # and the last part's median level
    for (lo, hi), median in zip(pieces, medians):
        low = parts and min(last, median) < stands and not (
            apart is not None and apart(parts[-1], (lo, hi)))
        if parts and (low or (joins is not None and joins(parts[-1], (lo, hi)))):
            parts[-1] = (parts[-1][0], hi)
            last = float(median_of(psd[parts[-1][0]:hi]))
        else:
            parts.append((lo, hi))
            last = median
    return parts


def halves(db: np.ndarray, left: tuple[int, int], right: tuple[int, int]) -> bool:
    """Whether two runs either side of a narrow notch are the halves of one signal (an
    OFDM signal's unused centre carrier): as wide as each other (to HALVES_WIDTH), as
    strong (``alike``), the notch under HALVES_NOTCH of their width. Two neighbours seldom
    match so."""
    return alike(db, left, right) and right[0] - left[1] <= HALVES_NOTCH * min(
        left[1] - left[0], right[1] - right[0])


def alike(db: np.ndarray, left: tuple[int, int], right: tuple[int, int]) -> bool:
    """Whether two runs of a PSD (dB) are as wide as each other (to HALVES_WIDTH) and as
    strong (median levels HALVES_DB apart at most)."""
    w1, w2 = left[1] - left[0], right[1] - right[0]
    level = abs(float(median_of(db[left[0]:left[1]]) - median_of(db[right[0]:right[1]])))
    return abs(w1 - w2) <= HALVES_WIDTH * max(w1, w2) and level <= HALVES_DB




#: ``signals_beneath``: how far (fine bins) out of the part's band its detections may reach
UNHELD_SLACK_BINS = 2
#: the frequency IoU (``Track.band_iou``) from which two detections of one time are one
#: signal's: the segmenter's repeats, ``signals_beneath``'s part itself, one band's pieces
REPEAT_IOU = 0.5


#: consecutive tiles whose occupied band shares less than this (intersection over union)
#: with the band a detection has held so far start a new one (``time_segments``)
CHANGE_OVERLAP = 0.3
#: tiles a part of a track so cut holds at least
MIN_SEGMENT = 3


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


def beside(db: np.ndarray, lo: int, hi: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``side`` bins of ``db`` either side of run [lo, hi), 2 bins out (its edges'
    leakage left out), clipped to the array."""
    return db[max(0, lo - 2 - side):max(0, lo - 2)], db[hi + 2:hi + 2 + side]


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


def signals_beneath(part: Track, held: list, frames: int, margin: float, pfa: float,
                    split_gap: int, power_share: float, block: int, valley_db: float,
                    hold: int, finer_gap: int, dropped=None) -> list[Track]:
    """The detections of a part's blocks that its spans ``held`` leave (``Track.unheld``: a
    weaker signal in the band of a stronger burst), settled by ``refine_edges`` on their
    own PSD (its other arguments): those inside the part's band (to UNHELD_SLACK_BINS bins
    of its fine PSD) that are not the part itself (frequency IoU under REPEAT_IOU),
    their pieces either side of a burst joined across it (``bridge_pieces``); a tone
    among them one bin of the part's block-long PSD wide (``line_beneath``)."""
    rest = part.unheld(held, block, frames, pfa)
    if rest is None:
        return []
    slack = UNHELD_SLACK_BINS / len(rest.rows[0][1])
    found = [t for t in refine_edges(rest, frames, margin, pfa, split_gap, power_share,
                                     block, valley_db, hold, finer_gap, dropped,
                                     beneath=False)
             if t.f_low >= part.f_low - slack and t.f_high <= part.f_high + slack and
             t.band_iou(part) < REPEAT_IOU]
    fine = len(rest.rows[0][1])
    narrow = [t for t in found if (t.f_high - t.f_low) * fine <= LINE_WIDTH]
    if narrow and part.line is not None:   # the rest keeps no block-long PSD of its own
        line = part.line / part.spectra
        for t in narrow:
            edges = line_beneath(line, t.f_low, t.f_high, part.spectra, pfa, power_share)
            t.f_low, t.f_high = edges or (t.f_low, t.f_high)
    return bridge_pieces(found, held)


def line_beneath(line: np.ndarray, f_low: float, f_high: float, spectra: int, pfa: float,
                 power_share: float) -> tuple[float, float] | None:
    """The edges of a tone in the band [f_low, f_high] of a detection of part of a track's
    blocks (``signals_beneath``, settled on its fine PSD, whose window widens a tone to a
    few bins) on the track's block-long PSD ``line`` (the mean of ``spectra``
    periodograms), by ``line_over_floor`` (the band's floor may be a neighbour's skirt in
    the track's other blocks); else None."""
    a, b = band_bins(f_low, f_high, len(line))
    edges = line_over_floor(line, a, b, power_share, noise_level(pfa, spectra), skirt=False)
    return None if edges is None else \
        tuple(float(e) for e in bin_edges(*edges, len(line)))


def bridge_pieces(pieces: list[Track], spans: list[Track]) -> list[Track]:
    """``pieces`` (detections) of one band (frequency IoU REPEAT_IOU or more) whose gap
    in time ``spans`` cover (a burst over the signal) joined into one across the gap."""
    def covered(start: int, stop: int) -> bool:
        at = start
        for span in sorted(spans, key=lambda t: t.start):
            if span.start <= at < span.stop:
                at = span.stop
        return at >= stop
    out: list[Track] = []
    for piece in sorted(pieces, key=lambda t: t.start):
        for k, last in enumerate(out):
            if last.band_iou(piece) >= REPEAT_IOU and last.stop <= piece.start and \
                    covered(last.stop, piece.start):
                out[k] = copy.copy(last)
                out[k].stop = piece.stop
                break
        else:
            out.append(piece)
    return out


def time_segments(track: Track, frames: int, margin: float, pfa: float = 1e-3
                  ) -> list[Track]:
    """A track cut where what it holds changes: for each of its blocks (``rows``, ``frames``
    periodograms each) whose band stands over the noise, the band holding the middle 80 %
    of its excess power; where two blocks in a row share less than CHANGE_OVERLAP of the
    band the part so far has held (the median of its blocks'), one of the two bands well
    inside the other, a new part starts: a strong narrow signal followed by a wide one over
    it, which one track followed through both. (Side by side, a neighbour that comes or goes
    shares an edge with the two together; the frequency split and ``own_spans`` part
    those.) Parts shorter than MIN_SEGMENT blocks stay with the one before, and a track is
    cut only where each part holds one band (four in five of its blocks share half of it
    with the part's median band): a sweep, whose band moves from block to block, is not
    cut. Each part keeps its own blocks' rows, edges, samples and summed fine PSD, and its
    summed ZOOM times finer PSD where the track kept one for each of its blocks (its first
    FINER_ROWS; otherwise a part is cut and trimmed on the fine PSD; the block-long PSD is
    kept for whole tracks only)."""
    rows = track.rows
    if len(rows) < 2 * MIN_SEGMENT:
        return [track]
    fine = len(rows[0][1])
    a = max(int(np.floor((track.f_low - margin) * fine)) + fine // 2, 0)
    b = min(int(np.ceil((track.f_high + margin) * fine)) + fine // 2 + 1, fine)
    band = np.stack([row[a:b] for _, row in rows]).astype(np.float64)
    busy = band.mean(axis=1) > noise_level(pfa, frames * (b - a))
    lo, hi = middle_bands(np.maximum(band - 1, 0))
    starts, held_lo, held_hi = [0], [], []   # the part's blocks' band edges, kept sorted

    def nested(one, other):   # one band inside the other, clear of both its edges
        (a0, a1), (b0, b1) = sorted([one, other], key=lambda e: e[1] - e[0])
        clear = 0.1 * (b1 - b0)
        return a0 >= b0 + clear and a1 <= b1 - clear

    def overlap(k, ref):
        return (min(hi[k], ref[1]) - max(lo[k], ref[0])) / max(
            max(hi[k], ref[1]) - min(lo[k], ref[0]), 1)

    def median(values):   # of a sorted list
        m = len(values)
        return 0.5 * (values[(m - 1) // 2] + values[m // 2])
    for k in range(len(rows)):
        if not busy[k]:
            continue
        if len(held_lo) >= MIN_SEGMENT and k + 1 < len(rows) and busy[k + 1] and \
                k - starts[-1] >= MIN_SEGMENT:
            ref = (median(held_lo), median(held_hi))
            if overlap(k, ref) < CHANGE_OVERLAP and overlap(k + 1, ref) < CHANGE_OVERLAP \
                    and nested((lo[k], hi[k]), ref) and nested((lo[k + 1], hi[k + 1]), ref):
                starts.append(k)
                held_lo, held_hi = [], []
        bisect.insort(held_lo, int(lo[k]))
        bisect.insort(held_hi, int(hi[k]))
    if len(starts) > 1 and len(rows) - starts[-1] < MIN_SEGMENT:
        starts.pop()
    if len(starts) == 1:
        return [track]
    bounds = list(zip(starts, starts[1:] + [len(rows)]))
    for first, last in bounds:   # each part holds one band: a sweep's parts do not
        mine = [k for k in range(first, last) if busy[k]]
        ref = (np.median(lo[mine]), np.median(hi[mine]))
        if np.mean([overlap(k, ref) >= 0.5 for k in mine]) < 0.8:
            return [track]
    parts, block = [], track.stop - int(rows[-1][0])
    for first, last in bounds:
        parts.append(track.span(rows[first:last], int(rows[first][0]),
                                int(rows[last - 1][0]) + block, finer=True))
    return parts


def finer_bins(a: int, b: int, ratio: int) -> tuple[int, int]:
    """Bins [a, b) of a DC-centred PSD as the bins of one ``ratio`` times finer that cover
    the same band (bin k's centre is bin ratio k's; its band starts ratio / 2 bins lower)."""
    return max(a * ratio - ratio // 2, 0), b * ratio - ratio // 2


#: ``clip_to_box``: a run this share or more inside a track's box is cut to it
CLIP_INSIDE = 0.75
#: ... except on a side where CLIP_MIN_BINS or more past it stand within CLIP_DB of its
#: level inside, taken on CLIP_LEVEL_BINS or more
CLIP_DB, CLIP_MIN_BINS, CLIP_LEVEL_BINS = 3.0, 2, 8


def clip_to_box(parts: list, box: tuple[int, int], view: np.ndarray) -> list:
    """Runs found in a track's search window, on the bins of its box [a, b) of the PSD
    ``view``: a run CLIP_INSIDE or more inside the box is the track's signal and is cut to
    it (a wide signal's skirts, above the noise of a long mean, do not widen it), except
    on a side where the bins it holds past the box (CLIP_MIN_BINS or more) stand within
    CLIP_DB of its level inside (medians, on CLIP_LEVEL_BINS or more): the same signal,
    whose edge cells the model left in most blocks; one less inside is a neighbour the
    coarse view merged into the track for part of its blocks (the box is the median of its
    blocks' edges: a wide signal that came for half of them reaches half out of it), and
    stays whole."""
    out = []
    for a, b in parts:
        lo, hi = max(a, box[0]), min(b, box[1])
        if hi - lo < CLIP_INSIDE * (b - a):
            out.append((a, b))
            continue
        if hi - lo < CLIP_LEVEL_BINS:   # too few bins for its level
            out.append((lo, hi))
            continue
        db = 10 * np.log10(np.maximum(view[a:b], 1e-12))
        level = float(np.median(db[lo - a:hi - a])) - CLIP_DB
        if lo - a >= CLIP_MIN_BINS and float(np.median(db[:lo - a])) >= level:
            lo = a
        if b - hi >= CLIP_MIN_BINS and float(np.median(db[hi - a:])) >= level:
            hi = b
        out.append((lo, hi))
    return out


#: ``join_one_envelope``: neighbouring parts whose joint band has one constant envelope
#: (the band's normalized 4th moment with the noise's share taken out under ONE_ENVELOPE:
#: 1 for FSK, 1.2-1.45 for PSK, 1.5 for two independent signals of any kind) are one
#: signal, if they lie at most ENVELOPE_GAP of the wider one's width apart and the joint
#: band's signal share of its power is ENVELOPE_SHARE or more (under it the noise hides
#: the envelope; a wide FM's Bessel nulls part it into many slices that far apart)
ONE_ENVELOPE = 1.15
ENVELOPE_GAP = 2.0
ENVELOPE_SHARE = 0.4
#: ... each part at least this many bins of the fine PSD wide (not a line) and sharing
#: this much of the shorter one's time
ENVELOPE_MIN_BINS = 2
ENVELOPE_TIME = 0.8
#: ... and each holding this share of the parts' mean power or more (a weak neighbour
#: barely moves a strong constant envelope; an FSK's lobes are alike, an FM's slices
#: differ more, but many of them)
ENVELOPE_BALANCE = 0.2


def signal_kurtosis(kurtosis: float, share: float) -> float:
    """A signal's normalized 4th moment E|s|^4 / (E|s|^2)^2 from that of its band
    ``kurtosis`` (signal plus complex white noise) and the signal's ``share`` of the
    band's power: the band's is share^2 K + 4 share (1 - share) + 2 (1 - share)^2."""
    rest = 1.0 - share
    return (kurtosis - 4 * share * rest - 2 * rest * rest) / max(share * share, 1e-12)


#: families whose spectra hold lines past their 99 % band (an FM's tone, an FSK's tones)
LINE_FAMILIES = ("analog", "fsk")


def sibling_lines(parts: list, block: int, flushed: bool) -> list[int]:
    """Indices of those of one track's detections ``parts`` (classified) that are another
    part's own lines: a ``tone`` within the width of a part of LINE_FAMILIES past its band,
    that starts with it (to a ``block``, both after the stream's start) or ends with it
    (before the stream's end: not ``flushed``). An FM's outer lines, which the comb of its
    band leaves out, come and go with it; a CW tone bursting with a neighbour to the block
    seldom does, and continuous ones (no start or end to share) are kept."""
    out = []
    for k, line in enumerate(parts):
        if line.label != "tone":
            continue
        for other in parts:
            width = other.f_high - other.f_low
            if other.label not in LINE_FAMILIES or max(
                    other.f_low - line.f_high, line.f_low - other.f_high) > width:
                continue
            starts = min(line.start, other.start) > 0 and abs(line.start - other.start) <= block
            ends = not flushed and abs(line.stop - other.stop) <= block
            if starts or ends:
                out.append(k)
                break
    return out


def join_one_envelope(parts: list) -> list:
    """``refine_edges``' parts of one track, with runs of neighbours joined where their
    joint band has one constant envelope on the samples of the blocks they all hold: the
    lobes of a wide-index FSK signal, which the dips of its spectrum cut apart at low SNR,
    are one signal (only its whole band has that envelope, not a slice of it); neighbours
    that are two signals never have one (their sum beats). Of a chain of neighbours (each
    ENVELOPE_MIN_BINS of the fine PSD wide, at most ENVELOPE_GAP of the wider one's width
    from the next and sharing ENVELOPE_TIME of its time), the widest runs that pass are
    joined. The signal's share of the joint band's power comes from their fine PSDs
    (``rows``) in those blocks."""
    if len(parts) < 2:
        return parts
    chains = []
    for part in sorted(parts, key=lambda p: p.f_low):
        if chains and _neighbours(chains[-1][-1], part):
            chains[-1].append(part)
        else:
            chains.append([part])
    if all(len(chain) == 1 for chain in chains):
        return parts
    return [joined for chain in chains for joined in _join_runs(chain)]


def _neighbours(low: Track, high: Track) -> bool:
    """Whether part ``high`` may be the same signal as ``low``, the part below it."""
    gap = high.f_low - low.f_high
    widths = (low.f_high - low.f_low, high.f_high - high.f_low)
    if gap < 0 or gap > ENVELOPE_GAP * max(widths) or not low.rows or not high.rows:
        return False
    shared = low.shared_time(high)
    return min(widths) * len(low.rows[0][1]) >= ENVELOPE_MIN_BINS and \
        shared >= ENVELOPE_TIME * min(low.stop - low.start, high.stop - high.start)


def _join_runs(chain: list) -> list:
    """The widest run of ``chain`` with one envelope joined into its first part, the
    rest of the chain on either side treated the same way."""
    for size in range(len(chain), 1, -1):
        for i in range(len(chain) - size + 1):
            run = chain[i:i + size]
            if _one_envelope(run):
                first = run[0]
                first.f_high = max(p.f_high for p in run)
                first.start = min(p.start for p in run)
                first.stop = max(p.stop for p in run)
                first.score = max(p.score for p in run)
                return _join_runs(chain[:i]) + [first] + _join_runs(chain[i + size:])
    return chain


def _one_envelope(run: list) -> bool:
    """Whether neighbouring parts ``run`` (``join_one_envelope``) are one
    constant-envelope signal, on the blocks they all hold."""
    start, stop = max(p.start for p in run), min(p.stop for p in run)
    low, high = run[0].f_low, max(p.f_high for p in run)
    rows = [row for t, row in run[0].rows if start <= t < stop]
    blocks = [(t, x) for t, x in run[0].envelope_blocks() if start <= t < stop]
    if not rows or not blocks:
        return False
    psd = np.mean(rows, axis=0)
    a, b = band_bins(low, high, len(psd))
    share = 1.0 - 1.0 / max(float(psd[a:b].mean()), 1.0)
    powers = [float(np.maximum(psd[slice(*part.band_bins(len(psd)))] - 1, 0).sum())
              for part in run]
    if share < ENVELOPE_SHARE or min(powers) < ENVELOPE_BALANCE * np.mean(powers):
        return False
    return signal_kurtosis(envelope_features(blocks, low, high)[0], share) < ONE_ENVELOPE


#: a CW tone at a wide part's edge (``apart_edge_tones``): the strongest bin of the
#: block-long PSD within EDGE_TONE_BINS of the edge, a line there (one bin wide), with the
#: rest's own band ending EDGE_TONE_GAP to EDGE_TONE_MAX_GAP bins short of it (0.07-0.6 %
#: of the band at 8192 bins) and the line EDGE_TONE_RISE times the median bin between them
EDGE_TONE_BINS = 8
EDGE_TONE_GAP = 6
EDGE_TONE_MAX_GAP = 48
EDGE_TONE_RISE = 10.0
#: ... or, beside a flat rest (``flat``: no lines of its own), EDGE_TONE_FLAT_RISE times
EDGE_TONE_FLAT_RISE = 5.0
#: ... a burst holds its band in EDGE_TONE_BURST of the rows from its first to its last
EDGE_TONE_BURST = 0.6
#: ... or, beside a rest that holds no line (``smooth``), be held in EDGE_TONE_STEADY of the
#: part's blocks (a CW tone; an FM's outer lines flicker with its message)
EDGE_TONE_STEADY = 0.9
#: ... the view's bins either side of the line's that its window's main lobe reaches
EDGE_TONE_LOBE = 2


def burst_rows(held: np.ndarray) -> np.ndarray | None:
    """The rows from the first to the last that ``held`` marks, where it marks
    EDGE_TONE_BURST of them or more (a CW burst holds its band from its start to its end;
    an FM's outer lines flicker with its message), else None."""
    rows = np.flatnonzero(held)
    if not len(rows) or len(rows) < EDGE_TONE_BURST * (rows[-1] + 1 - rows[0]):
        return None
    span = np.zeros_like(held)
    span[rows[0]:rows[-1] + 1] = True
    return span


def apart_edge_tones(part: Track, view: np.ndarray, edges: tuple[float, float],
                     line: np.ndarray, level: float, frames: int, power_share: float
                     ) -> list[Track]:
    """A part of a track (its ``edges`` in bins of ``view``, the PSD it was settled on)
    and the CW tones at its edges, each a part of its own: a line of the block-long PSD
    ``line`` (over ``level``, the noise's false-alarm level; also on the part's skirt,
    ``line_over_floor``) at an edge, apart from the rest of the part (its band,
    ``power_share`` of its power with the line's bins taken out, ends a few bins short:
    EDGE_TONE_GAP to EDGE_TONE_MAX_GAP, EDGE_TONE_RISE under the line) and there in
    blocks where the rest is not (MIN_SEGMENT blocks and PRESENCE_SHARE of them or more,
    ``Track.held``): a tone 0.2 % of the band beside a signal that comes and goes, which
    a neighbour's skirt joins to that signal's run. Beside a flat rest (``flat``: PSK,
    QAM, OFDM, which hold no lines of their own) the line need only stand
    EDGE_TONE_FLAT_RISE over the gap, and may instead be a burst (``burst_rows``) that
    the rest outlasts by as many blocks. Beside a rest that holds no line however it is
    shaped (``smooth``: GMSK, GFSK), a line EDGE_TONE_RISE over the gap and held in
    EDGE_TONE_STEADY of the blocks is a CW tone even where the rest is always there with
    it. A signal's own line comes and goes with it and stays (as does a tone beside a
    signal with lines always there with it: nothing tells it from that signal's own
    line)."""
    r = len(line) // len(view)
    lo, hi = edges
    first, last = int(np.floor(lo * r)), int(np.ceil(hi * r))
    if last - first < 4 * EDGE_TONE_GAP:
        return [part]
    for low in (True, False):
        a = max(first - 2, 3) if low else last - EDGE_TONE_BINS
        b = first + EDGE_TONE_BINS if low else min(last + 2, len(line) - 4)
        k = a + int(np.argmax(line[a:b]))
        if line[k] < level:
            continue
        t_lo, t_hi = line_edges(line, k - 3, k + 4, power_share, level)
        if not one_bin(t_lo, t_hi):   # or a line on the part's skirt
            t_lo, t_hi = line_over_floor(line, k - 3, k + 4, power_share, level) or \
                (t_lo, t_hi)
        if not one_bin(t_lo, t_hi):
            continue   # no line
        masked = view.copy()
        masked[max(int(t_lo - 3) // r - EDGE_TONE_LOBE, 0):
               int(t_hi + 3) // r + EDGE_TONE_LOBE + 1] = 1.0
        r_lo, r_hi = occupied_edges(masked, int(np.floor(lo)), int(np.ceil(hi)), power_share)
        if not EDGE_TONE_GAP <= (r_lo * r - t_hi if low else t_lo - r_hi * r) <= \
                EDGE_TONE_MAX_GAP:
            continue
        gap = line[int(t_hi) + 3:int(r_lo * r)] if low else \
            line[int(np.ceil(r_hi * r)):int(t_lo) - 3]
        if not len(gap):
            continue
        band = line[int(np.ceil(r_lo * r)):int(np.floor(r_hi * r))]
        wide = len(band) >= 4 * EDGE_TONE_GAP
        lineless = wide and flat(band)
        rise = line[k] / median_of(gap)
        if rise < (EDGE_TONE_FLAT_RISE if lineless else EDGE_TONE_RISE):
            continue
        tone, rest = copy.copy(part), copy.copy(part)
        tone.f_low, tone.f_high = (float(e) for e in bin_edges(t_lo, t_hi, len(line)))
        rest.f_low, rest.f_high = (float(e) for e in bin_edges(r_lo, r_hi, len(view)))
        held, rest_held = tone.held(frames), rest.held(frames)
        apart = np.sum(held & ~rest_held)   # there where the rest is not
        if lineless:   # or a burst beside a flat rest that is there without it
            span = burst_rows(held)
            apart = max(apart, 0 if span is None else np.sum(rest_held & ~span))
        steady = wide and np.mean(held) >= EDGE_TONE_STEADY and rise >= EDGE_TONE_RISE \
            and smooth(band)   # always there, beside a rest that holds no line
        if apart < max(MIN_SEGMENT, PRESENCE_SHARE * len(part.rows)) and not steady:
            continue
        return [tone] + apart_edge_tones(rest, view, (r_lo, r_hi), line, level, frames,
                                         power_share)
    return [part]


def refine_edges(track: Track, frames: int, margin: float, pfa: float = 1e-3,
                 split_gap: int = 4, power_share: float = 0.999, block: int = 0,
                 valley_db: float = 0.0, hold: int = 4, finer_gap: int = 2,
                 dropped=None, beneath: bool = True) -> list[Track]:
    """Settle a track's frequency edges on its fine PSD (noise power 1 per bin, the mean of
    ``frames`` periodograms per block it was seen in). Bins within ``margin`` of the coarse
    edges, or of its wider search window (``Track.window``), that stand above the noise
    (false-alarm probability ``pfa``; runs of one bin are noise spikes) form runs; runs
    more than ``split_gap`` bins apart are separate signals (neighbours the coarse view
    merged). Where the track also holds a PSD ZOOM times finer
    (``Track.zoom``) and ``valley_db`` is set, each run is cut again on it: at gaps of more
    than ``finer_gap`` of its bins (0.1 % of the band at 2048 bins), at dips under
    NEAR_NOISE between parts NEAR_SIDES over the noise, and at valleys
    ``valley_db`` under both sides (``split_finer``: neighbours 0.2 % of the band apart,
    which the fine PSD's window blurs into one run). Runs that form a comb
    (``join_line_spectra``: one signal's spectral lines; on a track whose band holds still,
    STEADY_MIN_HUMPS humps or more) are joined. With ``block``, the
    parts are also cut where the blocks that hold a run's two sides differ
    (``split_by_presence`` on the whole run: neighbours whose skirts touch, one of which
    comes or goes; ``cut_at``: added to the valley cuts, never undoing one). A part found
    three quarters or more inside the coarse edges is cut to them (``clip_to_box``; not
    where it stands past them within 3 dB of its level inside: the same signal, its edge
    cells missed by the model); one further out is a neighbour and stays whole. Each
    detection's edges are its occupied bandwidth on the finest view: the band holding
    ``power_share`` of its power above the noise (99.9 %), which ignores window leakage and
    spectral skirts at high SNR (on the finer view a signal a few fine bins wide is not
    widened by the fine window's main lobe); with ``block`` and the block-long PSD, a CW
    tone at a part's edge that is there in blocks where the rest is not is a part of its own
    (``apart_edge_tones``). With ``block`` (samples per block), each detection then keeps
    the blocks where its own band holds it (``Track.own_spans``, ``hold`` blocks of absence
    allowed; a CW tone's also on the view twice finer, ``Track.held``): a burst beside a
    continuous neighbour ends when it does; parts that hold their band only in blips shorter
    than two blocks (a line beside another part: LINE_MIN_BLOCKS) are not reported
    (``dropped(n)`` is called with their number). With ``beneath``, a part's blocks that its
    spans leave but where its band still stands over the noise are settled again on their
    own (``signals_beneath``: a weaker signal in the band of a burst over it, one detection
    across the burst). A run at most
    LINE_VIEW_BINS wide on the finer view is cut again and trimmed on the track's
    block-long PSD (``Track.line``; gaps of more than LINE_GAP bins; ``line_edges``: a tone
    one bin of 8192 wide, also on one side's skirt of a neighbour: ``line_over_floor``),
    as is a wider one that is a comb of lines there
    (``comb_lines``); the lines of neighbouring parts that form one comb are joined
    (``line_runs``: an FM tone's lines, which the finer view cuts at Bessel nulls), unless
    mirrored lines of the comb differ in time (``lines_of_one_comb``: CW tones packed at
    one spacing); a wider run that is no comb is cut there around a CW tone in the valley
    between two flat signals (``tone_cuts``), or into the pieces that view parts at gaps
    where they are all smooth and wider than lines (``smooth_apart``: narrow neighbours
    0.2 % of the band apart beside a wide signal's skirt, blurred into one run on the
    finer view). Where nothing stands out (a weak signal),
    the coarse edges stay. Neighbouring parts with one
    constant envelope are then joined (``join_one_envelope``: an FSK's lobes)."""
    if track.spectrum is None or not track.spectra:
        return [track]
    fine = len(track.spectrum)
    n = frames * track.spectra
    psd = track.spectrum / track.spectra
    freqs = (np.arange(fine) - fine // 2) / fine
    box = (freqs >= track.f_low - margin) & (freqs <= track.f_high + margin)
    low, high = track.window or (track.f_low, track.f_high)
    inside = box | (freqs >= low - margin) & (freqs <= high + margin)
    runs = [(a, b) for a, b in merge_runs(inside & (psd > noise_level(pfa, n)), split_gap)
            if b - a > 1]
    # the view that splits runs: the finer PSD where the track has one, else the fine one
    if track.zoom is not None:
        view, r, view_n = track.zoom / track.spectra, ZOOM, n // ZOOM
    else:
        view, r, view_n = psd, 1, n
    # a track whose band holds still (not a chirp's or a sweep's: neighbours that join it
    # for a while move one of its edges) has weak neighbours its mean holds apart, and
    # tiles that differ where they come and go
    steady = not track.sweeps()
    min_humps = STEADY_MIN_HUMPS if steady else 3
    parts = []   # on the view's bins; a run split_finer leaves whole stays whole
    for a, b in runs:
        a, b = finer_bins(a, b, r)
        pieces = split_finer(view, noise_level(pfa, view_n), a, b, finer_gap, valley_db,
                             looks=view_n if steady else 0) if valley_db else []
        parts += pieces if len(pieces) > 1 else [(a, b)]
    if block and track.rows and steady:   # where tiles differ
        rows = np.stack([row for _, row in track.rows]).astype(np.float64)
        cuts = [m * r - r // 2 for a, b in runs
                for _, m in split_by_presence(rows, psd, a, b, frames, pfa)[:-1]]
        parts = cut_at(parts, cuts, PRESENCE_EDGE * r)
    if track.window is not None and box.any():
        edges = np.flatnonzero(box)
        parts = clip_to_box(parts, finer_bins(edges[0], edges[-1] + 1, r), view)
    line = track.line / track.spectra if track.line is not None else None
    level = noise_level(pfa, track.spectra)
    bands = []   # (spectrum, edges in its bins)
    lines = []   # the runs on the line view since the last band on the finer view

    def settle_lines():
        for lo, hi in (run for joined in line_runs(lines, min_humps)
                       for run in lines_of_one_comb(track, lines, joined, len(line), frames)):
            edges = line_edges(line, lo, hi, power_share, level)
            if one_bin(*edges):   # a line: a carrier's band, if it has sidebands
                edges = carrier_band(line, edges[0], track.spectra) or edges
            else:   # or a tone on one side's skirt of a neighbour (no AM carrier)
                edges = line_over_floor(line, lo, hi, power_share, level) or edges
            bands.append((line, edges))
        lines.clear()

    for a, b in join_line_spectra(parts, min_humps=min_humps):
        if line is not None and b - a > LINE_VIEW_BINS and valley_db:
            on_line = finer_bins(a, b, len(line) // len(view))
            split = split_finer(line, level, *on_line, LINE_GAP, valley_db)
            pieces = comb_lines(split, min_humps) or tone_cuts(line, level, split, *on_line)
            if pieces:   # a comb of lines (whose neighbours in the view may be its own),
                lines += [(piece, piece) for piece in pieces]   # or tones cut out
                continue
            if smooth_apart(line, split):   # neighbours only this view holds apart
                settle_lines()
                bands += [(line, occupied_edges(line, lo, hi, power_share)) for lo, hi in split]
                continue
        if line is None or b - a > LINE_VIEW_BINS:
            settle_lines()
            bands.append((view, occupied_edges(view, a, b, power_share)))
            continue
        a, b = finer_bins(a, b, len(line) // len(view))
        pieces = split_finer(line, level, a, b, LINE_GAP, valley_db) if valley_db else []
        lines += [(piece, piece) for piece in pieces] if len(pieces) > 1 else \
            [(pieces[0] if pieces else (a, b), (a, b))]
    if line is not None:
        settle_lines()
    out = []
    for spectrum, (e_lo, e_hi) in bands:
        part = copy.copy(track)
        part.f_low, part.f_high = (float(e) for e in bin_edges(e_lo, e_hi, len(spectrum)))
        if block and line is not None and track.rows and not one_bin(e_lo, e_hi):
            out += apart_edge_tones(part, spectrum, (e_lo, e_hi), line, level, frames,
                                    power_share)
        else:
            out.append(part)
    if not out:
        return [track]
    if block:
        beside = len(out) > 1   # a line beside another part holds as long as a tone
        spans = [part.own_spans(block, frames, hold, LINE_MIN_BLOCKS if beside and
                                part.is_line(block) else 2) for part in out]
        if dropped is not None and not all(spans):
            dropped(sum(not found for found in spans))
        found = [span for one in spans for span in one]
        if beneath:   # weaker signals the parts' bursts held for a while
            for part, held in zip(out, spans):
                found += signals_beneath(part, held, frames, margin, pfa, split_gap,
                                         power_share, block, valley_db, hold, finer_gap,
                                         dropped)
        out = join_one_envelope(found)
    return out

