"""CW tones and narrow signals the model's cells miss: the energy test, the tones'
searches (``CellTones``, ``LongTones``), the fine view (``narrow: true``) and what becomes
of a narrow track or a detection another one repeats."""

import numpy as np
import pytest

from cvstream.blocks.segmenter import SpectrumSegmenter
from cvstream.models.spectrum.synth import SceneConfig, scene
from cvstream.models.spectrum.waveforms import generate
from spectrum_helpers import band_noise, segmented, tones_in_noise, white


def test_a_weak_signal_half_a_cell_wide_is_found_by_its_lone_energy_cells(monkeypatch):
    """A QPSK signal 0.2 % of the band wide (half a model cell) at 5 dB in-band SNR over
    32 tiles of the synthesizer's noise: the model leaves it and its energy fills one cell
    a tile, a lone cell that holds from tile to tile (not a line: its bins of the
    tile-long PSD peak under LINE_PEAK times their median). One detection, its band within
    0.8-1.5 times the signal's and centred on it, over 24 of the 32 tiles or more; with
    lone cells refused (as before), nothing (two draws)."""
    from cvstream.blocks.energy_cells import EnergyCells
    from cvstream.models.spectrum.synth import SceneConfig, scene
    not_lines = EnergyCells.not_lines
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        x, _ = scene(rng, SceneConfig(samples=32 * 8192), n_signals=0)
        n = np.arange(len(x))
        wave, bw = generate(rng, "qpsk", len(x), 0.002)
        y = (x + np.sqrt(10 ** 0.5 * bw) * wave * np.exp(2j * np.pi * 0.2 * n)).astype(
            np.complex64)
        found = {}
        for lone in (True, False):
            monkeypatch.setattr(EnergyCells, "not_lines", not_lines if lone else
                                lambda self, cells, whole: np.zeros_like(cells))
            block = SpectrumSegmenter()
            block.process(y)
            block.flush()
            found[lone] = block.take_messages()
        (m,) = found[True]
        assert m["center_freq"] == pytest.approx(0.2, abs=0.1 * bw)
        assert 0.8 < m["bandwidth"] / bw < 1.5 and m["sample_count"] >= 24 * 8192
        assert found[False] == []


def test_the_energy_test_finds_weak_signals_the_model_leaves():
    """QPSK and 16QAM 0.5 % of the band wide at 4 dB in-band SNR (a few dB over the noise
    in a cell): the model finds neither; with ``energy_sigma`` (6, the default) each is one
    detection over its band for at least 20 of the 24 tiles. White noise alone gives no
    energy cells and no detection."""
    rng = np.random.default_rng(2)
    x, _ = scene(rng, SceneConfig(samples=24 * 8192), n_signals=0)
    noise = x.astype(np.complex64)
    n = np.arange(len(x))
    for kind, centre in (("qpsk", -0.2), ("16qam", 0.3)):
        wave, bw = generate(rng, kind, len(x), 0.005)
        x = x + np.sqrt(10 ** 0.4 * bw) * wave * np.exp(2j * np.pi * centre * n)

    def run(samples, **params):
        block = SpectrumSegmenter(**params)
        block.process(samples.astype(np.complex64))
        block.flush()
        return block.take_messages(), block.counters.get("energy_cells", 0)
    assert run(x, energy_sigma=0) == ([], 0)
    found, cells = run(x)
    assert cells > 0
    assert sorted(round(m["center_freq"], 2) for m in found) == [-0.2, 0.3]
    for m in found:
        assert m["bandwidth"] == pytest.approx(bw, rel=0.3)
        assert m["sample_count"] >= 20 * 8192
    assert run(noise) == ([], 0)


def test_the_energy_test_skips_a_strong_signals_iq_image(monkeypatch):
    """A QPSK signal 35 dB over the noise in its band at 0.1 and its IQ image 33 dB under
    it at -0.1 (a receiver's image rejection): the image stands over the noise by energy
    but is no signal; with the image rule off it is found over the whole stream."""
    import cvstream.blocks.energy_cells as energy_cells
    rng = np.random.default_rng(5)
    x, _ = scene(rng, SceneConfig(samples=24 * 8192), n_signals=0)
    n = np.arange(len(x))
    wave, bw = generate(rng, "qpsk", len(x), 0.01)
    s = np.sqrt(10 ** 3.5 * bw) * wave * np.exp(2j * np.pi * 0.1 * n)
    x = (x + s + 10 ** (-33 / 20) * np.conj(s)).astype(np.complex64)

    def centres():
        block = SpectrumSegmenter()
        block.process(x)
        block.flush()
        return [round(m["center_freq"], 2) for m in block.take_messages()]
    assert centres() == [0.1]
    monkeypatch.setattr(energy_cells, "IMAGE_REJECTION_DB", 100.0)
    assert sorted(centres()) == [-0.1, 0.1]


