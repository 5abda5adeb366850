"""How a track's detections are settled (``refine_edges``): edges on the track's finer
PSDs, where the rules of ``psd_runs`` (neighbours split at valleys, gaps and where their
blocks differ) and of ``lines`` (spectral lines and combs, CW tones at a part's edges, a
carrier's sidebands) apply; here, too, parts cut in time (``time_segments``), the
signals of a part's blocks that its spans leave (``signals_beneath``), neighbours of one
envelope joined (``join_one_envelope``) and which detections of one track are another's
line (``sibling_lines``). Narrow signals inside a wide one's band are in
``inner_signals``; tracks, their messages and the shared helpers in ``tracks``; the
family classifier's features in ``family_features``."""
from __future__ import annotations

import bisect
import copy

import numpy as np

from .family_features import envelope_features
from .lines import (LINE_GAP, LINE_MIN_BLOCKS, LINE_VIEW_BINS, LINE_WIDTH, STEADY_MIN_HUMPS,
                    apart_edge_tones, carrier_band, comb_lines, join_line_spectra, line_edges,
                    line_over_floor, line_runs, lines_of_one_comb, lone_lines, one_bin,
                    smooth_apart, tone_cuts)
from .psd_runs import (MIN_SEGMENT, PRESENCE_EDGE, clip_to_box, cut_at, finer_bins,
                       occupied_edges, split_by_presence, split_finer)
from .psd_stats import middle_bands, noise_level
from .stray_tones import stray_tones
from .tracks import Track, band_bins, bin_edges, merge_runs


#: how much finer than the fine PSD the view is that splits close neighbours (refine_edges)
ZOOM = 2
#: ``signals_beneath``: how far (fine bins) out of the part's band its detections may reach
UNHELD_SLACK_BINS = 2
#: the frequency IoU (``Track.band_iou``) from which two detections of one time are one
#: signal's: the segmenter's repeats, ``signals_beneath``'s part itself, one band's pieces
REPEAT_IOU = 0.5


#: consecutive tiles whose occupied band shares less than this (intersection over union)
#: with the band a detection has held so far start a new one (``time_segments``)
CHANGE_OVERLAP = 0.3


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
    busy = (band.mean(axis=1) > noise_level(pfa, frames * (b - a))).tolist()
    lo, hi = middle_bands(np.maximum(band - 1, 0))
    low, high = lo.tolist(), hi.tolist()   # (the loops below read them one by one)
    starts, held_lo, held_hi = [0], [], []   # the part's blocks' band edges, kept sorted

    def nested(one, other):   # one band inside the other, clear of both its edges
        (a0, a1), (b0, b1) = sorted([one, other], key=lambda e: e[1] - e[0])
        clear = 0.1 * (b1 - b0)
        return a0 >= b0 + clear and a1 <= b1 - clear

    def overlap(k, ref):
        return (min(high[k], ref[1]) - max(low[k], ref[0])) / max(
            max(high[k], ref[1]) - min(low[k], ref[0]), 1)

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
                    and nested((low[k], high[k]), ref) and \
                    nested((low[k + 1], high[k + 1]), ref):
                starts.append(k)
                held_lo, held_hi = [], []
        bisect.insort(held_lo, low[k])
        bisect.insort(held_hi, high[k])
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
#: a lone line (``lines.lone_lines``) this share of such a part's width past its band or
#: nearer is the part's own
LONE_REACH = 0.25


