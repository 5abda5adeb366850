"""CW tones among a modulated carrier's lines (blocks/stray_tones.py): a tone off the grid
of an FM's lines or beside an AM's carrier, which the runs that settle a part's edges
join with them."""

import numpy as np
import pytest

from cvstream.blocks.psd_stats import noise_level
from cvstream.blocks.segmenter import SpectrumSegmenter
from cvstream.blocks.stray_tones import stray_tones

PERIODOGRAMS = 32


def _line_psd(rng, lines, size=4096):
    """A block-long PSD: the mean of PERIODOGRAMS periodograms of unit noise, and lines
    (bin, height over the noise) with a fifth of their height in the bins either side."""
    psd = rng.gamma(PERIODOGRAMS, 1 / PERIODOGRAMS, size)
    for k, height in lines:
        psd[k] += height
        psd[k - 1:k + 2:2] += 0.2 * height
    return psd


COMB = [(1000 + 25 * k, h) for k, h in enumerate((60, 150, 200, 120, 80, 40))]


@pytest.mark.parametrize("case, lines, band, tone", [
    ("beside", COMB + [(1137, 30)], (996, 1140), 1137),   # 0.48 spacings past the last
    ("inside", COMB + [(1062, 30)], (990, 1260), 1062),   # between the 3rd and 4th
    ("none", COMB, (990, 1260), None),
    ("sidebands", [(1000 + 25 * k, 60) for k in range(10)] + [(1100, 500), (1092, 10),
                                                              (1108, 10)], (990, 1260), None),
    ("two tones", [(1000 + 25 * k + 9 * j, 50) for k in range(6) for j in range(2)],
     (990, 1260), None),
    ("no comb", [(1000, 50), (1031, 40), (1049, 60), (1090, 30), (1107, 40)], (990, 1260),
     None),
])
def test_a_line_off_a_combs_grid_is_a_tone_of_its_own(case, lines, band, tone):
    """Lines 25 bins apart (an FM's by a tone) and a CW tone 0.4-0.5 of that spacing off
    their grid, past the last line or between two: the tone is a one-bin band of its own,
    and the comb's band, where the tone was at its edge, ends at its last line. No tone
    where every line is on the grid, where the lines off it are a stronger line's mirrored
    pair (an AM carrier's sidebands on the comb), where many are off it (an FM by two
    tones: lines at their sums and differences) or where no grid holds the lines."""
    rng = np.random.default_rng(1)
    comb, tones = stray_tones(_line_psd(rng, lines), *band, PERIODOGRAMS,
                              noise_level(1e-3, PERIODOGRAMS), 0.999)
    if tone is None:
        assert (comb, tones) == (None, [])
        return
    ((lo, hi),) = tones
    assert lo <= tone < hi and hi - lo <= 1 + 1e-9
    assert comb[0] < 1000 and 1125 <= comb[1]
    if case == "beside":
        assert comb[1] < 1130


def _am_psd(rng, *lines):
    """An AM's block-long PSD: a carrier at bin 1100 (2000 over the noise) over its
    message's sidebands (3 over the noise in bins 1040-1160), and lines (bin, height)."""
    psd = _line_psd(rng, [(1100, 2000), *lines])
    psd[1040:1161] += 2.0
    return psd


@pytest.mark.parametrize("case, lines, tone", [
    ("beside", [(1020, 14)], 1020),                # 17 bins of noise from the band
    ("mirrored", [(1020, 14), (1180, 14)], None),  # the carrier's own pair
    ("on its skirt", [(1032, 14)], None),          # 5 bins of noise: the band's own
])
def test_a_line_beside_an_am_with_none_at_its_mirror_is_a_tone_of_its_own(case, lines,
                                                                        tone):
    """A part whose strongest line holds most of its power (an AM's carrier) and a line
    at its edge past a gap of noise (more than LINE_GAP bins): a CW tone beside the AM
    where nothing stands at its mirror about the carrier; the AM's sidebands where
    something does; the AM's own where the gap is narrower."""
    rng = np.random.default_rng(2)
    comb, tones = stray_tones(_am_psd(rng, *lines), 1015, 1165 if tone else 1185,
                              PERIODOGRAMS, noise_level(1e-3, PERIODOGRAMS), 0.999)
    if tone is None:
        assert (comb, tones) == (None, [])
        return
    ((lo, hi),) = tones
    assert lo <= tone < hi and hi - lo <= 1 + 1e-9
    assert 1035 <= comb[0] < 1045 and 1155 < comb[1] <= 1165