def test_a_cw_tone_four_cells_above_a_signal_is_found():
    """A CW tone 13 dB over the noise in its bin of a tile-long FFT, in the model's cell
    150 (of 256), and a 15 dB QPSK signal whose band ends in cell 145 (GNU Radio's seed
    5678 #13: a tone 4 cells from an FM's): the tones' search looks at cells 3 or more
    from the model's own (``guard``; at 4 the cells its skirt adds in some tiles hide the
    tone in each of these draws), so the tone is a detection, one bin wide."""
    from cvstream.models.spectrum.synth import generate
    n, tile = 262144, 8192
    t = np.arange(n)
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        wave, bw = generate(rng, "qpsk", n, 0.02)
        x = white(rng, n) + 10 ** 0.75 * np.sqrt(bw) * wave * np.exp(2j * np.pi * 0.06 * t)
        x = x + np.sqrt(10 ** 1.3 / tile) * np.exp(2j * np.pi * (0.0865 * t + rng.random()))
        got = [m for m in segmented(x) if m["freq_lower_edge"] > 0.08]
        assert len(got) == 1 and got[0]["label"] == "tone", got
        assert got[0]["freq_lower_edge"] <= 0.0865 <= got[0]["freq_upper_edge"]
        assert got[0]["bandwidth"] * tile <= 1.5


def test_two_lines_mirrored_about_a_wider_signal_are_its_own(monkeypatch):
    """An FM signal (a sine message, 8 dB in-band) and two lines 12 dB over the noise in
    their bin of a tile-long FFT, 4 % of the band either side of its carrier over the whole
    stream (GNU Radio's FM: such a pair past its 99 % band in seed 777 #30, at its edges
    in 5678 #6):
    the tones' search finds both, mirrored about the FM detection's centre (to a few % of
    its width: its edges are a noisy power band's), so they are that signal's own lines,
    counted as ``mirror_lines``, not sent. Lines 100 bins of that FFT (0.6 % of the band)
    off the mirror are two tones, as is the mirrored pair without the rule."""
    import cvstream.blocks.narrow_tracks as narrow_tracks
    n, tile = 262144, 8192
    t = np.arange(n)

    def detections(seed: int, skew_bins: int = 0) -> tuple[list, dict]:
        rng = np.random.default_rng(seed)
        fc, fm, dev = 0.1 + 0.02 * seed, 0.004, 0.02
        phase = dev / fm * np.sin(2 * np.pi * fm * t + 6 * rng.random())
        x = white(rng, n) + np.sqrt(10 ** 0.8 * 2 * (dev + fm)) * \
            np.exp(1j * (2 * np.pi * fc * t + phase))
        for f in (fc - 0.04, fc + 0.04 + skew_bins / tile):
            x = x + np.sqrt(10 ** 1.2 / tile) * np.exp(2j * np.pi * (f * t + rng.random()))
        block = SpectrumSegmenter()
        block.process(x.astype(np.complex64))
        block.flush()
        got = [(m["label"], m["freq_lower_edge"] - fc, m["bandwidth"])
               for m in block.take_messages() if abs(m["center_freq"] - fc) < 0.06]
        block.stop()
        return got, block.counters

    for seed in (0, 1, 2):
        got, counters = detections(seed)
        assert [label for label, _, _ in got] == ["analog"], got
        assert counters["mirror_lines"] == 2 and "narrow_detections" not in counters
    got, counters = detections(0, skew_bins=100)
    tones = sorted(low for label, low, width in got if width * tile < 1.5)
    assert tones == pytest.approx([-0.04, 0.04 + 100 / tile], abs=1 / tile)
    assert counters["narrow_detections"] == 2 and "mirror_lines" not in counters
    monkeypatch.setattr(narrow_tracks, "MIRROR_BINS", -1.0)
    monkeypatch.setattr(narrow_tracks, "MIRROR_SHARE", -1.0)
    got, counters = detections(1)
    assert sorted(label for label, _, _ in got) == ["analog", "tone", "tone"]


def test_a_strong_cw_burst_of_five_tiles_is_sent_once():
    """A CW burst 30 dB over the noise in its bin, five tiles long: the model finds its cell
    in some tiles and the tones' search the rest, so the model's detection and a narrow
    track each hold it for a while. The model's detection defers to a narrow track only
    once that track has been seen in enough tiles to be sent (GNU Radio's seed 1234 #2
    lost a 27 dB burst to both: deferred to a track seen in three tiles, which then ended
    too short): one detection, a bin wide, over the burst's tiles."""
    n, tile = 262144, 8192
    t = np.arange(n)
    for seed in (0, 3, 4):
        rng = np.random.default_rng(seed)
        x = white(rng, n)
        centre = 0.1667 + 0.01 * seed
        on = (t >= 147000) & (t < 147000 + 5 * tile)
        x = x + on * np.sqrt(10 ** 3 / tile) * np.exp(2j * np.pi * (centre * t + rng.random()))
        got = [m for m in segmented(x) if abs(m["freq_lower_edge"] - centre) < 0.001]
        assert len(got) == 1 and got[0]["label"] == "tone"
        assert got[0]["freq_upper_edge"] - got[0]["freq_lower_edge"] <= 2 / tile
        assert got[0]["freq_lower_edge"] <= centre <= got[0]["freq_upper_edge"]
        assert abs(got[0]["sample_start"] - 147000) <= 1.5 * tile
        assert abs(got[0]["sample_count"] - 5 * tile) <= 2 * tile


