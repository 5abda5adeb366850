"""Signals inside a wider one (``inner_signals``): a flat plateau raised inside an OFDM,
QAM or PSK band is a detection of its own, over its roll-off and its time."""

import numpy as np

from cvstream.blocks.segmenter import SpectrumSegmenter


def test_a_raised_flat_plateau_inside_a_wide_band_is_a_signal_in_flat_families_only():
    """``raised_plateaus`` on a PSD (noise 1 per bin, a mean of 16 periodograms): a band
    300 bins wide at 10 dB holding a 30-bin plateau 6 dB over it: that plateau, its edges
    within 2 bins, in each of ten draws; the same band without it, with a +-2 dB ripple
    across it (multipath), with a 2-bin line 20 dB over it, or at 4 dB (a weak band's level
    wanders): none; a plateau at the band's edge is the band's own shoulder: none. The
    segmenter looks for them inside detections labelled a flat-topped family only
    (``FLAT_FAMILIES``: an FSK's lobes over the valleys between them are its own): the
    plateau is a detection of its own inside an ``ofdm`` one, not inside an ``fsk`` one."""
    from cvstream.blocks.inner_signals import raised_plateaus
    from cvstream.blocks.tracks import Track, bin_edges
    rng = np.random.default_rng(3)
    bins = np.arange(512)

    def psd(level_db):   # noise plus a signal of level_db per bin (an array or a scalar)
        clean = 1 + np.where((bins >= 100) & (bins < 400), 10 ** (np.asarray(level_db) / 10), 0)
        return clean * rng.gamma(16, 1 / 16, 512)

    inner = np.where((bins >= 240) & (bins < 270), 16.0, 10.0)
    for _ in range(10):
        (lo, hi), = raised_plateaus(psd(inner), 100, 400)
        assert abs(lo - 240) <= 2 and abs(hi - 270) <= 2
    assert raised_plateaus(psd(10 + 2 * np.sin(2 * np.pi * bins / 150)), 100, 400) == []
    line = psd(10.0)
    line[250:252] *= 100
    assert raised_plateaus(line, 100, 400) == []
    assert raised_plateaus(psd(inner - 6.0), 100, 400) == []
    assert raised_plateaus(psd(np.where(bins >= 370, 16.0, 10.0)), 100, 400) == []
    block = SpectrumSegmenter()
    block.start()
    for label in ("ofdm", "fsk"):
        part = Track(0, 8192, *(float(e) for e in bin_edges(100, 400, 512)), 10.0, label)
        part.spectrum, part.spectra = psd(inner), 1
        split = [(part, [part])]
        block._inner_signals(split)
        parts = split[0][1]
        assert len(parts) == (2 if label == "ofdm" else 1)
        if len(parts) == 2:
            want = bin_edges(240, 270, 512)
            assert abs(parts[1].f_low - want[0]) <= 2 / 512
            assert abs(parts[1].f_high - want[1]) <= 2 / 512
            assert (parts[1].start, parts[1].stop) == (0, 8192)
            assert abs(parts[1].peak_snr_db - 16.0) < 0.5   # its own, not the band's 10 dB
    assert block.counters["inner_signals"] == 1
    block.stop()


