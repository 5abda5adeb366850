"""CW tones among the lines of a modulated carrier, which the runs that settle a part's
edges join with them where the gaps between lines are narrower than a run's
(``stray_tones``): a carrier modulated by a tone has its lines on one grid (an FM's Bessel
lines, an AM's sidebands: multiples of the tone's frequency from the carrier), so a line
off that grid is another signal (``comb_grid``); an AM's sidebands mirror each other
about its carrier, so a line at its edge past a gap of noise with none at its mirror is
another signal (``beside_carrier``). ``detections.refine_edges`` calls it on each part of
a track's block-long PSD."""
from __future__ import annotations

import numpy as np

from .lines import LINE_GAP, LINE_WIDTH, LONE_PFA, line_edges, one_bin
from .psd_runs import occupied_edges
from .psd_stats import noise_level

#: a line: a bin that is the highest within LINE_LOBE bins either side (a tone's main lobe
#: on the block-long PSD), over the noise at false-alarm probability LONE_PFA (searched
#: over the hundreds of bins of a part), PAST_LOBE times the bins just past its lobe and
#: LINE_CONTRAST times the median of the LINE_AROUND bins either side past it (a line, not
#: a bump of a signal's band)
LINE_LOBE = 2
PAST_LOBE = 1.5
LINE_CONTRAST = 3.0
LINE_AROUND = 20
#: a comb: COMB_MEMBERS lines or more at one spacing of COMB_MIN_SPACING bins or more (lines
#: closer than that are not told apart from a tone's lobe and its neighbour's), each
#: within COMB_TOLERANCE bins of the grid's points (a tone's lines are equally spaced; a
#: line's bin is its centre to half a bin), the grid fitted to its members; at most as
#: many of the grid's points between its first and last members missing as there are
#: members (an FM's Bessel nulls leave a few out; a sparse grid fits lines by chance). Of
#: the grids through a strong line at the gap between two neighbouring lines, the one
#: with the most members less missing points (a finer grid fits more lines by chance),
#: the widest of equals
COMB_MEMBERS = 3
COMB_MIN_SPACING = 8
COMB_TOLERANCE = 1.5
FITS = 4   # rounds of the grid's fit to its members
#: a line OFF_GRID of the spacing or more from every point of the grid, within
#: COMB_REACH spacings of its first or last member, is off the comb
OFF_GRID = 0.3
COMB_REACH = 1.5
#: a comb with lines off it: at most one line in STRAYS (one at least) off its grid
#: within its reach (an FM by a message of more than one tone has lines at their sums
#: and differences: many off any one grid)
STRAYS = 4
#: a line with a mirror image SIDEBAND_SHARE as strong or more about a stronger line is a
#: carrier's sideband
SIDEBAND_SHARE = 0.5
#: the strongest lines tried as the grid's anchor (one may be the tone off it)
ANCHORS = 3
#: a carrier: the strongest line of a part, holding CARRIER_SHARE of its power over the
#: noise or more (an AM's)
CARRIER_SHARE = 0.5
#: the bins a line's contrast is taken over, from its own
_AROUND = np.r_[-LINE_LOBE - LINE_AROUND:-LINE_LOBE, LINE_LOBE + 1:LINE_LOBE + 1 + LINE_AROUND]


def line_peaks(line: np.ndarray, a: int, b: int, level: float) -> np.ndarray:
    """The bins in [a, b) of a block-long PSD ``line`` that hold a line (above)."""
    edge = LINE_LOBE + 1
    a, b = max(a, edge), min(b, len(line) - edge)
    if b <= a:
        return np.zeros(0, np.int64)
    at = line[a:b]

    def beside(step: int) -> tuple[np.ndarray, np.ndarray]:
        return line[a - step:b - step], line[a + step:b + step]
    keep = at > level
    for step in range(1, edge):   # the highest of its lobe
        below, above = beside(step)
        keep &= (at >= below) & (at >= above)
    # narrow: over the bins just past its lobe (a cheap test that leaves the median few)
    keep &= at >= PAST_LOBE * np.maximum(*beside(edge))
    peaks = np.flatnonzero(keep) + a
    if not len(peaks):
        return peaks
    around = line[np.clip(peaks[:, None] + _AROUND, 0, len(line) - 1)]
    return peaks[line[peaks] >= LINE_CONTRAST * np.median(around, axis=1)]


