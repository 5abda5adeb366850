"""The segmenter's edges (``detections.refine_edges``): neighbours that one track followed
split where their finer PSDs or their tiles show two signals, bursts cut where their tiles
differ, each box hugging its signal."""

import numpy as np
import pytest

from cvstream.blocks.segmenter import SpectrumSegmenter
from cvstream.models.spectrum.synth import SceneConfig, scene
from cvstream.models.spectrum.waveforms import generate
from spectrum_helpers import band_noise, fine_track, segmented, tracked_signals, white


def test_a_burst_beside_a_continuous_neighbour_ends_when_it_does():
    """A continuous QPSK signal and a neighbour 1 % of the band above it that comes twice
    (tiles 4-9 and 16-21 of 24), which one coarse track followed through both over all 24
    tiles: with each tile's fine PSD kept, three detections, each spanning the tiles where
    its own band holds it (``Track.own_spans``); without them, the burst spans all 24. A
    neighbour in the last tile only is no detection (``dropped``)."""
    from cvstream.blocks.detections import refine_edges
    rng = np.random.default_rng(12)
    tile = 8192
    x, _ = scene(rng, SceneConfig(samples=24 * tile), n_signals=0)
    n = np.arange(len(x))
    on = ((n >= 4 * tile) & (n < 10 * tile)) | ((n >= 16 * tile) & (n < 22 * tile))
    for centre, width, gate in ((0.1, 0.03, 1), (0.14, 0.02, on)):
        wave, bw = generate(rng, "qpsk", len(x), width)
        x = x + np.sqrt(100 * bw) * wave * np.exp(2j * np.pi * centre * n) * gate
    track, frames = fine_track(x.astype(np.complex64), 0.08, 0.16, rows=True)
    track.seen = [k * tile for k in range(24)]
    track.edges = [(0.084, 0.152)] * 24   # the coarse runs merged both in every tile
    parts = refine_edges(track, frames, margin=1 / 256, block=tile, hold=4)
    spans = sorted((p.start // tile, p.stop // tile, round(p.f_low, 2)) for p in parts)
    assert spans == [(0, 24, 0.09), (4, 10, 0.13), (16, 22, 0.13)]
    burst = [p for p in parts if p.f_low > 0.12]
    assert [len(p.edges) for p in burst] == [6, 6] and all(p.spectra == 6 for p in burst)
    track.rows = []
    assert sorted((p.start, p.stop) for p in refine_edges(
        track, frames, margin=1 / 256, block=tile)) == [(0, 24 * tile)] * 2
    # the neighbour only in the last tile (a track's end catching another's first tile):
    # no detection of its own, counted
    last = (n >= 23 * tile).astype(float)
    y, _ = scene(rng, SceneConfig(samples=24 * tile), n_signals=0)
    for centre, width, gate in ((0.1, 0.03, 1), (0.14, 0.02, last)):
        wave, bw = generate(rng, "qpsk", len(y), width)
        y = y + np.sqrt(100 * bw) * wave * np.exp(2j * np.pi * centre * n) * gate
    track, frames = fine_track(y.astype(np.complex64), 0.08, 0.16, rows=True)
    track.seen, track.edges = [k * tile for k in range(24)], [(0.084, 0.152)] * 24
    dropped = []
    (part,) = refine_edges(track, frames, margin=1 / 256, block=tile, dropped=dropped.append)
    assert (part.start, part.stop, round(part.f_low, 2)) == (0, 24 * tile, 0.09)
    assert dropped == [1]


def test_a_narrow_signal_gets_its_width_from_the_block_long_psd():
    """A QPSK signal 0.25 % of the band wide (2.6 bins of the 1024-point PSD, whose window
    widens it by its main lobe), 48 tiles: its edges come from the tile-long PSD
    (``Track.line``: 8192 points), within 15 % of its band and centred on it; without it,
    from the 2048-point view (1.3-1.5 times the band) or the 1024-point PSD (1.9 times:
    frequency IoU 0.52, under the evaluation's 0.5 with any time error)."""
    from cvstream.blocks.detections import refine_edges
    rng = np.random.default_rng(13)
    x, _ = scene(rng, SceneConfig(samples=48 * 8192), n_signals=0)
    n = np.arange(len(x))
    wave, bw = generate(rng, "qpsk", len(x), 0.0025)
    x = (x + np.sqrt(100 * bw) * wave * np.exp(2j * np.pi * 0.2 * n)).astype(np.complex64)
    track, frames = fine_track(x, 0.19, 0.21)
    widths = []
    for zoom, line in ((track.zoom, track.line), (track.zoom, None), (None, None)):
        track.zoom, track.line = zoom, line
        (part,) = refine_edges(track, frames, margin=1 / 256, valley_db=15)
        assert 0.5 * (part.f_low + part.f_high) == pytest.approx(0.2, abs=0.1 * bw)
        widths.append((part.f_high - part.f_low) / bw)
    assert 0.85 < widths[0] < 1.15 and 1.2 < widths[1] < 1.6 and widths[2] > 1.8


def test_a_narrow_signal_then_a_wide_one_over_it_are_two_detections(monkeypatch):
    """A strong QPSK signal 2 % of the band wide for 14 tiles, then after one tile an OFDM
    signal 20 % wide over its band (the main job's picture had this): one track follows
    both (the gap is under ``hold``); cut where its band changes (``time_segments``), each
    is a detection of its own with its own span and band (the OFDM's whole band,
    -0.022..0.182: the track's box, the median of its tiles' edges, reaches under three
    quarters of it, so it is not cut to that, ``clip_to_box``). Without the cut, one box
    with the wide band over the narrow one's time, which matches neither; a chirp sweeping
    its band over the whole stream is not cut."""
    import cvstream.blocks.segmenter_output as segmenter_output
    rng = np.random.default_rng(21)
    tile = 8192
    x, _ = scene(rng, SceneConfig(samples=32 * tile), n_signals=0)
    n = np.arange(len(x))
    narrow, _ = generate(rng, "qpsk", len(x), 0.02)
    wide, bw = generate(rng, "ofdm", len(x), 0.2)
    x = x + np.sqrt(10 ** 3.0 * 0.02) * narrow * np.exp(2j * np.pi * 0.1 * n) * (n < 14 * tile)
    x = x + np.sqrt(10 ** 1.5 * bw) * wide * np.exp(2j * np.pi * 0.08 * n) * (n >= 15 * tile)

    def boxes(samples):
        block = SpectrumSegmenter()
        block.process(samples.astype(np.complex64))
        block.flush()
        return [(m["sample_start"] // tile, -(-(m["sample_start"] + m["sample_count"]) // tile),
                 round(m["freq_lower_edge"], 2), round(m["freq_upper_edge"], 2))
                for m in block.take_messages()]
    assert boxes(x) == [(0, 14, 0.09, 0.11), (15, 32, -0.02, 0.18)]
    monkeypatch.setattr(segmenter_output, "time_segments", lambda track, *a, **k: [track])
    assert boxes(x) != [(0, 14, 0.09, 0.11), (15, 32, -0.02, 0.18)]   # neither holds
    monkeypatch.undo()
    sweep, bw = generate(rng, "chirp", len(x), 0.1)
    y, _ = scene(rng, SceneConfig(samples=32 * tile), n_signals=0)
    assert len(boxes(y + np.sqrt(10 ** 2.0 * bw) * sweep * np.exp(2j * np.pi * -0.2 * n))) == 1


def test_refined_edges_split_neighbours_and_hug_each_signal():
    """Two QPSK signals 1 % of the band apart, the second only in the last 8 of 16 tiles,
    at a coarse box spanning both: the fine PSD gives two detections whose edges sit within
    10 % of the labelled ones, each spanning the tiles whose runs reached its band."""
    from cvstream.blocks.detections import refine_edges
    rng = np.random.default_rng(4)
    cfg = SceneConfig(samples=16 * 4096, snr_db=(20, 20), burst_probability=0.0,
                      modulations=("qpsk",))
    x, labels = scene(rng, cfg, n_signals=0)
    n = np.arange(len(x))
    truth = []
    for centre, width, first in ((0.1, 0.03, 0), (0.14, 0.02, 8 * 4096)):
        wave, bw = generate(rng, "qpsk", len(x), width)
        x = x + np.sqrt(100 * bw) * wave * np.exp(2j * np.pi * centre * n) * (n >= first)
        truth.append((centre - bw / 2, centre + bw / 2))
    track, frames = fine_track(x.astype(np.complex64), 0.08, 0.16)
    track.seen = [k * 4096 for k in range(16)]
    track.edges = [(0.084, 0.116)] * 8 + [(0.084, 0.152)] * 8  # the runs merged at tile 8
    parts = refine_edges(track, frames, margin=1 / 256)
    assert len(parts) == 2
    for part, (lo, hi) in zip(parts, truth):
        assert part.f_low == pytest.approx(lo, abs=0.1 * (hi - lo))
        assert part.f_high == pytest.approx(hi, abs=0.1 * (hi - lo))
        assert (part.start, part.stop) == (0, len(x))        # without the block size
    first, second = refine_edges(track, frames, margin=1 / 256, block=4096)
    assert (first.start, first.stop) == (0, len(x)) and len(first.edges) == 16
    assert (second.start, second.stop) == (8 * 4096, len(x)) and len(second.edges) == 8
    assert (track.start, track.stop, len(track.edges)) == (0, len(x), 16)  # untouched


def test_a_neighbour_merged_into_a_track_for_a_third_of_its_tiles_gets_its_own_box():
    """A QPSK signal over 18 tiles and a neighbour 1 % of the band above it in the last 6
    only, which the coarse view merged into its track there: the settled track's box is
    the median of its tiles' edges (the signal's own), its search window reaches the
    upper quartile of their high edges, so refining finds the neighbour as a detection of
    its own, from the tile it starts in, and the signal's edges still hug it."""
    from cvstream.blocks.detections import refine_edges
    tile = 4096
    track, frames, truth = tracked_signals(
        np.random.default_rng(4), tile, 18,
        [(lambda n: np.full(len(n), 0.1), 0.03, lambda n: n >= 0),
         (lambda n: np.full(len(n), 0.14), 0.02, lambda n: n >= 12 * tile)],
        lambda k: [(0.084, 0.116 if k < 12 else 0.152)], rows=False)
    assert (track.f_low, track.f_high) == pytest.approx((0.084, 0.116))
    assert track.window == pytest.approx((0.084, 0.152))
    parts = refine_edges(track, frames, margin=1 / 256, block=tile)
    assert len(parts) == 2
    for part, (lo, hi), first in zip(parts, truth, (0, 12 * tile)):
        assert part.f_low == pytest.approx(lo, abs=0.1 * (hi - lo))
        assert part.f_high == pytest.approx(hi, abs=0.1 * (hi - lo))
        assert (part.start, part.stop) == (first, 18 * tile)
    track.window = None   # searched in the box alone, the neighbour is not there
    (part,) = refine_edges(track, frames, margin=1 / 256, block=tile)
    assert part.f_high == pytest.approx(truth[0][1], abs=0.1 * 0.03)


def test_a_burst_touching_a_continuous_signal_is_cut_off_where_its_tiles_differ(
        monkeypatch):
    """A QPSK signal 4 % of the band wide over 24 tiles and a burst 0.4 % wide 0.05 % of
    the band above it in the first 10 only, their skirts touching (no valley for
    ``valley_db`` to cut at): the burst's side of the run holds it in tiles where the
    other side is alone, so ``split_by_presence`` cuts the run at the notch between them,
    and each is a detection of its own, with its own tiles. Without the cut (a notch
    required deeper than any) and the block-long PSD's (``smooth_apart``, which parts
    them too), one detection over both."""
    import cvstream.blocks.detections as detections
    import cvstream.blocks.psd_runs as psd_runs
    tile = 8192
    track, frames, truth = tracked_signals(
        np.random.default_rng(8), tile, 24,
        [(lambda n: np.full(len(n), 0.08), 0.04, lambda n: n >= 0),
         (lambda n: np.full(len(n), 0.1025), 0.004, lambda n: n < 10 * tile)],
        lambda k: [(0.06, 0.1045 if k < 10 else 0.1)])
    wide, burst = detections.refine_edges(track, frames, margin=1 / 256, block=tile,
                                          valley_db=15)
    assert (wide.start, wide.stop, burst.start, burst.stop) == (0, 24 * tile, 0, 10 * tile)
    for part, (lo, hi) in zip((wide, burst), truth):
        assert part.f_low == pytest.approx(lo, abs=0.25 * (hi - lo))
        assert part.f_high == pytest.approx(hi, abs=0.25 * (hi - lo))
    monkeypatch.setattr(psd_runs, "PRESENCE_DIP_DB", np.inf)
    assert len(detections.refine_edges(track, frames, margin=1 / 256, block=tile,
                                       valley_db=15)) == 2
    monkeypatch.setattr(detections, "smooth_apart", lambda line, pieces: False)
    (one,) = detections.refine_edges(track, frames, margin=1 / 256, block=tile,
                                     valley_db=15)
    assert one.f_low < truth[0][0] + 0.01 and one.f_high > truth[1][0]


def test_neighbours_that_come_and_go_in_one_track_each_get_their_tiles(monkeypatch):
    """Three QPSK signals side by side, their skirts touching: a burst (tiles 2-9 of 24),
    a continuous one and a second burst (tiles 12-22), which the coarse view joined in
    one track that meets up to three runs a tile. Their runs' centres spread wider than
    a run is wide, which is how a chirp's look, yet its tiles' bands do not sweep
    (``Track.sweeps``: one edge moves at a time), so ``split_by_presence`` cuts the group
    where its tiles differ: three detections, each over its own tiles. Taken for a
    sweep, the cut at the dips near the noise between them (``cut_near_noise``) still
    parts them, each over its own tiles; with that off too, one box over all three for all
    24 tiles."""
    import cvstream.blocks.psd_runs as psd_runs
    from cvstream.blocks.detections import refine_edges
    from cvstream.blocks.tracks import Track
    tile, tiles = 8192, 24
    bands = [(lambda n: np.full(len(n), 0.08), 0.02,
              lambda n: (n >= 2 * tile) & (n < 10 * tile)),
             (lambda n: np.full(len(n), 0.1005), 0.02, lambda n: n >= 0),
             (lambda n: np.full(len(n), 0.1175), 0.012,
              lambda n: (n >= 12 * tile) & (n < 23 * tile))]
    track, frames, truth = tracked_signals(   # joined in the first tile, a run a signal after
        np.random.default_rng(3), tile, tiles, bands, lambda k: [(0.07, 0.123)] if k == 0 else
        [(0.07, 0.0895)] * (2 <= k < 10) + [(0.0905, 0.1105)] +
        [(0.1115, 0.1235)] * (12 <= k < 23))
    assert track.moves() and not track.sweeps()
    parts = refine_edges(track, frames, margin=1 / 256, block=tile, valley_db=15)
    assert [(p.start // tile, p.stop // tile) for p in parts] == [(2, 10), (0, 24), (12, 23)]
    for part, (lo, hi), (_, width, _) in zip(parts, truth, bands):
        assert part.f_low == pytest.approx(lo, abs=0.15 * width)
        assert part.f_high == pytest.approx(hi, abs=0.15 * width)
    monkeypatch.setattr(Track, "sweeps", lambda self: True)
    whole = refine_edges(track, frames, margin=1 / 256, block=tile, valley_db=15)
    assert [(p.start // tile, p.stop // tile) for p in whole] == [(2, 10), (0, 24), (12, 23)]
    monkeypatch.setattr(psd_runs, "NEAR_NOISE", 0.0)
    (one,) = refine_edges(track, frames, margin=1 / 256, block=tile, valley_db=15)
    assert (one.start, one.stop) == (0, tiles * tile) and one.f_high > 0.12


def test_a_burst_past_a_strong_neighbours_skirt_is_cut_at_the_notch(monkeypatch):
    """A continuous FM signal at 25 dB and an OFDM burst (tiles 8-16 of 24) whose band
    starts where the FM's ends: the FM's skirt reaches past the notch between them, so the
    burst's side of a cut there is never absent, and the cuts that part the tiles lie
    inside the burst's band, where nothing dips. The notch within NOTCH_REACH bins of them
    is taken: the FM hugs its band over all 24 tiles and the burst is a detection over its
    own. Without the reach, the cut falls inside the burst (at its centre's notch) and the
    FM's box runs into it."""
    import cvstream.blocks.psd_runs as psd_runs
    from cvstream.blocks.detections import refine_edges
    tile = 8192
    track, frames, _ = tracked_signals(
        np.random.default_rng(1), tile, 24,
        [(lambda n: np.full(len(n), 0.08), 0.03, lambda n: n >= 0, "fm", 25),
         (lambda n: np.full(len(n), 0.1115), 0.04,
          lambda n: (n >= 8 * tile) & (n < 17 * tile), "ofdm", 25)],
        lambda k: [(0.065, 0.0905)] + [(0.0905, 0.1355)] * (8 <= k < 17))
    fm, burst = refine_edges(track, frames, margin=1 / 256, block=tile, valley_db=15)
    assert (fm.start, fm.stop, burst.start, burst.stop) == (0, 24 * tile, 8 * tile, 17 * tile)
    assert 0.068 < fm.f_low < fm.f_high < 0.0905 and 0.087 < burst.f_low < 0.092
    assert burst.f_high > 0.13
    monkeypatch.setattr(psd_runs, "NOTCH_REACH", 0)
    fm, *_ = refine_edges(track, frames, margin=1 / 256, block=tile, valley_db=15)
    assert fm.f_high > 0.1


def test_a_signal_whose_band_takes_turns_between_two_places_is_not_cut():
    """One QPSK signal 1 % of the band wide that moves 0.9 % up and back every 3 tiles (a
    slow two-tone FSK, its two places' skirts touching): each side of the run holds it
    alone in turn, so ``split_by_presence`` leaves it whole."""
    from cvstream.blocks.detections import refine_edges
    tile = 8192
    track, frames, _ = tracked_signals(
        np.random.default_rng(8), tile, 24,
        [(lambda n: np.where((n // (3 * tile)) % 2 == 1, 0.109, 0.1), 0.01,
          lambda n: n >= 0)],
        lambda k: [(0.094, 0.115)])
    (part,) = refine_edges(track, frames, margin=1 / 256, block=tile, valley_db=15)
    assert part.f_low < 0.096 and part.f_high > 0.113
    assert (part.start, part.stop) == (0, 24 * tile)


def test_valleys_split_touching_neighbours():
    """Two QPSK signals 0.2 % of the band apart (two fine bins: their skirts touch above the
    noise, so the fine PSD's gap rule keeps them one): with ``valley_db`` the run is cut
    again on the twice-as-fine PSD, each part's edges within 15 % of its band; the valley
    rule cuts a dip 19 dB under both sides' medians, not a plateau's ripple or a shallow
    dip."""
    from cvstream.blocks.detections import refine_edges
    from cvstream.blocks.psd_runs import split_at_valleys
    db = np.r_[np.full(10, 25.0), [12.0, 5.0, 11.0], np.full(8, 24.0)]
    assert split_at_valleys(db, 0, len(db), 15) == [(0, 11), (12, 21)]
    assert split_at_valleys(db, 0, len(db), 21) == [(0, len(db))]
    ripple = 25 + 4 * np.sin(np.arange(40))
    assert split_at_valleys(ripple, 0, 40, 15) == [(0, 40)]
    rng = np.random.default_rng(6)
    x, _ = scene(rng, SceneConfig(samples=16 * 4096), n_signals=0)
    n = np.arange(len(x))
    truth = []
    for centre, width in ((0.1, 0.03), (0.1 + 0.015 + 0.002 + 0.01, 0.02)):
        wave, bw = generate(rng, "qpsk", len(x), width)
        x = x + np.sqrt(10 ** 2.5 * bw) * wave * np.exp(2j * np.pi * centre * n)
        truth.append((centre - bw / 2, centre + bw / 2))
    track, frames = fine_track(x.astype(np.complex64), 0.08, 0.14)
    track.seen = [k * 4096 for k in range(16)]
    track.edges = [(0.084, 0.137)] * 16
    assert len(refine_edges(track, frames, margin=1 / 256)) == 1
    parts = refine_edges(track, frames, margin=1 / 256, valley_db=15)
    assert len(parts) == 2
    for part, (lo, hi) in zip(parts, truth):
        assert part.f_low == pytest.approx(lo, abs=0.15 * (hi - lo))
        assert part.f_high == pytest.approx(hi, abs=0.15 * (hi - lo))


def test_the_finer_view_cuts_gaps_between_strong_signals_only():
    """``split_finer`` on a PSD (noise 1 per bin): two plateaus 10 dB over the noise with
    six bins of noise between them are two (three bins: two at a gap of 2, one at 4); the
    same at 4 dB (a weak signal's own bins dip under the level by chance) stay one; a
    one-bin part is dropped."""
    from cvstream.blocks.psd_runs import split_finer
    from cvstream.blocks.psd_stats import noise_level
    level = noise_level(1e-3, 64)
    for db, parts in ((10.0, [(0, 20), (26, 46)]), (4.0, [(0, 46)])):
        psd = np.r_[np.full(20, 10 ** (db / 10)), np.ones(6), np.full(20, 10 ** (db / 10))]
        assert split_finer(psd, level, 0, len(psd), 4, 15.0) == parts
    spike = np.r_[np.full(20, 10.0), np.ones(6), [10.0], np.ones(6)]
    assert split_finer(spike, level, 0, len(spike), 4, 15.0) == [(0, 20)]
    # a gap of 3 bins (0.15 % of the band at 2048): cut at refine_edges' finer_gap of 2
    narrow = np.r_[np.full(20, 10.0), np.ones(3), np.full(20, 10.0)]
    assert split_finer(narrow, level, 0, len(narrow), 2, 15.0) == [(0, 20), (23, 43)]
    assert split_finer(narrow, level, 0, len(narrow), 4, 15.0) == [(0, 43)]


def test_a_long_mean_holds_weak_neighbours_apart_but_not_a_strong_signals_weak_stretch():
    """Three neighbours at 3.4-4.5 dB (under split_finer's 5 dB) with eight bins of noise
    between them, on a mean of 128 periodograms (noise deviation 0.09): one run by the
    level alone, three parts where each median stands SIDE_DEVIATIONS deviations over the
    level. A 12 dB signal with a 3.4 dB stretch past a gap (a wide FSK between its lobes)
    stays one, as the run holds a part over WEAK_RUN_DB."""
    from cvstream.blocks.psd_runs import split_finer
    from cvstream.blocks.psd_stats import noise_level
    looks = 128
    level = noise_level(1e-3, looks)
    rng = np.random.default_rng(5)

    def psd(*parts):   # (excess over the noise, bins) plateaus, eight noise bins apart
        gap = np.zeros(8)
        excess = np.concatenate([np.r_[np.full(w, e), gap] for e, w in parts])[:-8]
        return excess + rng.gamma(looks, 1 / looks, len(excess))
    weak = psd((1.2, 40), (1.5, 30), (1.8, 50))
    assert split_finer(weak, level, 0, len(weak), 2, 15.0) == [(0, 136)]
    assert split_finer(weak, level, 0, len(weak), 2, 15.0, looks=looks) == \
        [(0, 40), (48, 78), (86, 136)]
    strong = psd((15.0, 60), (1.2, 30))
    assert split_finer(strong, level, 0, len(strong), 2, 15.0, looks=looks) == [(0, 98)]


def test_a_long_mean_holds_a_weak_wide_neighbour_without_lines_apart_from_strong_ones():
    """An AM's sidebands 4.5 dB over the noise over 80 bins, its carrier in their middle,
    with eight bins of noise to a 12 dB signal 15 bins wide below and to another 11 bins
    wide above (GNU Radio's seed 4321 #10: a GMSK, an AM and an FM that one run held),
    on a mean of 512 periodograms: three parts, where the weaker of two neighbours is
    wider than the stronger (and APART_MIN_BINS), stands SIDE_DEVIATIONS deviations over
    the level and has few lines (``few_lines``); one run without the long mean. Not cut
    off: an FM's comb of lines over a weak floor, a few weak bins beside a strong line,
    and a strong signal's weak stretch narrower than it (a wide FSK between its lobes)."""
    from cvstream.blocks.psd_runs import split_finer
    from cvstream.blocks.psd_stats import noise_level
    looks = 512
    level = noise_level(1e-3, looks)
    rng = np.random.default_rng(9)

    def psd(*parts):   # (excess over the noise per bin, in order) parts, 8 noise bins apart
        gap = np.zeros(8)
        excess = np.concatenate([np.r_[part, gap] for part in parts])[:-8]
        return excess + rng.gamma(looks, 1 / looks, len(excess))
    sidebands = np.full(80, 1.8)
    sidebands[39:42] = (300, 1000, 300)   # the carrier
    am = psd(np.full(15, 15.0), sidebands, np.full(11, 15.0))
    assert split_finer(am, level, 0, len(am), 2, 15.0, looks=looks) == \
        [(0, 15), (23, 103), (111, 122)]
    assert split_finer(am, level, 0, len(am), 2, 15.0) == [(0, 122)]
    comb = np.full(80, 1.0)
    comb[::4] = 20.0   # an FM's lines, four bins apart, over a weak floor
    fm = psd(np.full(15, 15.0), comb)
    assert split_finer(fm, level, 0, len(fm), 2, 15.0, looks=looks) == [(0, 103)]
    outer = psd(np.full(4, 15.0), np.full(6, 1.8))   # a strong line's few weak bins
    assert split_finer(outer, level, 0, len(outer), 2, 15.0, looks=looks) == [(0, 18)]
    stretch = psd(np.full(60, 15.0), np.full(30, 1.8))
    assert split_finer(stretch, level, 0, len(stretch), 2, 15.0, looks=looks) == [(0, 98)]


def test_strong_neighbours_whose_skirts_fill_the_gap_are_cut_at_the_dip_near_the_noise(
        monkeypatch):
    """Two plateaus 15 dB over the noise whose skirts fill the six bins between them at
    3 dB (over the false-alarm level, so no gap by the level alone): two parts, cut where
    the PSD dips under NEAR_NOISE (6 dB), outer edges kept. The same dip between plateaus
    at 8 dB (under NEAR_SIDES, 10 dB: a weak signal's own shape) or a dip to 8 dB between
    15 dB plateaus (a wide FSK between its lobes) leaves one run."""
    from cvstream.blocks import psd_runs
    from cvstream.blocks.psd_runs import split_finer
    from cvstream.blocks.psd_stats import noise_level
    level = noise_level(1e-3, 64)

    def psd(side_db, dip_db):
        side, dip = np.full(30, 10 ** (side_db / 10)), np.full(6, 10 ** (dip_db / 10))
        return np.r_[side, dip, side]
    assert level < 10 ** 0.3 < psd_runs.NEAR_NOISE
    strong = psd(15.0, 3.0)
    assert split_finer(strong, level, 0, len(strong), 2, 15.0) == [(0, 30), (36, 66)]
    for side_db, dip_db in ((8.0, 3.0), (15.0, 8.0)):
        one = psd(side_db, dip_db)
        assert split_finer(one, level, 0, len(one), 2, 15.0) == [(0, 66)]
    # and the rule switched off (the old behaviour): the strong pair stays one run
    monkeypatch.setattr(psd_runs, "NEAR_NOISE", 0.0)
    assert split_finer(strong, level, 0, len(strong), 2, 15.0) == [(0, 66)]


def test_an_ofdm_signals_centre_notch_does_not_cut_it():
    """An OFDM signal's unused centre carrier leaves a notch to the noise between two halves
    as wide and as strong as each other (``halves``; 3 dB apart: a multipath channel's
    tilt): one signal. Neighbours of unequal widths, or of levels 6 dB apart, with the
    same gap between them are two."""
    from cvstream.blocks.psd_runs import split_finer
    from cvstream.blocks.psd_stats import noise_level
    level = noise_level(1e-3, 64)

    def psd(w1, db1, w2, db2):
        return np.r_[np.full(w1, 10 ** (db1 / 10)), np.ones(3), np.full(w2, 10 ** (db2 / 10))]
    ofdm = psd(40, 8.0, 40, 8.5)
    assert split_finer(ofdm, level, 0, len(ofdm), 2, 15.0) == [(0, 83)]
    tilted = psd(40, 8.0, 40, 11.0)
    assert split_finer(tilted, level, 0, len(tilted), 2, 15.0) == [(0, 83)]
    unequal = psd(20, 8.0, 40, 8.0)
    assert split_finer(unequal, level, 0, len(unequal), 2, 15.0) == [(0, 20), (23, 63)]
    stronger = psd(40, 8.0, 40, 14.0)
    assert split_finer(stronger, level, 0, len(stronger), 2, 15.0) == [(0, 40), (43, 83)]


def test_narrow_neighbours_beside_a_wide_signals_skirt_keep_their_own_boxes(monkeypatch):
    """Two narrow signals 0.26 % and 0.23 % of the band wide, 0.2 % apart, and a wide one
    0.4 % above them whose skirt falls off over 0.6 % of the band (GNU Radio's seed 4321
    #23: a QPSK beside a BPSK and a 64QAM). The finer view blurs the three into one run,
    too wide for the block-long PSD's narrow cuts; that PSD parts them at gaps into smooth
    pieces wider than lines (``smooth_apart``): three detections, each within its band's
    skirts. Without that cut, one box over all three. An FM's lines between its nulls
    are pieces too narrow, and not smooth, to part."""
    from cvstream.blocks import detections
    from cvstream.blocks.detections import refine_edges
    tile, n = 8192, 32 * 8192
    rng = np.random.default_rng(7)
    bands = [(-0.3827, -0.3801, 0.001, 28), (-0.3779, -0.3756, 0.001, 25),
             (-0.3716, -0.3216, 0.006, 27)]
    x = white(rng, n) + sum(band_noise(rng, n, *band) for band in bands)

    def parts():
        track, frames = fine_track(x.astype(np.complex64), -0.385, -0.32, rows=True)
        track.seen, track.edges = [k * tile for k in range(32)], [(-0.385, -0.32)] * 32
        return sorted((p.f_low, p.f_high) for p in refine_edges(
            track, frames, margin=1 / 256, block=tile, hold=4, valley_db=15.0))
    got = parts()
    assert len(got) == 3
    for (f_low, f_high), (lo, hi, roll, _) in zip(got, bands):
        assert lo - roll <= f_low <= lo + roll / 2 and hi - roll / 2 <= f_high <= hi + roll
    monkeypatch.setattr(detections, "smooth_apart", lambda line, pieces: False)
    (whole,) = parts()
    assert whole[0] < bands[0][1] and whole[1] > bands[2][0]
    monkeypatch.undo()
    psd = rng.uniform(0.8, 1.2, 8192)
    psd[1000:1020] *= 300
    psd[1040:1080] *= 300
    assert detections.smooth_apart(psd, [(1000, 1020), (1040, 1080)])
    fm = psd.copy()
    fm[1040:1080:8] *= 30                 # lines between its nulls: not smooth
    assert not detections.smooth_apart(fm, [(1000, 1020), (1040, 1080)])
    assert not detections.smooth_apart(psd, [(1000, 1020), (1040, 1044)])   # a line
    assert not detections.smooth_apart(psd, [(1000, 1080)])


def test_a_tone_beside_a_neighbours_skirt_ends_where_its_finer_view_does():
    """``Track.held`` for a CW tone (one bin of 8192) whose 1024-point bin also holds a
    neighbour's skirt once the tone has ended (GNU Radio set 31337 #17: the tone's box ran
    on for twice its time): over 20 blocks the coarse bin stands 13 dB over the noise in
    all of them, the tone's bin of the view twice finer (``finer_rows``) only in the first
    8, so the tone holds those 8. Where the finer view holds it in none, or lacks rows,
    or the band is wider than a coarse bin, the coarse test alone decides."""
    from cvstream.blocks.tracks import Track
    rng = np.random.default_rng(4)
    f = (700 - 512) / 1024
    tone = Track(0, 20 * 8192, f - 0.5 / 8192, f + 0.5 / 8192, 20.0, "tone")
    coarse, finer = [], []
    for k in range(20):
        row = rng.gamma(8, 1 / 8, 1024)
        row[700] = 20.0                     # the tone, then the neighbour's skirt
        zoom = rng.gamma(4, 1 / 4, 2048)
        zoom[1400] = 40.0 if k < 8 else zoom[1400]
        zoom[1402] = 40.0 if k >= 8 else zoom[1402]   # the skirt, two finer bins off
        coarse.append((k * 8192, row))
        finer.append((k * 8192, zoom.astype(np.float32)))
    tone.rows, tone.finer_rows = coarse, finer
    assert tone.held(8).tolist() == [True] * 8 + [False] * 12
    tone.finer_rows = finer[:10]             # not kept for every row
    assert tone.held(8).all()
    tone.finer_rows = [(t, np.ones(2048, np.float32)) for t, _ in finer]   # nowhere
    assert tone.held(8).all()
    wide = Track(0, 20 * 8192, f - 4 / 1024, f + 4 / 1024, 20.0, "psk")
    wide.rows, wide.finer_rows = coarse, finer
    assert wide.held(8).all()


def test_a_run_cut_to_its_tracks_box_keeps_the_bins_past_it_at_its_own_level():
    """``clip_to_box`` on a PSD (noise 1 per bin): a flat band (bins 100-300, 10 dB) whose
    track's box the model's cells left 20 bins short on each side (120-280) keeps its
    whole band; with skirts 8 dB under it past the box it is cut to the box, side by side;
    a run less than three quarters inside the box (a neighbour) stays whole either way."""
    from cvstream.blocks.psd_runs import clip_to_box
    rng = np.random.default_rng(9)
    bins = np.arange(512)

    def psd(low_db, high_db):
        level = np.select([(bins >= 120) & (bins < 280), (bins >= 100) & (bins < 120),
                           (bins >= 280) & (bins < 300)], [10.0, low_db, high_db], -np.inf)
        return (1 + 10 ** (level / 10)) * rng.gamma(32, 1 / 32, 512)

    box = (120, 280)
    assert clip_to_box([(100, 300)], box, psd(10.0, 10.0)) == [(100, 300)]
    assert clip_to_box([(100, 300)], box, psd(2.0, 2.0)) == [(120, 280)]
    assert clip_to_box([(100, 300)], box, psd(10.0, 2.0)) == [(100, 280)]
    assert clip_to_box([(100, 300)], box, psd(2.0, 10.0)) == [(120, 300)]
    assert clip_to_box([(60, 140)], box, psd(2.0, 2.0)) == [(60, 140)]


def test_the_main_jobs_first_ofdm_signal_gets_its_whole_band():
    """The main job's first scene (``graphs/spectrum_demo.yml``: seed 1, 20 Msps): an OFDM
    signal at 2456.22-2459.44 MHz, 7 dB per bin over the noise, whose edge cells the model
    leaves in most tiles (its track's box: 2456.45-2459.10 MHz). Its flat band past the box
    stands at its level inside, so it is not cut to the box (``clip_to_box``, CLIP_DB):
    its edges within 50 kHz of the truth's (it was 2456.35-2459.18 MHz)."""
    from cvstream.blocks.spectrum_synth import SpectrumSynthSource
    sky = SpectrumSynthSource(rate=20e6, freq=2.45e9, scenes=1, seed=1, snr_min=0, snr_max=30)
    x = np.concatenate(list(sky.read())).astype(np.complex64)
    truth = [m for m in sky.take_messages() if m["label"] == "ofdm"]
    assert len(truth) == 1
    block = SpectrumSegmenter(rate=20e6, freq=2.45e9)
    block.process(x)
    block.flush()
    got = [m for m in block.take_messages() if m["freq_upper_edge"] > 2456e6]
    block.stop()
    assert len(got) == 1 and got[0]["label"] == "ofdm"
    for edge in ("freq_lower_edge", "freq_upper_edge"):
        assert abs(got[0][edge] - truth[0][edge]) < 50e3


def test_a_wide_signal_that_comes_beside_narrow_ones_halfway_keeps_its_whole_band(
        monkeypatch):
    """Two continuous narrow signals and a QPSK 5 % of the band wide beside them from the
    middle of the stream on. The coarse view follows all three as one track, whose box
    (the median of its tiles' edges) reaches only part of the way over the QPSK; the QPSK's
    run, not three quarters inside it, is a neighbour and keeps its band (``clip_to_box``,
    CLIP_INSIDE): three detections within 10 % of their widths, the QPSK from the middle.
    A run half inside counted as the track's own, and the QPSK was cut at the box's edge
    two fifths short of its upper one (where the level past the box is not looked at,
    CLIP_DB)."""
    from cvstream.blocks import psd_runs
    n = 32 * 8192
    t = np.arange(n)
    rng = np.random.default_rng(7)
    signals = (("qpsk", -0.3827, 0.0026, 28, 0), ("16qam", -0.3780, 0.0023, 25, 0),
               ("qpsk", -0.3698, 0.05, 27, n // 2))
    x, truth = white(rng, n), []
    for kind, lo, width, snr_db, start in signals:
        wave, bw = generate(rng, kind, n, width)
        x = x + np.sqrt(10 ** (snr_db / 10) * bw) * wave * \
            np.exp(2j * np.pi * (lo + bw / 2) * t) * (t >= start)
        truth.append((lo, lo + bw, start))

    def edges():
        got = segmented(x)
        assert len(got) == 3
        for m, (lo, hi, start) in zip(got, truth):
            assert m["sample_start"] == start and m["sample_count"] == n - start
            assert m["freq_lower_edge"] == pytest.approx(lo, abs=0.1 * (hi - lo))
        return [(m["freq_upper_edge"], hi) for m, (_, hi, _) in zip(got, truth)]
    widths = [width for _, _, width, _, _ in signals]
    assert all(abs(got - hi) <= 0.1 * width for (got, hi), width in zip(edges(), widths))
    monkeypatch.setattr(psd_runs, "CLIP_INSIDE", 0.5)
    monkeypatch.setattr(psd_runs, "CLIP_DB", -1e9)
    got, hi = edges()[2]
    assert hi - got > 0.3 * widths[2]


def test_a_sweep_is_not_cut_at_its_periodograms_seams(monkeypatch):
    """A chirp of the project's scenes (seed [11, 110, 1]: 0.20-0.43 of the band over eight
    tiles, part of it beside a QAM signal): where the model follows its upper part alone
    (from about 0.35 up with the shipped weights), that part is one detection (of those
    reaching past 0.35, where no other signal is).
    Its summed finer PSD has narrow notches where the sweep crossed two periodograms'
    tapered seams; valleys are looked for on the PSD averaged over VALLEY_BINS bins, else
    each notch cuts it (into pieces, most of them too short in time to report)."""
    import cvstream.blocks.psd_runs as psd_runs
    rng = np.random.default_rng([11, 110, 1])
    cfg = SceneConfig(samples=262144, snr_db=(10, 20))
    x, labels = scene(rng, cfg, n_signals=int(rng.integers(1, cfg.max_signals + 1)))
    assert [s.label for s in labels] == ["qam", "tone", "chirp"]

    def upper(valley_bins):
        monkeypatch.setattr(psd_runs, "VALLEY_BINS", valley_bins)
        block = SpectrumSegmenter()
        block.process(x)
        block.flush()
        return [m for m in block.take_messages() if m["freq_upper_edge"] > 0.35]
    (one,) = upper(psd_runs.VALLEY_BINS)
    low = one["freq_lower_edge"]
    assert 0.3 < low < 0.36
    assert one["freq_upper_edge"] == pytest.approx(labels[2].f_high, abs=0.005)
    assert not any(abs(m["freq_lower_edge"] - low) < 0.005 for m in upper(1))  # in pieces


def test_refined_edges_ignore_leakage_and_keep_weak_signals():
    from cvstream.blocks.detections import refine_edges
    rng = np.random.default_rng(5)
    n = 16 * 4096
    noise = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2))
    tone = 30 * np.exp(2j * np.pi * 0.2 * np.arange(n))  # ~50 dB above the noise per bin
    track, frames = fine_track((noise + tone).astype(np.complex64), 0.19, 0.21)
    (part,) = refine_edges(track, frames, margin=1 / 256)
    assert part.f_low < 0.2 < part.f_high and part.f_high - part.f_low < 5 / 1024
    # nothing above the noise: the coarse edges stay
    track, frames = fine_track(noise.astype(np.complex64), 0.1, 0.12)
    (part,) = refine_edges(track, frames, margin=1 / 256)
    assert (part.f_low, part.f_high) == (0.1, 0.12)


def test_a_part_cut_in_time_sums_its_own_finer_views():
    """A track whose band changes (a narrow signal, then a wide one over it) is cut in time;
    each part sums the ZOOM times finer PSDs of its own blocks, so that neighbours only that
    view resolves are split in each part as in a whole track (the block-long PSD is the
    whole track's only)."""
    from cvstream.blocks.detections import time_segments
    from cvstream.blocks.tracks import Track
    tile, fine = 8192, 1024
    track = Track(0, 0, -0.5, 0.5, 20.0)
    for k in range(16):
        psd = np.ones(fine, np.float32)
        if k < 8:
            psd[600:610] = 100.0                 # narrow
        else:
            psd[560:660] = 100.0                 # a wide one over it
        zoom, line = np.full(2 * fine, k, np.float32), np.full(tile, 2 * k, np.float32)
        track.add_spectrum(psd, zoom, k * tile, line)
        track.edges.append((0.0, 0.1))
        track.seen.append(k * tile)
    track.stop = 16 * tile
    parts = time_segments(track, frames=8, margin=1 / 256)
    assert [(p.start, p.stop) for p in parts] == [(0, 8 * tile), (8 * tile, 16 * tile)]
    for part, blocks in zip(parts, (range(8), range(8, 16))):
        assert part.spectra == 8
        assert np.allclose(part.zoom, sum(blocks)) and part.line is None