def sibling_lines(parts: list, block: int, flushed: bool) -> list[int]:
    """Indices of those of one track's detections ``parts`` (classified) that are another
    part's own lines: a ``tone`` within the width of a part of LINE_FAMILIES past its band,
    that starts with it (to a ``block``, both after the stream's start) or ends with it
    (before the stream's end: not ``flushed``). An FM's outer lines, which the comb of its
    band leaves out, come and go with it; a CW tone bursting with a neighbour to the block
    seldom does, and continuous ones (no start or end to share) are kept. A ``lone`` line
    (``lines.lone_lines``), whatever its label, is one too where it holds for fewer than
    LINE_MIN_BLOCKS blocks or lies within LONE_REACH of such a part's width past its band,
    whenever it comes (an FM's outer lines surface with its message). A tone that is
    none of its own part's lines (``Track.stray``) is another part's line, whatever that
    part's label, only where it both starts and ends with it (to a ``block``, after the
    stream's start), and never another stray tone's."""
    out = []
    for k, line in enumerate(parts):
        if line.stray:   # (not beside another stray tone: CW tones may come together)
            if any(not other.stray and min(line.start, other.start) > 0 and
                   abs(line.start - other.start) <= block and
                   abs(line.stop - other.stop) <= block for other in parts):
                out.append(k)
            continue
        if line.lone and line.stop - line.start < LINE_MIN_BLOCKS * block:
            out.append(k)
            continue
        if line.label != "tone" and not line.lone:
            continue
        for other in parts:
            width = other.f_high - other.f_low
            past = max(other.f_low - line.f_high, line.f_low - other.f_high)
            if other.label not in LINE_FAMILIES or past > width:
                continue
            if line.lone and past <= LONE_REACH * width:
                out.append(k)
                break
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


def _lone_lines(track: Track, line: np.ndarray, bands: list, margin: float,
                power_share: float) -> list[tuple[float, float]]:
    """``lines.lone_lines`` over the track's whole reach (every block's edges, ``margin``
    past them) on its block-long PSD ``line``, beside its ``bands`` ((spectrum, edges)),
    less any in the DC cell (half a ``margin`` either side of DC: a receiver's leakage)."""
    size = len(line)
    lows, highs = np.array(track.edges).T
    a = max(int((lows.min() - margin + 0.5) * size), 0)
    b = min(int(np.ceil((highs.max() + margin + 0.5) * size)), size)
    parts = [(lo * size / len(spectrum), hi * size / len(spectrum))
             for spectrum, (lo, hi) in bands]
    return [(lo, hi) for lo, hi in lone_lines(line, a, b, parts, track.spectra, power_share)
            if abs(0.5 * (lo + hi) - size // 2) >= 0.5 * margin * size]


def _stray_tones(bands: list, line: np.ndarray, n: int, level: float,
                 power_share: float) -> tuple[list, set]:
    """``bands`` ((spectrum, edges)) with the CW tones among each one's lines
    (``stray_tones.stray_tones`` on the block-long PSD ``line``, the mean of ``n``
    periodograms) as bands of their own, and that band's edges without them; and the
    indices of the tones' bands."""
    out, tones_at = [], set()
    for spectrum, (lo, hi) in bands:
        out.append((spectrum, (lo, hi)))
        if one_bin(lo, hi):
            continue
        scale = len(line) // len(spectrum)
        rest, tones = stray_tones(line, int(lo * scale), int(np.ceil(hi * scale)), n, level,
                                  power_share)
        if rest is not None:
            out[-1] = (line, rest)
        tones_at.update(range(len(out), len(out) + len(tones)))
        out += [(line, edges) for edges in tones]
    return out, tones_at


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
    finer view). A CW tone among a part's lines but none of them (off the grid of an FM's
    lines, or beside an AM's carrier with no line at its mirror: ``stray_tones``) is a
    part of its own, and that part's edges leave it out. A tone in the track's reach
    (every block's edges) that no run holds, there in too few of its blocks for their mean
    to show it on the fine PSD, is a part of its own (``lone_lines`` on the block-long
    PSD; ``Track.lone``). Where nothing stands out (a weak signal), the coarse edges stay.
    Neighbouring parts with one constant envelope are then joined (``join_one_envelope``:
    an FSK's lobes)."""
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
    stray = set()
    if line is not None:
        settle_lines()
        if block and valley_db:
            bands, stray = _stray_tones(bands, line, track.spectra, level, power_share)
    lone_from = len(bands)
    if line is not None and block and valley_db:
        bands += [(line, edges) for edges in _lone_lines(track, line, bands, margin,
                                                         power_share)]
    out = []
    for k, (spectrum, (e_lo, e_hi)) in enumerate(bands):
        part = copy.copy(track)
        part.lone, part.stray = k >= lone_from, k in stray
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