def _on_grid(peaks: np.ndarray, anchor: float, spacing: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each peak's step and offset (in spacings) from the grid through ``anchor``, and
    whether it is a member (within COMB_TOLERANCE bins)."""
    steps = np.round((peaks - anchor) / spacing)
    offset = (peaks - anchor) / spacing - steps
    return steps, offset, np.abs(offset) * spacing <= COMB_TOLERANCE


def _fit(peaks: np.ndarray, anchor: float, spacing: float
         ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """The grid from ``anchor`` and ``spacing`` refitted by least squares to its members
    (FITS rounds at most): (spacing, ``_on_grid``'s steps, offsets and members)."""
    steps, offset, member = _on_grid(peaks, anchor, spacing)
    for _ in range(FITS):
        k, at = steps[member], peaks[member]
        spread = k - k.mean()
        if not spread.any():
            break
        spacing = float(spread @ (at - at.mean()) / (spread @ spread))
        anchor = float(at.mean() - spacing * k.mean())
        if spacing < COMB_MIN_SPACING:   # (no comb: the caller leaves it)
            break
        steps, offset, now = _on_grid(peaks, anchor, spacing)
        if np.array_equal(now, member):
            break
        member = now
    return spacing, steps, offset, member


def comb_grid(peaks: np.ndarray, heights: np.ndarray) -> tuple | None:
    """The grid that most of the lines at bins ``peaks`` (heights ``heights``) lie on:
    (spacing, offsets in spacings, members) for COMB_MEMBERS members or more; None where
    none does."""
    if len(peaks) < COMB_MEMBERS + 1:   # a comb and a line off it
        return None
    gaps = np.unique(np.diff(peaks))
    spacings = gaps[gaps >= COMB_MIN_SPACING][::-1]   # the widest first
    at = peaks.astype(np.float64)
    best, best_score = None, 0.0
    for anchor in peaks[np.argsort(heights)[::-1][:ANCHORS]]:
        for spacing in spacings:
            fitted, steps, offset, member = _fit(at, float(anchor), float(spacing))
            if fitted < COMB_MIN_SPACING or member.sum() < COMB_MEMBERS:
                continue
            steps = np.unique(steps[member])
            missing = steps[-1] - steps[0] + 1 - len(steps)
            score = len(steps) - missing
            if missing <= len(steps) and score > best_score:
                best, best_score = (fitted, offset, member), score
    return best


def _sideband(line: np.ndarray, peaks: np.ndarray, k: int, reach: float) -> bool:
    """Whether the line at bin ``k`` of ``line`` has its mirror image about a stronger
    line (one of ``peaks``) within ``reach`` bins of it: a bin within one of its mirror
    at half its height or more (an AM carrier's sidebands, equally strong)."""
    for c in peaks[(np.abs(peaks - k) <= reach) & (line[peaks] >= line[k]) & (peaks != k)]:
        mirror = 2 * int(c) - int(k)
        if 1 <= mirror < len(line) - 1 and line[mirror - 1:mirror + 2].max() >= \
                SIDEBAND_SHARE * line[k]:
            return True
    return False


def stray_tones(line: np.ndarray, a: int, b: int, n: int, level: float, power_share: float
                ) -> tuple[tuple[float, float] | None, list[tuple[float, float]]]:
    """The CW tones among the lines of a part spanning bins [a, b) of a block-long PSD
    ``line`` (noise 1 per bin, the mean of ``n`` periodograms; ``level``: the false-alarm
    level its edges are taken at): where its lines lie on one grid (``comb_grid``), those
    OFF_GRID off it, within COMB_REACH of its members and not a stronger line's sideband
    (``_sideband``), in a comb with few strays; else those ``beside_carrier``. Returns
    the part's edges without them (``occupied_edges`` with noise in their lobes; None
    where it keeps its own) and each tone's edges (``line_edges``: one bin); (None, [])
    where there is none."""
    peaks = line_peaks(line, a, b, noise_level(LONE_PFA, n))
    grid = comb_grid(peaks, line[peaks]) if len(peaks) > COMB_MEMBERS else None
    if grid is None:
        near_carrier = beside_carrier(line, a, b, peaks, level)
        return _without(line, a, b, level, power_share, near_carrier)
    spacing, offset, member = grid
    first, last = peaks[member][0], peaks[member][-1]
    reach = COMB_REACH * spacing
    stray = (~member) & (peaks >= first - reach) & (peaks <= last + reach)
    if stray.sum() > max(1, member.sum() // STRAYS):   # no clean comb: a message of more
        return None, []                                  # than one tone, or no comb
    off = stray & (np.abs(offset) >= OFF_GRID)
    return _without(line, a, b, level, power_share,
                    [k for k in peaks[off] if not _sideband(line, peaks, k, reach)])


def beside_carrier(line: np.ndarray, a: int, b: int, peaks: np.ndarray, level: float
                   ) -> list[int]:
    """Of the lines ``peaks`` of a part spanning bins [a, b) of a block-long PSD ``line``
    with a carrier (CARRIER_SHARE), the outermost on either side where more than
    LINE_GAP bins of noise (under ``level``) part it from the rest and no line stands at
    its mirror about the carrier (an AM's sidebands do, a CW tone beside it does not)."""
    if len(peaks) < 2:
        return []
    carrier = int(peaks[np.argmax(line[peaks])])
    excess = np.maximum(line[a:b] - 1, 0)
    lobe = excess[max(carrier - LINE_LOBE - a, 0):carrier + LINE_LOBE + 1 - a].sum()
    if lobe < CARRIER_SHARE * excess.sum():
        return []
    out = []
    for k in sorted({int(peaks[0]), int(peaks[-1])} - {carrier}):
        side = 1 if k < carrier else -1   # towards the carrier
        near = k + side * (LINE_LOBE + 1)
        gap = line[max(min(near, near + side * LINE_GAP), 0):
                   max(near, near + side * LINE_GAP) + 1]
        mirror = 2 * carrier - k
        if not (gap > level).any() and not (1 <= mirror < len(line) - 1 and
                                            line[mirror - 1:mirror + 2].max() > level):
            out.append(k)
    return out


def _without(line: np.ndarray, a: int, b: int, level: float, power_share: float,
             lines: list) -> tuple[tuple[float, float] | None, list[tuple[float, float]]]:
    """``stray_tones``' result for the tones at bins ``lines`` of a part spanning [a, b):
    those one bin wide (``line_edges``), and the part's edges without them."""
    tones = []
    for k in lines:
        edges = line_edges(line, max(k - LINE_LOBE, 0), min(k + LINE_LOBE + 1, len(line)),
                           power_share, level)
        if one_bin(*edges):
            tones.append((int(k), edges))
    if not tones:
        return None, []
    rest = line[a:b].copy()   # the part without the tones' lobes (noise there)
    for k, _ in tones:
        rest[max(k - LINE_LOBE - a, 0):k + LINE_LOBE + 1 - a] = 1.0
    lo, hi = occupied_edges(rest, 0, b - a, power_share)
    return (a + lo, a + hi) if hi - lo >= LINE_WIDTH else None, [edges for _, edges in tones]