def test_an_inner_signal_reaches_out_over_its_roll_off():
    """``roll_off_edges``: a raised-cosine signal (symbol rate 80 bins, roll-off 0.5: flat
    over 40 bins, 120 wide, bins 195-315) peaking 6 dB over a wide band at 10 dB (a mean of
    64 periodograms a bin): ``raised_plateaus`` finds its top (about 211-300), and from
    there its edges reach the roll-off's outer tenth (bins 203-307) within 5 bins, 8 bins
    or more wider than the top, in each of ten draws. A plateau with sheer sides keeps its
    edges (within a bin), and one beside a step in the wide band 1 dB up goes no further
    into it than a quarter of its width (ROLL_OFF_REACH)."""
    from cvstream.blocks.inner_signals import ROLL_OFF_REACH, raised_plateaus, roll_off_edges
    rng = np.random.default_rng(11)
    bins = np.arange(512)
    f = np.abs(bins - 255.0)
    shape = np.where(f <= 20, 1.0, np.where(f <= 60, 0.5 * (1 + np.cos(np.pi * (f - 20) / 40)),
                                             0.0))

    def psd(inner, wide=10.0):
        clean = 1 + np.where((bins >= 100) & (bins < 400), 10 ** (np.asarray(wide) / 10),
                             0.0) * (1 + (10 ** 0.6 - 1) * inner)
        return clean * rng.gamma(64, 1 / 64, 512)

    for _ in range(10):
        x = psd(shape)
        (lo, hi), = raised_plateaus(x, 100, 400)
        assert 209 <= lo and hi <= 302
        a, b = roll_off_edges(x, 100, 400, (lo, hi))
        assert abs(a - 203) <= 5 and abs(b - 307) <= 5 and b - a >= hi - lo + 8
    sheer = np.where((bins >= 240) & (bins < 270), 1.0, 0.0)
    for _ in range(5):
        x = psd(sheer)
        (lo, hi), = raised_plateaus(x, 100, 400)
        a, b = roll_off_edges(x, 100, 400, (lo, hi))
        assert abs(a - lo) <= 1 and abs(b - hi) <= 1
    step = psd(sheer, wide=np.where(bins >= 270, 11.0, 10.0))
    (lo, hi), = raised_plateaus(step, 100, 400)
    a, b = roll_off_edges(step, 100, 400, (lo, hi))
    assert b - hi <= ROLL_OFF_REACH * (hi - lo) and abs(a - lo) <= 1


def test_an_inner_signal_starts_where_it_stood_alone_before_the_wide_one():
    """``raised_since``: rows of a track (a PSD per block, noise 1 per bin, a mean of 8
    periodograms) before an inner signal's start (block 10) in which its band (bins
    240-270) stands 10 dB over noise either side move its start back, across missing rows
    up to ``hold`` blocks; a row where the wide signal is already there around it (the
    band level with its sides), one where the band is noise, or a gap longer than
    ``hold`` ends the search; with no such row it stays."""
    from cvstream.blocks.inner_signals import raised_since
    from cvstream.blocks.tracks import bin_edges
    rng = np.random.default_rng(5)
    bins = np.arange(512)
    block, f_low, f_high = 8192, *(float(e) for e in bin_edges(240, 270, 512))

    def row(alone: bool, wide: bool = False):
        level = np.where((bins >= 240) & (bins < 270), 10.0, 0.0)
        if wide:
            level = np.where((bins >= 100) & (bins < 400), 10.0, 0.0)
        return (1 + level) * rng.gamma(8, 1 / 8, 512) if alone or wide else \
            rng.gamma(8, 1 / 8, 512)

    alone = [(k * block, row(True)) for k in range(6, 10)]
    assert raised_since(alone, 10 * block, f_low, f_high, block, 6) == 6 * block
    wide_first = [(k * block, row(False, wide=True)) for k in range(4, 8)] + \
        [(k * block, row(True)) for k in (8, 9)]
    assert raised_since(wide_first, 10 * block, f_low, f_high, block, 6) == 8 * block
    noise_first = [(k * block, row(False)) for k in range(4, 8)] + [(9 * block, row(True))]
    assert raised_since(noise_first, 10 * block, f_low, f_high, block, 6) == 9 * block
    gaps = [(1 * block, row(True)), (6 * block, row(True))]   # 3 then 4 blocks missing
    assert raised_since(gaps, 10 * block, f_low, f_high, block, 3) == 6 * block
    assert raised_since(gaps, 10 * block, f_low, f_high, block, 4) == 1 * block
    assert raised_since([], 10 * block, f_low, f_high, block, 6) == 10 * block


