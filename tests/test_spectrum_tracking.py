"""Tracks and the tracker, detections that do not depend on how the stream is cut into
calls, and the detections' numerics (numpy's values to the bit, at a fraction of the
cost)."""

import numpy as np
import pytest

from cvstream.blocks.segmenter import SpectrumSegmenter
from cvstream.models.spectrum.synth import SceneConfig, scene


def test_tracks_keep_a_swept_band_and_ignore_one_wide_block():
    """A chirp seen as a narrow run moving across the band (restarting at the bottom after
    each sweep) is one detection covering the swept band; a steady signal that one block
    saw merged with a neighbour keeps its own edges."""
    from cvstream.blocks.tracker import Tracker
    tracker = Tracker(hold=1)
    ended = []
    for block in range(24):
        lo = 0.10 + 0.02 * (block % 8)  # 8 blocks per sweep over 0.10..0.265, 3 sweeps
        ended += tracker.update(block * 10, block * 10 + 10, [(lo, lo + 0.025, 20.0, "s")])
    ended += tracker.flush()
    assert len(ended) == 1
    assert (ended[0].start, ended[0].stop) == (0, 240)
    assert (ended[0].f_low, ended[0].f_high) == pytest.approx((0.10, 0.265))
    assert ended[0].moves() and ended[0].sweeps()
    tracker = Tracker()
    for block in range(10):
        hi = 0.25 if block == 4 else 0.12
        tracker.update(block * 10, block * 10 + 10, [(0.10, hi, 20.0, "s")])
    (steady,) = tracker.flush()
    assert (steady.f_low, steady.f_high) == pytest.approx((0.10, 0.12))
    assert not steady.sweeps()


def test_short_weak_tracks_are_dropped_and_counted_short_strong_ones_kept():
    """With min_blocks 2, weak_blocks 4 and weak_db 15: a 3-block track peaking at 12 dB
    (a weak signal's flicker) is dropped and counted, one peaking at 20 dB (a short burst)
    and a 5-block one at 12 dB are reported, a 1-block one is dropped whatever its SNR."""
    from cvstream.blocks.tracker import Tracker
    tracker = Tracker(min_blocks=2, weak_blocks=4, weak_db=15.0)
    tracks = {(0.10, 0.11): (3, 12.0), (0.20, 0.21): (3, 20.0), (0.30, 0.31): (5, 12.0),
              (0.40, 0.41): (1, 30.0)}
    ended = []
    for block in range(6):
        ended += tracker.update(block * 10, block * 10 + 10, [
            (lo, hi, snr, "s") for (lo, hi), (n, snr) in tracks.items() if block < n])
    ended += tracker.flush()
    assert sorted((t.f_low, len(t.edges)) for t in ended) == [(0.20, 3), (0.30, 5)]
    assert tracker.dropped_short == 2


def test_a_signal_that_never_ends_is_reported_in_pieces():
    """A carrier present in every block: the tracker holds at most max_blocks blocks of it,
    reports each piece as it fills, and the pieces tile the stream without gaps (memory
    stays bounded however long the stream runs)."""
    from cvstream.blocks.tracker import Tracker
    tracker = Tracker(max_blocks=100)
    pieces = []
    for block in range(1050):
        pieces += tracker.update(block * 10, block * 10 + 10, [(0.10, 0.12, 20.0, "cw")])
        assert all(len(t.edges) <= 100 for t in tracker.open)
    pieces += tracker.flush()
    assert [(t.start, t.stop) for t in pieces] == [(k * 1000, min(k * 1000 + 1000, 10500))
                                                   for k in range(11)]
    assert all((t.f_low, t.f_high) == pytest.approx((0.10, 0.12)) for t in pieces)


def test_tracks_with_equal_fields_are_distinct_signals():
    """Two signals can share every field of a track (start, stop, band, PSD): each is its
    own track, and finding one among open tracks does not compare their PSD arrays."""
    from cvstream.blocks.tracks import Track
    psd = np.ones(8)
    a, b = (Track(0, 4, 0.1, 0.2, 10.0, spectrum=psd.copy(), spectra=1) for _ in range(2))
    assert a != b and a == a
    assert a in [b, a] and [b, a].index(a) == 1