def test_a_cw_tone_keeps_one_detection_while_a_signal_comes_and_goes_beside_it(monkeypatch):
    """A CW tone 13 dB over the noise in its bin of a tile-long FFT, and a noise-like signal
    at 16 dB in-band whose band starts 0.35 % of the band above it, for the middle third
    of the stream (GNU Radio's seed 8765 #16: an AM beside a tone). The model's cells
    then reach the tone's, whose zoom the neighbour fills at the cell's edge and in the
    cell beside: the tones' search looks for a tone it has held for NARROW_MIN_TILES
    tiles where it was, and lets it rise over the quieter side only. One tone detection
    over the whole stream, a bin wide, and the neighbour's own box; without following
    held tones there, the tone comes in pieces (the piece beside the neighbour, which
    holds its band in a few blocks only, may be dropped)."""
    from cvstream.blocks.narrow_tracks import NarrowTracks
    n, tile = 32 * 8192, 8192
    t = np.arange(n)

    def tones(seed: int) -> tuple[list, list]:
        rng = np.random.default_rng(seed)
        centre = -0.4418 + 0.013 * seed
        x = white(rng, n) + np.sqrt(10 ** 1.3 / tile) * \
            np.exp(2j * np.pi * (centre * t + rng.random()))
        on = (t >= n // 3) & (t < 2 * n // 3)
        x = x + on * band_noise(rng, n, centre + 0.0035, centre + 0.0088, 0.0003, 16)
        got = segmented(x)
        near = [m for m in got if abs(m["freq_lower_edge"] - centre) < 0.001]
        return near, [m for m in got if m not in near]
    for seed in range(3):
        near, rest = tones(seed)
        assert len(near) == 1 and near[0]["label"] == "tone"
        assert near[0]["sample_start"] == 0 and near[0]["sample_count"] == n
        assert near[0]["freq_upper_edge"] - near[0]["freq_lower_edge"] <= 2 / tile
        (wide,) = rest
        assert abs(wide["sample_start"] - n // 3) <= 2 * tile
        assert abs(wide["sample_start"] + wide["sample_count"] - 2 * n // 3) <= 2 * tile
    followed = NarrowTracks.followed
    monkeypatch.setattr(NarrowTracks, "followed", lambda self: (
        followed(self)[0], np.zeros_like(followed(self)[1])))   # none held
    near, _ = tones(0)
    assert near and all(m["sample_count"] < 0.8 * n for m in near)   # pieces at most


def test_a_cw_tone_that_steps_up_keeps_one_detection_over_its_whole_time(monkeypatch):
    """A CW tone 13 dB over the noise in its bin of a tile-long FFT for the first third of
    the stream, 25 dB after (a fade that ends, an AGC step; GNU Radio's seed 5678 #13: a
    steady tone that the model's cells take up a third of the way in). The tones' search
    follows it from the start; the model's cells report it as a line once it is strong.
    The stream's end closes both, the narrow track first, which then waited on the
    model's track and was dropped as held by that track's line: the tone came out as the
    line's stretch only. Now a line that a waiting narrow track followed over as long a
    time is the narrow track's (``NarrowTracks.follows_line``), with the line's edges:
    one tone detection over the whole stream, a bin wide, at the tone."""
    from cvstream.blocks.narrow_tracks import NarrowTracks
    n, tile = 32 * 8192, 8192
    t = np.arange(n)

    def tone(seed: int) -> list:
        rng = np.random.default_rng(seed)
        centre = 0.1 + 0.013 * seed + 0.3 / tile
        power = np.where(t < n // 3, 10 ** 1.3, 10 ** 2.5) / tile
        x = white(rng, n) + np.sqrt(power) * np.exp(2j * np.pi * (centre * t + rng.random()))
        return segmented(x)
    for seed in range(3):
        (got,) = tone(seed)
        assert got["label"] == "tone"
        assert got["sample_start"] == 0 and got["sample_count"] == n
        assert got["freq_upper_edge"] - got["freq_lower_edge"] <= 2 / tile
        assert abs(got["center_freq"] - (0.1 + 0.013 * seed + 0.3 / tile)) < 0.5 / tile
    monkeypatch.setattr(NarrowTracks, "follows_line", lambda self, part: any(
        self._follows(t, part) for t in self.tracker.open))   # open ones only
    assert all(m["sample_start"] >= n // 4 for m in tone(0))   # from where the line began


def test_a_signal_that_a_wide_burst_covers_for_a_while_keeps_one_detection(monkeypatch):
    """A signal 0.4 % of the band wide at 14 dB, there throughout, and a wide burst at 18 dB
    over 6 % of the band around it for the middle third (GNU Radio's seed 8080 #4: an FM
    beside a GFSK burst). One track follows both; its part that holds the burst's band is
    held in the burst's blocks only, so the narrow signal's blocks before and after it were
    dropped. Those blocks, where the band still stands over the noise, are now refined on
    their own (``signals_beneath``), and the signal's pieces either side of the burst are
    one detection (``bridge_pieces``): one box over the whole stream at the signal's band,
    beside the burst's own and a continuous neighbour's; without, the signal is lost."""
    from cvstream.blocks import tracks
    n, tile = 32 * 8192, 8192
    t = np.arange(n)

    def scene(seed: int) -> list:
        rng = np.random.default_rng(seed)
        lo = -0.3 + 0.15 * seed
        burst = (t >= n // 3) & (t < 2 * n // 3)
        x = white(rng, n) + band_noise(rng, n, lo + 0.02, lo + 0.024, 0.0003, 14) + \
            burst * band_noise(rng, n, lo, lo + 0.06, 0.0003, 18) + \
            band_noise(rng, n, lo - 0.02, lo - 0.005, 0.0003, 12)
        return [(m["sample_start"], m["sample_start"] + m["sample_count"],
                 m["freq_lower_edge"] - lo, m["freq_upper_edge"] - lo) for m in segmented(x)]
    for seed in range(3):
        got = scene(seed)
        assert len(got) == 3
        (start, stop, low, high), = [g for g in got if g[3] - g[2] < 0.01]
        assert (start, stop) == (0, n)
        assert abs(low - 0.02) < 0.0015 and abs(high - 0.024) < 0.0015   # 1.5 fine bins
        (start, stop, low, high), = [g for g in got if g[3] - g[2] > 0.05]
        assert abs(start - n // 3) <= tile and abs(stop - 2 * n // 3) <= 2 * tile
    monkeypatch.setattr(tracks, "UNHELD_MIN_BLOCKS", n)   # never looked at
    assert all(stop - start < n // 2 for start, stop, low, high in scene(1)
               if abs(low - 0.02) < 0.002)


def test_three_cw_tones_at_one_spacing_one_a_burst_are_not_one_comb():
    """Three lines of the block-long PSD 24 bins apart (0.3 % of the band; GNU Radio's seed
    8765 #4: three CW tones 0.22 % apart, the middle one strongest), which ``line_runs``
    joins as one comb: an AM carrier's two sidebands. But a comb's mirrored lines carry
    one message and come and go together; where the upper line is a burst (blocks 2-11 of
    24) and the lower one holds on past it, they are three tones (``lines_of_one_comb``:
    each line's own run again). All three always there, the upper one in scattered blocks
    (a weak line's flicker) or a burst of two blocks: one comb."""
    from cvstream.blocks.lines import lines_of_one_comb
    from cvstream.blocks.tracks import Track, bin_edges
    centres = (3632, 3656, 3680)
    runs = [((c, c + 1), (c - 4, c + 5)) for c in centres]
    joined = (runs[0][1][0], runs[-1][1][1])

    def track(upper_blocks):
        rng = np.random.default_rng(2)
        rows = []
        for k in range(24):
            row = rng.gamma(64, 1 / 64, 1024)
            row[[c // 8 for c in centres[:2]]] += 50.0
            if k in upper_blocks:
                row[centres[2] // 8] += 50.0
            rows.append((k * 8192, row))
        out = Track(0, 24 * 8192, *(float(e) for e in bin_edges(*joined, 8192)), 20.0)
        out.rows, out.spectra = rows, 24
        return out
    wholes = [whole for _, whole in runs]
    assert lines_of_one_comb(track(range(2, 12)), runs, joined, 8192, 32) == wholes
    for upper in (range(24), (1, 5, 9, 14, 18, 22), (6, 7)):
        assert lines_of_one_comb(track(upper), runs, joined, 8192, 32) == [joined]
    assert lines_of_one_comb(track(range(2, 12)), runs[:2], joined, 8192, 32) == [joined]


def test_narrow_view_finds_tones_the_model_cells_miss_with_their_true_width():
    """Four CW tones at 10, 15, 20 and 30 dB in-band SNR (noise counted over 1/4000 of the
    band, as the GNU Radio evaluation set does) and an AM signal (a carrier over 2 % of the
    band of noise-modulated sidebands) over white noise: the model's cells (1/256 of the
    band, with the energy test on them, not zoomed for tones) see at most three tones and
    the AM; with the fine
    view all four tones are found, one bin (1/8192) wide, over the samples they last (those
    the model found from its own detections, the fine view's copies inside them not sent:
    ``narrow_inside``). The AM's carrier is inside the AM's band: no tone of its own."""
    rng = np.random.default_rng(1)
    n = 262144
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(
        np.complex64)
    tones = (0.1, -0.2, 0.3003, -0.35)
    spans = ((50_000, 200_000),) * 3 + ((0, n),)  # the strongest on throughout
    for f, snr, (start, stop) in zip(tones, (10, 15, 20, 30), spans):
        t = np.arange(start, stop)
        x[t] += (np.sqrt(10 ** (snr / 10) / 4000) * np.exp(2j * np.pi * f * t)).astype(
            np.complex64)
    message = np.convolve(rng.standard_normal(n), np.ones(100) / 10, "same")
    am = (1 + 0.5 * message / message.std()) * np.exp(2j * np.pi * 0.2 * np.arange(n))
    x += (np.sqrt(10 ** 2.0 * 0.02) * am / np.sqrt(np.mean(np.abs(am) ** 2))).astype(
        np.complex64)
    found = {}
    for narrow in (False, True):
        block = SpectrumSegmenter(narrow=narrow, tones=False)
        block.process(x)
        block.flush()
        found[narrow] = block.take_messages()
    assert len([m for m in found[False] if abs(m["center_freq"] - 0.2) > 0.02]) <= 3
    # the AM's carrier; a tone found twice (the model's line and the fine view's track: the
    # longer is sent, the other counted as inside the line or as a repeat of it)
    assert block.counters["narrow_inside"] >= 1
    assert block.counters["narrow_inside"] + block.counters["repeated_detections"] >= 2
    assert [m for m in found[True] if abs(m["center_freq"] - 0.2) < 0.02] == \
        [m for m in found[False] if abs(m["center_freq"] - 0.2) < 0.02]   # the AM alone
    got = sorted((m for m in found[True] if abs(m["center_freq"] - 0.2) > 0.02),
                 key=lambda m: m["center_freq"])
    assert len(got) == 4
    for m, (f, (start, stop)) in zip(got, sorted(zip(tones, spans))):
        assert abs(m["center_freq"] - f) < 1 / 8192
        assert m["bandwidth"] <= 1.5 / 8192
        first, last = m["sample_start"], m["sample_start"] + m["sample_count"]
        assert (min(stop, last) - max(start, first)) / (max(stop, last) - min(start, first)) \
            > 0.85


def test_narrow_view_skips_iq_images_and_blips():
    """A 45 dB tone's IQ image (30 dB under it, at 15 dB: a tone the fine view would
    report on its own) is not a signal, nor is a tone that lasts only 3 tiles (counted in
    ``short_tracks``); a tone as weak as the image without a strong mirror, and lasting,
    is found."""
    from cvstream.blocks.segmenter import NARROW_MIN_TILES
    rng = np.random.default_rng(3)
    n, tile = 262144, 8192
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(
        np.complex64)
    t = np.arange(n)

    def tone(f, snr, start=0, stop=n):
        return np.sqrt(10 ** (snr / 10) / 4000) * np.exp(2j * np.pi * f * t) * \
            ((t >= start) & (t < stop))
    x += (tone(0.15, 45) + tone(-0.15, 15) + tone(-0.3, 15) +
          tone(0.3, 15, 10 * tile, 13 * tile)).astype(np.complex64)
    assert NARROW_MIN_TILES > 3
    block = SpectrumSegmenter(narrow=True)
    block.process(x)
    block.flush()
    got = {}
    for m in block.take_messages():
        f = round(m["center_freq"] * 8192)
        got[f] = max(got.get(f, 0), m["sample_count"])
    assert set(got) == {round(-0.3 * 8192), round(0.15 * 8192)}   # no image, no blip
    assert got[round(-0.3 * 8192)] == got[round(0.15 * 8192)] == n   # the weak one whole
    # both whole from the fine view: the model's line of the strong one, which the fine
    # view followed as long, is a repeat of it
    assert block.counters["narrow_detections"] == 2
    assert block.counters["repeated_detections"] >= 1
    assert block.counters["short_tracks"] >= 1


def test_a_narrow_signal_within_an_open_track_waits_for_its_detections():
    """A narrow track that ends inside the band of a model track still open is settled
    when that track ends, on the detections it gives: sent (labelled by its votes) when
    none holds its centre (the track's band shrank away from it), INSIDE (counted in
    ``narrow_inside``) when one does."""
    from cvstream.blocks.narrow_tracks import INSIDE, SENT, NarrowTracks
    from cvstream.blocks.tracks import Track
    tile = 8192
    for part_band, verdict in (((0.10, 0.12), SENT), ((0.10, 0.13), INSIDE)):
        narrow = NarrowTracks(tile, hold=6, min_blocks=5, held_blocks=5)
        wide = Track(0, 20 * tile, 0.10, 0.14, 20.0, label="psk")
        model_open = [wide]
        tone = Track(2 * tile, 12 * tile, 0.125, 0.125 + 1 / tile, 15.0, votes={"tone": 1.0})
        assert narrow.ended([tone], model_open) == [] and len(narrow.waiting) == 1
        model_open.remove(wide)
        part = Track(0, 20 * tile, *part_band, 20.0, label="psk")
        assert narrow.release([(wide, [part])], model_open) == [(verdict, tone)]
        assert narrow.waiting == []
        assert tone.label == ("tone" if verdict == SENT else "signal")   # as it came


def test_a_detection_another_track_repeats_is_sent_once():
    """Two tracks followed one signal for a while and both settled to its band: the
    shorter one's detection waits for the track still open, and is counted in
    ``repeated_detections``, not sent, when that track's detections repeat it (half its
    time or more, frequency IoU >= 0.5); a narrow signal inside that band over the same
    time, which no detection repeats, is sent when the track ends. Of two ending together,
    the longer one is sent."""
    from collections import Counter

    from cvstream.blocks.repeats import Repeats
    from cvstream.blocks.tracks import Track
    tile = 8192
    counts = Counter()
    repeats = Repeats(tile, lambda name, n=1: counts.update({name: n}))
    wide = Track(0, 20 * tile, 0.05, 0.20, 20.0)            # open: a signal and a neighbour
    model_open = [wide]
    short = Track(0, 11 * tile, 0.100, 0.140, 12.0)           # the signal, for 11 tiles
    inside = Track(0, 11 * tile, 0.105, 0.108, 12.0)          # a narrow one inside its band
    elsewhere = Track(0, 11 * tile, 0.30, 0.34, 12.0)         # no open track over it
    sent = repeats.settle([short, inside, elsewhere], [], model_open)
    assert sent == [elsewhere] and len(repeats.waiting) == 2
    model_open.remove(wide)
    its = [Track(0, 32 * tile, 0.101, 0.140, 20.0), Track(0, 32 * tile, 0.06, 0.09, 20.0)]
    sent = repeats.settle(its, [(wide, its)], model_open)
    assert sent == its + [inside] and repeats.waiting == []
    assert counts["repeated_detections"] == 1
    long, piece = Track(0, 30 * tile, 0.3, 0.34, 9.0), Track(5 * tile, 9 * tile, 0.3, 0.33, 9.0)
    assert repeats.settle([piece, long], [], model_open) == [long]
    assert counts["repeated_detections"] == 2


def test_a_carrier_the_model_sees_for_a_while_is_sent_once():
    """A tone at 13 dB in-band (noise over 1/4000 of the band) that the cells' zoom follows
    throughout, 10 or 20 dB stronger for 4 tiles, where the model's cells see it and
    settle it to the same line: that line is the open narrow track's, counted in
    ``repeated_detections``, not sent; the tone is one detection, whole."""
    rng = np.random.default_rng(5)
    n, tile = 262144, 8192
    t = np.arange(n)
    noise = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(
        np.complex64)
    for boost_db in (10, 20):
        amp = np.full(n, np.sqrt(10 ** 1.3 / 4000))
        amp[12 * tile:16 * tile] *= 10 ** (boost_db / 20)
        block = SpectrumSegmenter()
        block.process(noise + (amp * np.exp(2j * np.pi * 0.10031 * t)).astype(np.complex64))
        block.flush()
        got = block.take_messages()
        assert [(m["sample_start"], m["sample_count"], m["label"]) for m in got] == \
            [(0, n, "tone")]
        assert abs(got[0]["center_freq"] - 0.10031) < 0.35 / tile
        assert block.counters["repeated_detections"] == 1
        block.stop()


def test_weak_tones_are_found_in_the_cells_the_model_leaves():
    """Tones at 11 and 13 dB in-band (noise over 1/4000 of the band, as the GNU Radio set
    counts it: 1.5-3 dB over the noise in one model cell) are found by the
    cells' zoom (``tones``, on by default) one bin of a tile-long FFT wide, at their
    frequency to a third of that bin and over most of the recording (the weaker takes a
    few tiles to be picked up), where the model's cells alone miss them; a 45 dB tone's IQ
    image at 15 dB (30 dB under it) is not a signal."""
    rng = np.random.default_rng(5)
    n = 262144
    x = tones_in_noise(rng, n, ((0.10031, 11), (-0.20017, 13), (0.3, 45), (-0.3, 15)))
    found = {}
    for tones in (False, True):
        block = SpectrumSegmenter(tones=tones)
        block.process(x)
        block.flush()
        found[tones] = block.take_messages()
    weak = [m for m in found[False] if abs(abs(m["center_freq"]) - 0.15) < 0.1]
    assert len(weak) < 2    # the model's cells miss at least one of the two
    got = sorted((m for m in found[True] if abs(abs(m["center_freq"]) - 0.15) < 0.1),
                 key=lambda m: m["center_freq"])
    assert len(got) == 2
    for m, f in zip(got, (-0.20017, 0.10031)):
        assert abs(m["center_freq"] - f) < 0.35 / 8192
        assert m["bandwidth"] == pytest.approx(1 / 8192)
        assert m["sample_count"] >= 0.8 * n and m["label"] == "tone"
    assert not [m for m in found[True] if abs(m["center_freq"] + 0.3) < 0.01]   # no image
    assert [m for m in found[True] if abs(m["center_freq"] - 0.3) < 0.01]


def test_long_tones_keeps_lines_and_drops_humps_images_and_noise():
    """``LongTones`` on 32 tiles of white-noise tile-long PSDs (exponential bins, mean 1)
    holding a line 6 over the noise at bin 1000.3 (split between two bins), a narrow
    signal's hump (Gaussian, 8 over the noise at its top, 3 bins deviation: its top three
    bins stand out as a line's would, its flanks do not fall), a 40 dB line at bin 6000
    and its IQ image 30 dB under it at its mirror, a line that lasts 6 tiles: only the
    lines are found, the weak one at its place to a third of a bin, for every tile from
    its first 8 on (a look every STRIDE tiles reports the tiles since the last), the
    short one within the looks that see it; the image, the hump and the noise are not."""
    from cvstream.blocks.long_tones import STRIDE, LongTones
    rng = np.random.default_rng(4)
    size, tiles = 8192, 32
    psd = rng.exponential(size=(tiles, size)).astype(np.float32)
    psd[:, 1000] += 6 * 0.7
    psd[:, 1001] += 6 * 0.3
    psd[:, 2980:3021] += 8 * np.exp(-np.arange(-20, 21) ** 2 / 18)
    psd[:, 6000] += 1e4
    psd[10:16, 4000] += 30                     # a tone that lasts 6 tiles
    psd[:, size - 6000] += 10.0
    finder = LongTones(fft=256)
    found = [finder.find(psd[k:k + 8]) for k in range(0, tiles, 8)]
    got = {}
    for batch, lines in enumerate(found):
        for t, centre, lo, hi in zip(lines.tile, lines.centre, lines.f_low, lines.f_high):
            got.setdefault(int(centre), []).append((8 * batch + int(t), 0.5 * (lo + hi)))
    assert set(got) == {1000, 4000, 6000}
    assert {t for t, _ in got[4000]} <= set(range(8, 16))   # not held once it ended
    first = min(t for t, _ in got[1000])
    assert first < 8 and first % STRIDE == 0 and len(got[1000]) == tiles - first
    assert all(abs(f * size + size // 2 - 1000.3) < 0.35 for _, f in got[1000])
    masks = np.zeros((8, 256), bool)
    masks[:, 1000 * 256 // size] = True        # beside a model's cell: not a tone of its own
    assert len(finder.outside(found[-1], masks).tile) == len(got[6000]) // 4


def test_long_tones_carry_their_looks_from_call_to_call():
    """The looks' sums carry over from call to call: tiles in calls of 4, 12, 4, 8 and 4,
    or in one call of 32 (the segmenter's calls are whole groups of 8: it searches a
    batch at once), give the same lines, tile for tile, as calls of 8 (a line 6 over the
    noise, one of 3 from tile 12 on); calls of 3, 5, 7, 1, 9, 6 and 1 give those of them
    whose tile is in the call that makes the look, the same where each call's rows are
    written over after it (no call keeps a view of them)."""
    from cvstream.blocks.long_tones import LongTones
    rng = np.random.default_rng(7)
    size, tiles = 8192, 32
    psd = rng.exponential(size=(tiles, size)).astype(np.float32)
    psd[:, 1500] += 6.0
    psd[12:, 5200] += 3.0

    def lines(sizes):
        finder, first, out = LongTones(fft=256), 0, {}
        for n in sizes:
            found = finder.find(psd[first:first + n])
            for t, c, f_low, snr in zip(found.tile, found.centre, found.f_low, found.snr_db):
                out[first + int(t), int(c)] = (f_low, snr)
            first += n
        return out

    whole = lines([8] * 4)
    assert {c for _, c in whole} == {1500, 5200}
    # nor does a call keep a view of its rows: a caller may write over them after (a
    # worker process's slot, rewritten by a later batch)
    sizes, finder, reused, first = [3, 5, 7, 1, 9, 6, 1], LongTones(fft=256), {}, 0
    for n in sizes:   # looks that span two calls read the rows of the first
        rows = psd[first:first + n].copy()
        found = finder.find(rows)
        rows[...] = 1e6
        reused.update({(first + int(t), int(c)): (f, s) for t, c, f, s in
                       zip(found.tile, found.centre, found.f_low, found.snr_db)})
        first += n
    assert reused == lines(sizes)
    for sizes in ([4, 12, 4, 8, 4], [32], [3, 5, 7, 1, 9, 6, 1]):
        pieces = lines(sizes)
        assert set(pieces) <= set(whole) and len(pieces) > len(whole) // 2
        assert (len(pieces) == len(whole)) == (sizes[0] % 4 == 0)
        for key, (f_low, snr) in pieces.items():
            assert f_low == pytest.approx(whole[key][0]) and snr == pytest.approx(whole[key][1])


def test_a_batch_of_lines_is_dealt_to_its_groups():
    """``lines_in``: the lines seen in a slice of a batch's tiles, their tiles counted
    from the slice's start, every field kept; none from an empty slice."""
    from cvstream.blocks.narrowband import Lines, lines_in
    tile = np.array([0, 3, 8, 9, 15, 16])
    lines = Lines(tile, tile * 0.01, tile * 0.01 + 0.001, tile * 1.0, tile * 10, tile + 2.0,
                  tile + 1.0)
    group = lines_in(lines, slice(8, 16))
    assert group.tile.tolist() == [0, 1, 7]
    assert group.centre.tolist() == [80, 90, 150]
    assert group.f_low == pytest.approx([0.08, 0.09, 0.15])
    assert group.peak.tolist() == [10.0, 11.0, 17.0] and group.around.tolist() == [9, 10, 16]
    assert len(lines_in(lines, slice(4, 8)).tile) == 0


def test_long_tones_search_only_where_the_model_leaves_room():
    """``LongTones.find`` given the model's cells searches only the bins where ``outside``
    may keep a tone, and finds what ``outside`` keeps of the search of every bin, to the
    last digit: lines beside cells the model holds in some tiles of a look and not in
    others (kept for those others only), a line inside a wide signal's cells, a line
    three bins wide whose centre is in a free cell and whose lowest bin is in the cell
    below, beside the model's."""
    from cvstream.blocks.long_tones import LongTones
    rng = np.random.default_rng(9)
    size, tiles, fft = 8192, 48, 256
    psd = rng.exponential(size=(tiles, size)).astype(np.float32)
    for line in (1000, 2500, 5000, 7000):
        psd[:, line] += 8.0
    psd[:, 4127:4130] += [4.0, 10.0, 6.0]        # cell 129 from 4128, its centre 4128.1
    masks = np.zeros((tiles, fft), bool)
    masks[np.arange(tiles) % 4 != 3, 1000 * fft // size + 2] = True   # all but 1 in 4 tiles
    masks[:, 2500 * fft // size - 1:2500 * fft // size + 2] = True    # a wide signal's cells
    masks[:, 124] = True                                               # 4 cells under 128
    masks[:24, 7000 * fft // size + 3] = True                          # 7000: from tile 24 on
    every, zoned = LongTones(fft=fft), LongTones(fft=fft)
    kept = []
    for k in range(0, tiles, 8):
        want = every.outside(every.find(psd[k:k + 8]), masks[k:k + 8])
        got = zoned.find(psd[k:k + 8], masks[k:k + 8])
        assert all(np.array_equal(a, b) for a, b in zip(want, got))
        kept += [(k + int(t), int(c)) for t, c in zip(got.tile, got.centre)]
    centres = {c for _, c in kept}
    assert centres == {1000, 4128, 5000, 7000}
    assert {t % 4 for t, c in kept if c == 1000} == {3}
    assert min(t for t, c in kept if c == 7000) >= 24


def test_long_tones_hold_a_tone_four_times_the_noise_over_most_of_its_tiles():
    """A CW tone whose bin of the tile-long PSD averages 4 times the noise (3.4 dB in-band
    over 1/4000 of the band; one tile's bin fluctuates from under 1 to over 10), 64 tiles
    in five draws: found at its bin in at least 130 of the 320 tile reports and nothing
    else anywhere. A 16-tile mean stands under ``contrast`` (4) times its surroundings
    but over the noise's level for that mean (3.3 at 1e-9), and the last two tiles often
    under the noise's 1 % level (3.3) but nearer the tone's mean than the noise's:
    without either rule, 60 and 104."""
    from cvstream.blocks.long_tones import LongTones
    rng = np.random.default_rng(4)
    tiles, size, tone = 64, 8192, 3000
    hits = others = 0
    for _ in range(5):
        noise = (rng.standard_normal((tiles, size)) +
                 1j * rng.standard_normal((tiles, size))) / np.sqrt(2)
        noise[:, tone] += np.sqrt(3.0)
        psd = (np.abs(noise) ** 2).astype(np.float32)
        finder = LongTones(fft=256)
        for k in range(0, tiles, 8):
            lines = finder.find(psd[k:k + 8])
            near = np.abs(lines.centre - tone) <= 1
            hits += int(near.sum())
            others += int((~near).sum())
    assert hits >= 130 and others == 0


def test_weak_tones_finds_a_cw_tone_too_weak_for_one_tile():
    """A CW tone at 5 dB in-band (noise over 1/4000 of the band: 8 dB over one bin of a
    tile-long PSD) over a whole recording of white noise: the cells' zoom misses it (under
    its gate); ``weak_tones`` (on by default) finds it on the PSDs averaged over up to 16
    tiles, one bin wide at its frequency to a third of a bin, from its first few tiles;
    a 45 dB tone's IQ image 30 dB under it is not a signal, nor is anything in white
    noise alone."""
    rng = np.random.default_rng(6)
    n, tile = 262144, 8192
    x = tones_in_noise(rng, n, ((0.21017, 5), (0.3, 45), (-0.3, 15)))
    found = {}
    for weak in (False, True):
        block = SpectrumSegmenter(weak_tones=weak)
        block.process(x)
        block.flush()
        found[weak] = [m for m in block.take_messages() if abs(m["center_freq"] - 0.3) > 0.01]
        block.stop()
    assert found[False] == []
    (got,) = found[True]
    assert abs(got["center_freq"] - 0.21017) < 0.35 / tile and got["label"] == "tone"
    assert got["bandwidth"] == pytest.approx(1 / tile)
    assert got["sample_start"] <= 8 * tile and got["sample_start"] + got["sample_count"] == n
    for seed in range(4):   # white noise alone: nothing (its means cross no level)
        block = SpectrumSegmenter()
        block.process(tones_in_noise(np.random.default_rng([6, seed]), n, ()))
        block.flush()
        assert block.take_messages() == []
        block.stop()