def test_the_main_jobs_qam_signal_inside_an_ofdm_band_is_a_detection_of_its_own():
    """The main job's third scene (``graphs/spectrum_demo.yml``: seed 1, 20 Msps): a QAM
    signal 0.5 MHz wide (26-39 ms) stands about 4 dB over a 4.6 MHz OFDM signal around it
    for 10 ms; besides the OFDM's detection it is one of its own, labelled qam, its edges
    within 40 kHz of its true 2446.61 and 2447.39 MHz (its plateau's, 2446.75 and 2447.26,
    out over its roll-off, ``roll_off_edges``), from its own start (where it stands alone
    before the OFDM, ``raised_since``) to its own end (``_inner_signals``, counted; the
    piece of the same track after the OFDM ends continues it, ``Repeats.continue_inner``, and is
    not sent)."""
    from cvstream.blocks.spectrum_synth import SpectrumSynthSource
    sky = SpectrumSynthSource(rate=20e6, freq=2.45e9, scenes=4, seed=1, snr_min=0, snr_max=30)
    x = np.concatenate(list(sky.read())).astype(np.complex64)
    block = SpectrumSegmenter(rate=20e6, freq=2.45e9)
    block.process(x)
    block.flush()
    got = block.take_messages()
    inner = [m for m in got if 2446.6e6 < m["freq_lower_edge"] < m["freq_upper_edge"]
             < 2447.4e6 and m["sample_start"] < 0.03 * 20e6]
    assert len(inner) == 1 and inner[0]["label"] == "qam"
    assert abs(inner[0]["freq_lower_edge"] - 2446.61e6) < 40e3
    assert abs(inner[0]["freq_upper_edge"] - 2447.386e6) < 40e3
    ofdm = [m for m in got if m["freq_lower_edge"] < 2445e6 and m["freq_upper_edge"] > 2448e6]
    assert len(ofdm) == 1 and ofdm[0]["label"] == "ofdm"
    # from its own start (26.2 ms, alone for 1.2 ms before the OFDM came up around it)
    assert 0.0258 < inner[0]["sample_start"] / 20e6 < 0.0267
    assert inner[0]["sample_start"] < ofdm[0]["sample_start"] - 2 * block.decim
    end = (inner[0]["sample_start"] + inner[0]["sample_count"]) / 20e6
    assert 0.038 < end < 0.0405 and end > (ofdm[0]["sample_start"] + ofdm[0]["sample_count"]
                                           ) / 20e6 + 0.001
    assert block.counters.get("inner_signals") == 1
    assert block.counters.get("continued_inner") == 1
    block.stop()


def test_an_inner_signal_waits_for_the_track_that_continues_it():
    """An inner signal (a narrow one cut out inside a wide one's band) that ends when the
    wide one does waits, unsent, while a track open in its band started within
    CONTINUE_TILES tiles of its end; when that track ends, its detection that starts there
    in the inner signal's band is joined to it (not sent), and one elsewhere is sent as
    it is; an inner signal with no such track is sent at once."""
    from collections import Counter

    from cvstream.blocks.repeats import CONTINUE_TILES, Repeats
    from cvstream.blocks.tracks import Track
    tile = 8192
    counts = Counter()
    repeats = Repeats(tile, lambda name, n=1: counts.update({name: n}))
    inner = Track(0, 100 * tile, 0.10, 0.11, 20.0, "qam")
    inner.inner = True
    later = Track(101 * tile, 120 * tile, 0.099, 0.111, 20.0, "ofdm")
    elsewhere = Track(101 * tile, 120 * tile, 0.30, 0.32, 20.0, "psk")
    assert repeats.continue_inner([inner], [later, elsewhere]) == []
    assert repeats.continue_inner([later], [elsewhere]) == [inner]
    assert (inner.start, inner.stop) == (0, 120 * tile)
    assert counts == {"continued_inner": 1}
    assert repeats.continue_inner([elsewhere], []) == [elsewhere]
    alone = Track(0, 100 * tile, 0.20, 0.21, 20.0, "qam")
    alone.inner = True
    far = Track((101 + 2 * CONTINUE_TILES) * tile, 120 * tile, 0.199, 0.211, 20.0, "ofdm")
    assert repeats.continue_inner([alone], [far]) == [alone]
