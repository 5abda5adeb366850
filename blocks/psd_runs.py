"""Runs of a track's fine PSD (noise power 1 per bin): their shape (``flat``, ``smooth``,
``few_lines``), the band that holds most of their power (``occupied_edges``), and where one
run is cut into neighbours: at valleys (``split_at_valleys``, ``split_finer``), at dips
near the noise (``cut_near_noise``), where the blocks that hold its two sides differ
(``split_by_presence``); and a search window's runs clipped to a track's box
(``clip_to_box``). ``detections.refine_edges`` settles a track's edges with them."""
from __future__ import annotations

import numpy as np

from .psd_stats import median_of, noise_level_table, quantile_of
from .tracks import merge_runs


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
            from scipy.ndimage import binary_dilation   # (kept off the worker's start)
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
    from scipy.ndimage import median_filter   # (kept off the worker's start)
    return psd > 10 ** (SMOOTH_DB / 10) * median_filter(psd, SMOOTH_SPAN, mode="nearest")


def few_lines(psd: np.ndarray) -> bool:
    """Whether at most FEW_LINES_SHARE of a run's bins are lines (``lines_in``: an AM's
    sidebands beside its carrier; not an FM's comb of lines)."""
    return float(np.mean(lines_in(psd))) <= FEW_LINES_SHARE


def smooth(psd: np.ndarray) -> bool:
    """Whether a run of a PSD holds no line (``lines_in``), however it is shaped."""
    return not lines_in(psd).any()


def occupied_edges(psd: np.ndarray, a: int, b: int, power_share: float
                   ) -> tuple[float, float]:
    """Fractional bin positions of the band of run [a, b) holding ``power_share`` of its
    power above the noise (noise power 1 per bin)."""
    excess = np.maximum(psd[a:b] - 1, 0)
    cum = np.concatenate([[0.0], np.cumsum(excess)]) / max(excess.sum(), 1e-12)
    tail = (1 - power_share) / 2
    return (a + float(np.interp(tail, cum, np.arange(b - a + 1))),
            a + float(np.interp(1 - tail, cum, np.arange(b - a + 1))))


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


#: tiles a part of a track so cut holds at least
MIN_SEGMENT = 3


def beside(db: np.ndarray, lo: int, hi: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``side`` bins of ``db`` either side of run [lo, hi), 2 bins out (its edges'
    leakage left out), clipped to the array."""
    return db[max(0, lo - 2 - side):max(0, lo - 2)], db[hi + 2:hi + 2 + side]


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
