"""Spectral lines in a track's band: combs kept whole or cut into their tones
(``join_line_spectra``, ``line_runs``, ``comb_lines``, ``tone_cuts``), a tone's edges
(``line_edges``, ``line_over_floor``), a carrier beside its sidebands (``carrier_band``)
and CW tones at a part's edge, apart from the rest in band or in time
(``apart_edge_tones``). ``detections.refine_edges`` calls them."""
from __future__ import annotations

import copy

import numpy as np

from .narrowband import around_runs
from .psd_runs import MIN_SEGMENT, PRESENCE_SHARE, alike, flat, occupied_edges, smooth
from .psd_stats import median_of, noise_level
from .tracks import Track, bin_edges


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


#: ``lone_lines``: a tone within a track's reach that none of its parts holds (one present in
#: a few of the track's blocks, which the fine PSD's mean over them all dilutes under its
#: noise level) stands over the noise of the block-long PSD at this false-alarm probability
#: (searched over hundreds of bins a track) ...
LONE_PFA = 1e-7
#: ... LONE_CONTRAST times the mean of the LONE_SPAN bins around it past its main lobe
#: (``narrowband.around_runs``: a line, not a signal's band), at most LONE_MAX_BINS bins
#: wide over the noise ...
LONE_CONTRAST = 3.0
LONE_SPAN = 42
LONE_MAX_BINS = 3
#: ... with no line at its mirror about the centre of a part wider than two lines within
#: LONE_MIRROR_REACH of the part's widths of it (an FM's outer lines come in pairs)
LONE_MIRROR_REACH = 1.5


def lone_lines(line: np.ndarray, a: int, b: int, parts: list[tuple[float, float]], n: int,
               power_share: float) -> list[tuple[float, float]]:
    """The edges (``line_edges``, one bin) of the tones in bins [a, b) of a block-long PSD
    ``line`` (noise 1 per bin, the mean of ``n`` periodograms) that are LINE_GAP bins or
    more from each of the track's ``parts`` (their edges in its bins) and pass the tests
    above (LONE_PFA, LONE_CONTRAST, LONE_MIRROR_REACH)."""
    level = noise_level(LONE_PFA, n)
    over = line[a:b] > level
    for lo, hi in parts:   # bins k with lo - LINE_GAP <= k < hi + LINE_GAP are theirs
        over[max(int(np.ceil(lo - LINE_GAP)) - a, 0):max(int(np.ceil(hi + LINE_GAP)) - a, 0)] \
            = False
    hit = np.flatnonzero(over) + a
    out = []
    for run in np.split(hit, np.flatnonzero(np.diff(hit) > 2) + 1):
        if not len(run) or run[-1] + 1 - run[0] > LONE_MAX_BINS:
            continue
        lo, hi = int(run[0]), int(run[-1]) + 1
        around = around_runs(line[None], np.zeros(1, np.int64), run[:1], run[-1:] + 1,
                             LONE_SPAN)[0]
        if line[lo:hi].max() < LONE_CONTRAST * around:
            continue
        edges = line_edges(line, max(lo - 2, 0), min(hi + 2, len(line)), power_share, level)
        if one_bin(*edges) and not _mirrored(line, 0.5 * (edges[0] + edges[1]), parts, level):
            out.append(edges)
    return out


def _mirrored(line: np.ndarray, k: float, parts: list[tuple[float, float]], level: float
              ) -> bool:
    """Whether bin ``k`` of ``line`` has a line over ``level`` (within two bins) at its
    mirror about the centre of one of ``parts`` (edges in its bins) wider than two lines,
    within LONE_MIRROR_REACH of that part's widths."""
    for lo, hi in parts:
        centre = 0.5 * (lo + hi)
        mirror = int(round(2 * centre - k))
        if hi - lo >= 2 * LINE_WIDTH and abs(k - centre) <= LONE_MIRROR_REACH * (hi - lo) \
                and 2 <= mirror < len(line) - 2 and line[mirror - 2:mirror + 3].max() > level:
            return True
    return False