def _detections_in_calls(x, sizes, replica=False, grouped=True, track_psds=None):
    """The segmenter's messages and counters for ``x`` handed over in calls of ``sizes``
    tiles (cycled); with ``replica``, each call's ``compute`` on a second copy of the
    block and its ``absorb`` on the first, as ``replicas: N`` runs it; ``track_psds``
    True or False: the tracks' PSDs always on its worker thread, or never (by default
    where the worker waits on the block)."""
    seg, copy = SpectrumSegmenter(), SpectrumSegmenter()
    for block in (seg, copy):
        block.check()
        block.start()
    seg._grouped = grouped
    if track_psds is not None:
        seg._infer = lambda chunk, _: SpectrumSegmenter._infer(seg, chunk, track_psds)
    messages = []
    seg.emit = messages.append
    start, k = 0, 0
    while start < len(x):
        chunk = x[start:start + sizes[k % len(sizes)] * seg.decim]
        if replica:
            seg.absorb(copy.compute(chunk), chunk)
        else:
            seg.work(chunk)
        start, k = start + len(chunk), k + 1
    seg.finish()
    seg.stop()
    copy.stop()
    return messages, dict(seg.counters)


def test_detections_do_not_depend_on_how_the_stream_is_cut_into_calls():
    """A file hands the block 32 tiles a call, ZeroMQ whatever arrived, replicas the
    calls they were dealt. The tones' search reads a call's tiles together (the cells it
    follows are the narrow tracks open when it starts; a weak-tone look reports the
    STRIDE tiles up to it), so it works on groups of TONE_GROUP tiles from the stream's
    start and a call's tiles past its last whole group wait for the next call: the same
    recording gives the same detections and counters however it is cut (without the
    groups, calls of other sizes move tones' edges and change the short tracks
    counted)."""
    x = np.concatenate([scene(np.random.default_rng([11, k]), SceneConfig())[0]
                        for k in range(48)]).astype(np.complex64)
    reference, counters = _detections_in_calls(x, [32])
    assert counters.get("narrow_detections", 0) >= 3   # tones are in it
    for sizes, replica in (([3, 5, 7, 11, 13], False), ([1], False), ([9, 30, 2], True)):
        messages, seen = _detections_in_calls(x, sizes, replica)
        assert messages == reference and seen == counters, (sizes, replica)
    # nor on which thread the tracks' PSDs are taken (it follows which waits on the other)
    for where in (True, False):
        assert _detections_in_calls(x, [32], track_psds=where) == (reference, counters)
    messages, seen = _detections_in_calls(x, [3, 5, 7, 11, 13], grouped=False)
    assert messages != reference or seen != counters


def test_the_detections_short_quantiles_and_row_dilation_match_numpy_and_scipy():
    """``psd_stats.quantile_of`` (the tracks' percentiles) is ``np.quantile`` and
    ``dilate_rows`` (the guards around the model's cells) is ``binary_dilation`` along
    rows, on odd and even lengths, one value, the ends, and rows empty or full."""
    from scipy.ndimage import binary_dilation

    from cvstream.blocks.psd_stats import quantile_of
    from cvstream.blocks.tracks import dilate_rows
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 8, 41):
        v = rng.normal(size=n)
        for q in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
            assert quantile_of(v, q) == np.quantile(v, q)
    masks = rng.random((6, 64)) > 0.85
    masks[0], masks[1] = False, True
    masks[2, [0, 63]] = True
    for reach in (0, 1, 4, 70):
        want = binary_dilation(masks, structure=np.ones((1, 2 * reach + 1), bool))
        assert np.array_equal(dilate_rows(masks, reach), want)


def test_row_runs_and_float32_thresholds_give_what_plain_loops_and_float64_give():
    """``row_runs`` (the model's cells' runs, every tile at once) finds each row's runs as
    a walk along the row does, joined across gaps of up to ``gap`` and kept from
    ``min_len`` (runs at both ends, rows empty or full, one column); a float32 row passes
    ``float32_threshold(levels)`` exactly where it passes the float64 levels (values on
    and beside each, levels that float32 holds exactly and that it rounds up or down)."""
    from cvstream.blocks.psd_stats import float32_threshold
    from cvstream.blocks.tracks import row_runs

    def walk(row, gap, min_len):
        runs = []
        for k, on in enumerate(row):
            if on and runs and k - runs[-1][1] <= gap:
                runs[-1][1] = k + 1
            elif on and (not runs or k >= runs[-1][1]):
                runs.append([k, k + 1])
        return [(a, b) for a, b in runs if b - a >= min_len]

    rng = np.random.default_rng(5)
    for shape, p in (((7, 50), 0.3), ((3, 1), 0.5), ((4, 9), 0.9)):
        masks = rng.random(shape) < p
        masks[0] = False
        masks[-1] = True
        for gap, min_len in ((0, 1), (2, 1), (1, 3)):
            row, start, stop = row_runs(masks, gap, min_len)
            want = [(r, a, b) for r in range(shape[0]) for a, b in walk(masks[r], gap, min_len)]
            assert list(zip(row.tolist(), start.tolist(), stop.tolist())) == want
    levels = np.concatenate([rng.exponential(size=200) * 5, [1.0, 0.1, float(np.float32(2.7))]])
    nearest = levels.astype(np.float32)
    assert (nearest > levels).any() and (nearest < levels).any()   # rounded up and down
    values = np.stack([np.nextafter(nearest, np.float32(-np.inf)), nearest,
                       np.nextafter(nearest, np.float32(np.inf))], axis=1)
    got = values > float32_threshold(levels)[:, None]
    assert float32_threshold(levels).dtype == np.float32
    assert np.array_equal(got, values > levels[:, None]) and got.any() and not got.all()