def test_a_cw_tone_between_an_fms_lines_gets_its_own_box():
    """FM by a tone (lines 30 bins of the block-long PSD apart, 20 dB over Carson's band)
    and a CW tone for half the stream, midway between two of its lines inside its band:
    the tone's detection is one bin of 8192 wide at its frequency, for its own blocks,
    beside the FM's ``analog`` detection over the FM's band (the runs of the fine PSD
    held the tone with the FM's lines)."""
    n, block = 262144, 8192
    t = np.arange(n)
    rng = np.random.default_rng(1)
    spacing, index, centre = 30.0 / 8192, 4.0, -0.2
    carson = 2 * (index + 1) * spacing
    fm = np.exp(1j * (2 * np.pi * centre * t + index * np.sin(2 * np.pi * spacing * t + 1)))
    f_cw = centre + 2.5 * spacing
    on = (t >= 6 * block) & (t < 22 * block)
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2) + \
        np.sqrt(100 * carson) * fm + np.exp(2j * np.pi * f_cw * t) * on
    seg = SpectrumSegmenter()
    seg.process(x.astype(np.complex64))
    seg.flush()
    got = seg.take_messages()
    seg.stop()
    tones = [m for m in got if m["freq_lower_edge"] <= f_cw <= m["freq_upper_edge"]
             and m["label"] == "tone"]
    assert len(tones) == 1, got
    (cw,) = tones
    assert cw["freq_upper_edge"] - cw["freq_lower_edge"] <= 1.01 / 8192
    assert abs(cw["sample_start"] - 6 * block) <= block
    assert abs(cw["sample_start"] + cw["sample_count"] - 22 * block) <= block
    fms = [m for m in got if m["label"] == "analog"]
    assert len(fms) == 1
    assert fms[0]["freq_lower_edge"] < centre - carson / 2 + spacing
    assert fms[0]["freq_upper_edge"] > centre + carson / 2 - spacing


def test_a_tone_off_a_comb_is_another_parts_line_only_where_it_starts_and_ends_with_it():
    """A stray tone (``Track.stray``: off a comb's grid) is not dropped as the comb's line
    where it only starts or only ends with a part beside it (a CW tone whose burst began
    with an FM's), as a tone the comb left would be; it is where it both starts and ends
    with one (a neighbouring FM's outer line, off the first FM's grid). Two stray tones
    that come and go together (CW tones keyed together) keep each other."""
    from cvstream.blocks.detections import sibling_lines
    from cvstream.blocks.tracks import Track
    block = 8192

    def part(label, lo, hi, start, stop, stray=False):
        out = Track(start * block, stop * block, lo, hi, 20.0)
        out.label, out.stray = label, stray
        return out
    fm = part("analog", 0.30, 0.31, 6, 27)
    assert sibling_lines([fm, part("tone", 0.3102, 0.3103, 7, 23)], block, False) == [1]
    assert sibling_lines([fm, part("tone", 0.3102, 0.3103, 7, 23, True)], block,
                         False) == []
    assert sibling_lines([fm, part("tone", 0.3102, 0.3103, 7, 26, True)], block,
                         False) == [1]
    assert sibling_lines([part("tone", 0.3102, 0.3103, 7, 23, True),
                          part("tone", 0.3122, 0.3123, 7, 23, True)], block, False) == []