def test_the_detections_medians_quantiles_and_noise_levels_are_numpys_to_the_bit():
    """The fast paths the detections take are numpy's and scipy's results exactly (their
    detections must not move): ``median_of`` is ``np.median`` (value and type, odd and
    even lengths, float32 and float64), ``quantile_of`` is ``np.quantile`` down a 2-d
    array's columns and along a 1-d one, ``noise_level_table`` is ``noise_levels``, and
    the tones' one sub-bin (``CellTones``' DFT bin) is the zoom's FFT bin to float32's
    precision."""
    import scipy.fft

    from cvstream.blocks.psd_stats import median_of, noise_level_table, noise_levels, quantile_of
    from cvstream.blocks.narrowband import CellTones
    rng = np.random.default_rng(4)
    for n in (1, 2, 3, 8, 41, 64):
        for dtype in (np.float32, np.float64):
            v = (rng.exponential(size=n) * 30).astype(dtype)
            want, got = np.median(v), median_of(v)
            assert got == want and type(got) is type(want)
            want, got = np.quantile(v, 0.9), quantile_of(v, 0.9)
            assert got == want and type(got) is type(want)
        rows = rng.normal(size=(n, 7)) * 5
        for q in (0.1, 0.5, 0.9):
            assert np.array_equal(quantile_of(rows, q), np.percentile(rows, 100 * q, axis=0))
    table = noise_level_table(1e-3, 8, 64)
    assert np.array_equal(table, noise_levels(1e-3, 8 * np.arange(1, 65)))
    tones = CellTones(256, 32)
    stft = (rng.normal(size=(3, 32, 256)) + 1j * rng.normal(size=(3, 32, 256))).astype(
        np.complex64)
    tile, cell, sub = np.array([0, 1, 2, 2]), np.array([0, 17, 128, 255]), np.array(
        [0, 5, 16, 31])
    zoom = np.fft.fftshift(np.abs(scipy.fft.fft(stft[tile, :, cell] * tones.zoom_window,
                                                axis=1)) ** 2, axes=1)
    one = np.einsum("cf,cf->c", stft[tile, :, cell], tones.sub_bin_weights[sub])
    np.testing.assert_allclose(one.real ** 2 + one.imag ** 2, zoom[np.arange(4), sub],
                               rtol=1e-5)


def test_band_bins_gives_a_band_under_one_bin_the_bin_that_holds_it():
    """A tone's band (one bin of a tile-long PSD) read on a coarser PSD falls on the bin
    nearest its centre, not the bin above it; a wider band keeps the bins whose centres lie
    in it, and the band's ends stay inside the PSD."""
    from cvstream.blocks.tracks import band_bins, bin_edges
    fine = 1024
    for k in (-512, -3, 0, 7, 511):   # a band 1/5 of a bin wide, below and above a centre
        for offset in (-0.4, -0.1, 0.1, 0.4):
            lo = (k + offset - 0.1) / fine
            assert band_bins(lo, lo + 0.2 / fine, fine) == (k + fine // 2, k + fine // 2 + 1)
    assert band_bins(0.1, 0.2, fine) == (615, 717)   # bins 103..204 from DC
    assert band_bins(-0.5, 0.5, fine) == (0, fine)
    for a, b in ((0, 1), (3, 9), (1000, 1024)):   # bin_edges and back
        assert band_bins(*(float(e) for e in bin_edges(a, b, fine)), fine) == (a, b)
