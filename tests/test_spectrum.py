"""Spectrum tools: the synthesizer, its SigMF datasets, the CFAR detector, the evaluation,
the PNG and table sinks, and the spectrum graphs."""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from cvstream.blocks.cfar import CfarDetector, cfar_factor
from cvstream.blocks.segmenter import SpectrumSegmenter
from cvstream.errors import ParamError
from cvstream.blocks.tracks import merge_runs
from cvstream.models.spectrum import evaluate as ev
from cvstream.models.spectrum.synth import SceneConfig, cell_labels, scene
from cvstream.models.spectrum.waveforms import CLASSES, MODULATIONS, generate

GRAPHS = Path(__file__).parent.parent / "graphs"


@pytest.mark.parametrize("width", [0.05, 0.005])
@pytest.mark.parametrize("kind", MODULATIONS)
def test_waveforms_occupy_their_labelled_band(kind, width):
    """Narrow analog signals too: a message filtered by an FIR used to spill its transition
    band (several times a narrow label) and at high SNR the spill was visible. Nothing
    outside the label (the spectral mask): rectangular 2FSK's skirts stood 10-20 dB above
    the noise outside its box at 27 dB in-band SNR."""
    rng = np.random.default_rng(0)
    x, bw = generate(rng, kind, 65536, width)
    assert len(x) == 65536 and np.all(np.isfinite(x))
    spec = np.abs(np.fft.fftshift(np.fft.fft(x))) ** 2
    cum = np.cumsum(spec) / spec.sum()
    lo, hi = np.searchsorted(cum, [0.005, 0.995]) / 65536
    # 99 % of the power inside the labelled width, and not a much narrower part of it
    assert hi - lo <= bw + 2 / 65536
    if kind not in ("cw", "am"):
        assert hi - lo >= bw * 0.4
    f = (np.arange(65536) - 32768) / 65536
    outside = spec[np.abs(f) > bw / 2 + 1 / 65536].sum() / spec.sum()
    assert outside < 1e-6


def test_scene_snr_is_in_band():
    rng = np.random.default_rng(1)
    cfg = SceneConfig(samples=131072, snr_db=(10, 10), burst_probability=0.0)
    x, labels = scene(rng, cfg, n_signals=1)
    lab = labels[0]
    spec = np.abs(np.fft.fftshift(np.fft.fft(x))) ** 2 / len(x)
    f = (np.arange(len(x)) - len(x) // 2) / len(x)
    band = (f >= lab.f_low) & (f <= lab.f_high)
    noise = np.mean(spec[~band])  # white noise: the mean periodogram level
    snr = 10 * np.log10((spec[band].sum() - noise * band.sum()) / (noise * band.sum()))
    assert snr == pytest.approx(10.0, abs=1.5)


def test_tilted_floor_scenes_keep_their_signals_and_in_band_snr():
    """``floor_tilt_db``: the same signals over a floor tilted across the band (the noise
    density differs by the tilt between the band's edges), each signal's in-band SNR over
    the floor at its own centre; 0 leaves the white-floor scenes as they were."""
    cfg = SceneConfig(samples=131072, snr_db=(10, 10), burst_probability=0.0)
    flat, flat_labels = scene(np.random.default_rng(1), cfg, n_signals=1)
    again, _ = scene(np.random.default_rng(1), SceneConfig(**{**cfg.__dict__,
                                                              "floor_tilt_db": 0.0}), 1)
    assert np.array_equal(flat, again)
    for seed in range(20):
        x, labels = scene(np.random.default_rng(seed), SceneConfig(
            **{**cfg.__dict__, "floor_tilt_db": 6.0}), n_signals=1)
        spec = np.abs(np.fft.fftshift(np.fft.fft(x))) ** 2 / len(x)
        f = (np.arange(len(x)) - len(x) // 2) / len(x)
        edges = [np.mean(spec[np.abs(f - e) < 0.02]) for e in (-0.45, 0.45)]
        tilt = abs(10 * np.log10(edges[1] / edges[0]))
        lab = labels[0]
        if tilt > 3 and lab.f_high - lab.f_low > 0.01:
            break
    band = (f >= lab.f_low) & (f <= lab.f_high)
    near = (np.abs(f - lab.center) < (lab.f_high - lab.f_low) / 2 + 0.03) & ~band
    noise = np.mean(spec[near])   # the floor around the signal
    snr = 10 * np.log10((spec[band].sum() - noise * band.sum()) / (noise * band.sum()))
    assert snr == pytest.approx(10.0, abs=1.5)


def test_scenes_are_deterministic_and_labelled_per_cell():
    a, la = scene(np.random.default_rng([5, 0]), SceneConfig(samples=65536), n_signals=3)
    b, lb = scene(np.random.default_rng([5, 0]), SceneConfig(samples=65536), n_signals=3)
    assert np.array_equal(a, b) and la == lb
    grid = cell_labels(la, 65536, 256, 256)
    assert grid.shape == (256, 256)
    assert set(np.unique(grid)) <= set(range(len(CLASSES) + 1))
    for lab in la:
        t = (lab.start + lab.stop) // 2 // 256
        f = int((lab.center + 0.5) * 256)
        assert grid[min(t, 255), min(f, 255)] > 0


def test_synth_cli_writes_readable_sigmf(tmp_path):
    res = run_cli("models", "synth", "spectrum", "--out", str(tmp_path), "--count", "3",
                  "--seed", "4", "--samples", "65536")
    assert res.returncode == 0, res.stderr
    from sigmf import sigmffile
    rec = sigmffile.fromfile(str(tmp_path / "scene_00001.sigmf-meta"))
    assert rec.get_global_field("core:sample_rate") == 20e6
    assert len(rec.read_samples()) == 65536
    x, labels = scene(np.random.default_rng([4, 1]), SceneConfig(samples=65536))
    assert np.array_equal(rec.read_samples(), x)
    ann = rec.get_annotations()
    assert len(ann) == len(labels)
    for a in ann:
        assert a["core:label"] in CLASSES
        assert -10e6 <= a["core:freq_lower_edge"] < a["core:freq_upper_edge"] <= 10e6
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["count"] == 3 and manifest["seed"] == 4


def test_cfar_threshold_and_runs():
    # the F-distribution factor gives the false-alarm rate it promises on white noise
    alpha = cfar_factor(1e-2, 4, 32)
    rng = np.random.default_rng(0)
    cell = rng.gamma(4, 1 / 4, 200000)
    ref = rng.gamma(4 * 32, 1 / (4 * 32), 200000)
    assert np.mean(cell > alpha * ref) == pytest.approx(1e-2, rel=0.1)
    assert merge_runs(np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 1], bool), 2) == [(1, 6), (9, 10)]


def test_cfar_finds_signals_and_stays_quiet_on_noise():
    rng = np.random.default_rng(2)
    noise = ((rng.standard_normal(262144) + 1j * rng.standard_normal(262144)) / np.sqrt(2))
    det = CfarDetector(pfa=1e-6)
    det.process(noise.astype(np.complex64))
    det.flush()
    assert det.take_messages() == []
    x, labels = scene(np.random.default_rng(3), SceneConfig(snr_db=(15, 25),
                      burst_probability=0.0), n_signals=2)
    det = CfarDetector(rate=20e6, freq=100e6)
    det.process(x)
    det.flush()
    found = det.take_messages()
    truth = [ev.Box(s.start, s.stop, s.f_low, s.f_high) for s in labels]
    boxes = ev.boxes_from_messages(found, 20e6, 100e6)
    assert len(ev.match(truth, boxes)) == 2
    m = found[0]
    assert m["freq_upper_edge"] - m["freq_lower_edge"] == pytest.approx(m["bandwidth"])
    assert 90e6 <= m["center_freq"] <= 110e6 and 0 <= m["confidence"] <= 1


def _fine_track(x, f_low, f_high, rows: bool = False, track=None):
    """A Track over all of x (or ``track``, as a tracker settled it) with the segmenter's
    fine PSD accumulated, as the block does (``rows``: each tile's own kept too, as the
    block's tracker does)."""
    from cvstream.blocks.detections import ZOOM
    from cvstream.blocks.tracks import Track
    from cvstream.blocks.segmenter import SpectrumSegmenter
    block = SpectrumSegmenter()
    _, _, floor, _ = block.spectra.prepare(x)
    fine = block.spectra.fine_psd(x, floor)
    zoom = block.spectra.fine_psd(x, floor, block.refine * ZOOM)
    line = block.spectra.fine_psd(x, floor, block.decim)
    track = track or Track(0, len(x), f_low, f_high, 20.0)
    for k, (row, finer, tile) in enumerate(zip(fine, zoom, line)):
        track.add_spectrum(row, finer, k * block.decim if rows else None, tile)
    return track, block.decim // block.refine


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
    track, frames = _fine_track(x.astype(np.complex64), 0.08, 0.16, rows=True)
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
    track, frames = _fine_track(y.astype(np.complex64), 0.08, 0.16, rows=True)
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
    track, frames = _fine_track(x, 0.19, 0.21)
    widths = []
    for zoom, line in ((track.zoom, track.line), (track.zoom, None), (None, None)):
        track.zoom, track.line = zoom, line
        (part,) = refine_edges(track, frames, margin=1 / 256, valley_db=15)
        assert 0.5 * (part.f_low + part.f_high) == pytest.approx(0.2, abs=0.1 * bw)
        widths.append((part.f_high - part.f_low) / bw)
    assert 0.85 < widths[0] < 1.15 and 1.2 < widths[1] < 1.6 and widths[2] > 1.8


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


def test_a_narrow_signal_then_a_wide_one_over_it_are_two_detections(monkeypatch):
    """A strong QPSK signal 2 % of the band wide for 14 tiles, then after one tile an OFDM
    signal 20 % wide over its band (the main job's picture had this): one track follows
    both (the gap is under ``hold``); cut where its band changes (``time_segments``), each
    is a detection of its own with its own span and band (the OFDM's whole band,
    -0.022..0.182: the track's box, the median of its tiles' edges, reaches under three
    quarters of it, so it is not cut to that, ``clip_to_box``). Without the cut, one box
    with the wide band over the narrow one's time, which matches neither; a chirp sweeping
    its band over the whole stream is not cut."""
    import cvstream.blocks.segmenter as segmenter
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
    monkeypatch.setattr(segmenter, "time_segments", lambda track, *a, **k: [track])
    assert boxes(x) != [(0, 14, 0.09, 0.11), (15, 32, -0.02, 0.18)]   # neither holds
    monkeypatch.undo()
    sweep, bw = generate(rng, "chirp", len(x), 0.1)
    y, _ = scene(rng, SceneConfig(samples=32 * tile), n_signals=0)
    assert len(boxes(y + np.sqrt(10 ** 2.0 * bw) * sweep * np.exp(2j * np.pi * -0.2 * n))) == 1


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


def test_line_edges_give_a_tone_one_bin_and_a_narrow_signal_its_width():
    """On a tile-long PSD (8192 points, the mean of 4 periodograms; noise 1 per bin): a tone
    0.3 bin off a bin centre is one bin wide around it (the window spreads it over three
    or four; the noise bins of the run, under the false-alarm level, do not count); a QPSK
    signal six bins wide is no line: at least 5 bins wide, centred."""
    from cvstream.blocks.lines import line_edges
    from cvstream.blocks.tracks import noise_level
    rng = np.random.default_rng(3)
    n = 4 * 8192
    noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    t = np.arange(n)
    window = np.hanning(8192) / np.sqrt(np.sum(np.hanning(8192) ** 2))

    def edges(x):
        spec = np.fft.fftshift(np.fft.fft(x.reshape(4, 8192) * window, axis=1), axes=1)
        psd = (np.abs(spec) ** 2).mean(axis=0)
        centre = int(0.1 * 8192) + 4096
        lo, hi = line_edges(psd, centre - 8, centre + 9, 0.999, noise_level(1e-3, 4))
        # positions from bin ``centre``'s start: bin k spans [k, k + 1), its centre k + 0.5;
        # 0.1 of the band lies 0.2 bin above bin ``centre``'s centre
        return lo - centre - 0.7, hi - centre - 0.7
    lo, hi = edges(noise + 10 * np.exp(2j * np.pi * (0.1 + 0.3 / 8192) * t))
    assert hi - lo == pytest.approx(1.0) and 0.5 * (lo + hi) == pytest.approx(0.3, abs=0.1)
    wave, bw = generate(rng, "qpsk", n, 6 / 8192)
    lo, hi = edges(noise + np.sqrt(100 * bw) * wave * np.exp(2j * np.pi * 0.1 * t))
    assert hi - lo >= 5 and abs(0.5 * (lo + hi)) < 1.5


def test_a_carrier_with_weak_sidebands_gets_their_band_and_a_cw_tone_stays_a_line(monkeypatch):
    """An AM signal whose message (noise flat over +-0.002 of the band, 6 % of the carrier's
    power) lies 1-2 dB over the noise per bin of the tile-long PSD, under a carrier 18 dB
    over it, and a CW tone at 25 dB (noise over 1/4000 of the band): the AM's detection
    spans its sidebands (0.004 of the band, to 20 %), not its carrier's bin alone, which
    it is without the sideband search (``carrier_band``); the tone stays one bin wide."""
    import cvstream.blocks.lines as spectral_lines
    rng = np.random.default_rng(3)
    n = 262144
    t = np.arange(n)
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    x += np.sqrt(10 ** 2.5 / 4000) * np.exp(2j * np.pi * -0.3 * t)
    spectrum = np.fft.fft(rng.standard_normal(n))
    spectrum[np.abs(np.fft.fftfreq(n)) > 0.002] = 0
    message = np.fft.ifft(spectrum).real
    x += np.sqrt(10 ** 2.0 / 8192) * (1 + 0.25 * message / message.std()) * \
        np.exp(2j * np.pi * 0.15 * t)

    def found():
        block = SpectrumSegmenter()
        block.process(x.astype(np.complex64))
        block.flush()
        return sorted(block.take_messages(), key=lambda m: m["center_freq"])
    tone, am = found()
    assert tone["center_freq"] == pytest.approx(-0.3, abs=1 / 8192)
    assert tone["bandwidth"] * 8192 == pytest.approx(1.0)
    assert am["bandwidth"] == pytest.approx(0.004, rel=0.2)
    assert am["center_freq"] == pytest.approx(0.15, abs=2 / 8192)
    monkeypatch.setattr(spectral_lines, "SIDEBAND_Z", np.inf)
    assert found()[1]["bandwidth"] * 8192 == pytest.approx(1.0)


def test_carrier_band_takes_symmetric_sidebands_and_leaves_neighbours_and_skirts():
    """``carrier_band`` on means of 32 periodograms (noise 1 per bin) with a carrier of 300
    (summed over its bins), five draws each: flat sidebands 0.25 over the noise out to 60
    bins either side (under the noise's deviation in every bin; 5 % of the carrier's
    power) give the band within 25 %; a neighbour on one side only, a skirt falling off as
    1/f^2 (a strong tone's phase noise, 0.3 % of its power), the noise alone, and the same
    sidebands beside a carrier of 10 (three times what AM can put in them) give none."""
    from cvstream.blocks.lines import carrier_band
    rng = np.random.default_rng(8)
    size, looks, c = 8192, 32, 3000
    d = np.abs(np.arange(size) - c)

    def psd(shape, carrier=300.0):
        p = rng.gamma(looks, 1 / looks, size) + shape
        p[c - 1:c + 2] += carrier * np.array([0.25, 0.5, 0.25])
        return p

    sidebands = 0.25 * ((d >= 1) & (d <= 60))
    one_side = 0.5 * ((np.arange(size) > c + 10) & (np.arange(size) < c + 200))
    skirt = 1.5 / np.maximum(d, 1) ** 2 * (d > 0)
    for _ in range(5):
        band = carrier_band(psd(sidebands), c, looks)
        assert band is not None and c - band[0] == pytest.approx(60, rel=0.25) and \
            band[1] - 1 - c == pytest.approx(60, rel=0.25)
        for shape in (one_side, skirt, 0.0):
            assert carrier_band(psd(shape), c, looks) is None
        assert carrier_band(psd(sidebands, carrier=10.0), c, looks) is None


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


def test_a_tone_on_a_neighbours_skirt_is_one_bin_and_an_am_carrier_is_not():
    """On means of 32 periodograms (noise 1 per bin, five draws) a carrier of 100
    (summed over its bins) in a run of 20 bins whose lower side a neighbour's skirt
    raises (3 times the noise, falling off into the run): ``line_edges`` counts the
    skirt as the run's power (wider than two bins); ``line_over_floor`` takes the tone
    one bin wide at the carrier, but not in a run of 60 bins (a signal's band).
    Sidebands 0.6 over the noise on both sides (an AM carrier's) and the noise alone
    give none with the skirt's tests (the first a bin without them). Beside a
    neighbour's flat top 30 times the noise, outside the run and over the line, with a
    skirt 2.5 times the noise in the run: one bin, on the run's own floor, in 18 of 20
    draws or more (a noise bin over the level widens it, as it does ``line_edges``). And
    ``line_beneath`` finds the tone on a floor raised 8 times on both sides (a band of
    16 bins around it: a fine PSD's few bins)."""
    from cvstream.blocks.detections import line_beneath
    from cvstream.blocks.lines import line_edges, line_over_floor
    from cvstream.blocks.tracks import noise_level
    rng = np.random.default_rng(4)
    size, looks, c = 8192, 32, 3000
    k = np.arange(size)
    level = noise_level(1e-3, looks)

    def psd(shape, carrier=100.0):
        p = rng.gamma(looks, 1 / looks, size) * (1 + shape)
        p[c - 1:c + 2] += carrier * np.array([0.25, 0.5, 0.25])
        return p

    skirt = np.where(k < c - 2, 2.0 * np.clip((c - 2 - k) / 8, 0, 1), 0.0)
    sidebands = 0.6 * ((np.abs(k - c) >= 2) & (np.abs(k - c) <= 60))
    plateau = np.where(k < c - 10, 29.0, np.where(k < c + 10, 1.5, 0.0))
    a, b = c - 10, c + 10

    def tone(p, skirt=True):
        return line_over_floor(p, a, b, 0.999, level, skirt)
    for _ in range(5):
        p = psd(skirt)
        lo, hi = line_edges(p, a, b, 0.999, level)
        assert hi - lo > 2
        lo, hi = tone(p)
        assert hi - lo == pytest.approx(1.0) and 0.5 * (lo + hi) == pytest.approx(c + 0.5,
                                                                                abs=0.2)
        assert tone(psd(sidebands)) is None and tone(psd(0.0)) is None
        assert line_over_floor(p, c - 30, c + 30, 0.999, level) is None   # a signal's band
        lo, hi = tone(psd(sidebands), skirt=False)
        assert hi - lo == pytest.approx(1.0)
        f_lo, f_hi = line_beneath(psd(7.0), (c - 8 - size // 2) / size,
                                  (c + 8 - size // 2) / size, looks, 1e-3, 0.999)
        assert (f_hi - f_lo) * size == pytest.approx(1.0)
        assert 0.5 * (f_lo + f_hi) * size + size // 2 == pytest.approx(c, abs=0.2)
    found = 0   # beside a flat top, on the run's own floor (a noise bin may widen it)
    for _ in range(20):
        p = psd(plateau)
        lo, hi = line_edges(p, a, b, 0.999, level)
        assert hi - lo > 2
        edges = tone(p)
        found += edges is not None and 0.5 * (edges[0] + edges[1]) == pytest.approx(c + 0.5,
                                                                                     abs=0.2)
    assert found >= 18


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
    track, frames = _fine_track(x.astype(np.complex64), 0.08, 0.16)
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


def _tracked_signals(rng, tile, tiles, bands, runs, rows: bool = True):
    """Signals (centre(sample index), width, on(sample index) -> bool[, kind, in-band SNR
    dB]; QPSK at 20 dB unless given) over noise, and one track of ``tiles`` tiles that
    meets the runs ``runs(k)`` in tile k (one, or several the coarse view joined), its
    fine PSD summed (with ``rows``, each of the segmenter's tiles kept too, as its tracker
    does); (track, frames, true edges)."""
    from cvstream.blocks.tracks import Tracker
    cfg = SceneConfig(samples=tiles * tile, snr_db=(20, 20), burst_probability=0.0,
                      modulations=("qpsk",))
    x, _ = scene(rng, cfg, n_signals=0)
    n = np.arange(len(x))
    truth = []
    for centre, width, on, *signal in bands:
        kind, snr = signal or ("qpsk", 20)
        wave, bw = generate(rng, kind, len(x), width)
        x = x + 10 ** (snr / 20) * np.sqrt(bw) * wave * np.exp(2j * np.pi * centre(n) * n) * \
            on(n)
        truth.append((centre(n[:1])[0] - bw / 2, centre(n[:1])[0] + bw / 2))
    tracker = Tracker()
    for k in range(tiles):
        tracker.update(k * tile, (k + 1) * tile, [(*run, 20.0, "qpsk") for run in runs(k)])
    (track,) = tracker.flush()
    track, frames = _fine_track(x.astype(np.complex64), 0, 0, rows=rows, track=track)
    return track, frames, truth


def test_a_neighbour_merged_into_a_track_for_a_third_of_its_tiles_gets_its_own_box():
    """A QPSK signal over 18 tiles and a neighbour 1 % of the band above it in the last 6
    only, which the coarse view merged into its track there: the settled track's box is
    the median of its tiles' edges (the signal's own), its search window reaches the
    upper quartile of their high edges, so refining finds the neighbour as a detection of
    its own, from the tile it starts in, and the signal's edges still hug it."""
    from cvstream.blocks.detections import refine_edges
    tile = 4096
    track, frames, truth = _tracked_signals(
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
    track, frames, truth = _tracked_signals(
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


def test_a_line_held_for_fewer_blocks_than_a_tone_must_be_is_no_detection(monkeypatch):
    """A CW burst 0.5 % of the band above a continuous QPSK signal, which one coarse track
    followed with it: held for LINE_MIN_BLOCKS tiles or more it is a detection of its own,
    one bin of the tile-long PSD wide, over its own tiles; held for fewer (an FM's outer
    line that surfaces for a few tiles: GNU Radio's seed 31337 #31) it is not, as a line
    of the narrow view must hold as long (NARROW_MIN_TILES), and ``dropped`` counts it.
    Wider parts, and a line that is its track's only part (a short burst the model
    followed, ``test_a_strong_cw_burst_of_five_tiles_is_sent_once``), need two blocks."""
    from cvstream.blocks import detections
    from cvstream.blocks.segmenter import NARROW_MIN_TILES
    tile, first = 8192, 6
    assert NARROW_MIN_TILES == detections.LINE_MIN_BLOCKS == 5

    def settle(count):
        track, frames, _ = _tracked_signals(
            np.random.default_rng(3), tile, 24,
            [(lambda n: np.full(len(n), 0.08), 0.03, lambda n: n >= 0),
             (lambda n: np.full(len(n), 0.1), 0.0,
              lambda n: (n >= first * tile) & (n < (first + count) * tile), "cw", 20)],
            lambda k: [(0.0625, 0.1016)])
        dropped = []
        parts = detections.refine_edges(track, frames, margin=1 / 256, block=tile,
                                        valley_db=15, dropped=dropped.append)
        return [(p.start // tile, p.stop // tile, p.f_low, p.f_high) for p in parts], dropped

    for count in (5, 6):
        (wide, tone), dropped = settle(count)
        assert wide[:2] == (0, 24) and not dropped
        assert tone[:2] == (first, first + count)
        assert (tone[3] - tone[2]) * tile == pytest.approx(1)
        assert 0.5 * (tone[2] + tone[3]) == pytest.approx(0.1, abs=1 / tile)
    for count in (3, 4):
        (wide,), dropped = settle(count)
        assert wide[:2] == (0, 24) and dropped == [1]
    monkeypatch.setattr(detections, "LINE_MIN_BLOCKS", 2)   # as wider parts
    (_, tone), _ = settle(3)
    assert tone[:2] == (first, first + 3)


def _edge_tone_track(tone_blocks, gap_bins: int, blocks: int = 24,
                     part_blocks=range(8, 16), peak: float = 1000.0, band=100.0):
    """A wide part (2048-point view bins 900-1000, ``band`` times the noise there, skirts
    sloping 8 bins down to the noise either side) with a line ``gap_bins`` of the
    block-long PSD below its lower skirt (``peak`` times the noise), as ``refine_edges``
    hands it to ``apart_edge_tones``: the part in ``part_blocks``, the line in
    ``tone_blocks``; its 1024-point rows, 2048-point view, 8192-point line PSD (noise 1)."""
    from cvstream.blocks.tracks import Track, band_bins, bin_edges
    rng = np.random.default_rng(5)
    view = np.ones(2048)
    view[900:1000] = band
    skirt = 100.0 * 10 ** (-np.arange(1, 9) / 4)   # 20 dB over 8 bins
    view[892:900], view[1000:1008] = skirt[::-1], skirt
    line = np.repeat(view, 4)
    tone = 4 * 892 - gap_bins
    line[tone - 1:tone + 2] = [0.3 * peak, peak, 0.3 * peak]
    on = np.zeros(blocks, bool)
    on[list(part_blocks)] = True
    rows = []
    for k in range(blocks):
        row = rng.gamma(64, 1 / 64, 1024)
        if on[k]:
            row = row + view.reshape(-1, 2).mean(axis=1) - 1
        if k in tone_blocks:
            row[band_bins(*bin_edges(tone, tone + 1, 8192), 1024)[0]] += 250.0
        rows.append((k * 8192, row))
    lo, hi = bin_edges(tone - 1, 1008, 8192)
    part = Track(0, blocks * 8192, float(lo), float(hi), 20.0)
    part.rows, part.spectra = rows, blocks
    return part, view, ((tone - 1) / 4, 1008.0), line, tone


def test_a_cw_tone_beside_a_signal_that_comes_and_goes_gets_its_own_box():
    """A continuous line 16 bins of the block-long PSD (0.2 % of the band) below a signal
    that is there in a third of the blocks, the signal's skirt filling the gap so the view
    holds them in one run: ``apart_edge_tones`` gives the line a one-bin box of its own
    and the signal its band. A line that comes and goes with the signal (its own), or one
    inside the signal's band, stays in the signal's box."""
    from cvstream.blocks.lines import apart_edge_tones
    from cvstream.blocks.tracks import noise_level
    level = noise_level(1e-3, 24)
    part, view, edges, line, tone = _edge_tone_track(range(24), 16)
    tone_part, rest = apart_edge_tones(part, view, edges, line, level, 32, 0.999)
    assert (tone_part.f_low + 0.5) * 8192 == pytest.approx(tone, abs=0.5)
    assert (tone_part.f_high - tone_part.f_low) * 8192 == pytest.approx(1)
    assert 892 <= (rest.f_low + 0.5) * 2048 <= 900   # its band, within its skirts
    assert 1000 <= (rest.f_high + 0.5) * 2048 <= 1008
    own, view, edges, line, _ = _edge_tone_track(range(8, 16), 16)
    assert apart_edge_tones(own, view, edges, line, level, 32, 0.999) == [own]
    inside, view, edges, line, _ = _edge_tone_track(range(24), -40)
    assert apart_edge_tones(inside, view, edges, line, level, 32, 0.999) == [inside]


def test_a_cw_burst_beside_a_flat_signal_always_there_gets_its_own_box():
    """A line 16 bins of the block-long PSD below a continuous signal whose spectrum is
    flat (PSK, QAM, OFDM: no lines of their own), there in blocks 2-11 of 24 and only 7
    times the noise in the block-long mean: beside a flat rest a burst (a line held from
    its start to its end) that the rest outlasts is a tone of its own (GNU Radio's packed
    scenes: CW bursts beside OFDM, seeds 4242 #4 and 5678 #16), at a lower rise over the
    gap between them (EDGE_TONE_FLAT_RISE). Beside a rest with lines (an FM's: it may be
    one of them), there as long as the rest, or there in scattered blocks (an FM's outer
    line flickers with its message, and its body can be as flat: the test set's seed 2026
    #25), the line stays in the signal's box."""
    from cvstream.blocks.lines import EDGE_TONE_FLAT_RISE, apart_edge_tones
    from cvstream.blocks.tracks import noise_level
    level = noise_level(1e-3, 24)
    every = range(24)
    part, view, edges, line, tone = _edge_tone_track(range(2, 12), 16, part_blocks=every,
                                                     peak=7.0)
    assert 7.0 / np.median(line[tone + 3:4 * 892]) > EDGE_TONE_FLAT_RISE
    tone_part, rest = apart_edge_tones(part, view, edges, line, level, 32, 0.999)
    assert (tone_part.f_low + 0.5) * 8192 == pytest.approx(tone, abs=0.5)
    assert 892 <= (rest.f_low + 0.5) * 2048 <= 900 and 1000 <= (rest.f_high + 0.5) * 2048
    lines = line.copy()
    lines[3600:4000:6] *= 30                                  # a comb of lines
    assert apart_edge_tones(part, view, edges, lines, level, 32, 0.999) == [part]
    always, view, edges, line, _ = _edge_tone_track(every, 16, part_blocks=every, peak=7.0)
    assert apart_edge_tones(always, view, edges, line, level, 32, 0.999) == [always]
    flicker, view, edges, line, _ = _edge_tone_track((2, 7, 13, 19, 23), 16,
                                                     part_blocks=every, peak=7.0)
    assert apart_edge_tones(flicker, view, edges, line, level, 32, 0.999) == [flicker]


def test_a_cw_tone_beside_a_smooth_signal_always_there_gets_its_own_box(monkeypatch):
    """A continuous line 16 bins of the block-long PSD below a continuous signal whose
    spectrum is a hump with no line of its own (GMSK, GFSK: not flat, but smooth): held
    in every block and 1000 times the noise in the gap, it is a CW tone of its own
    (GNU Radio's seed 4242 #5: a tone 0.2 % of the band beside a GMSK signal, both there
    throughout). Beside a hump that holds a line (an FM's, an AM's), or where the line
    flickers (an FM's outer line), it stays in the signal's box."""
    import cvstream.blocks.lines as spectral_lines
    from cvstream.blocks.lines import apart_edge_tones
    from cvstream.blocks.psd_runs import flat, smooth
    from cvstream.blocks.tracks import noise_level
    level = noise_level(1e-3, 24)
    every = range(24)
    hump = 10 ** (2 - np.abs(np.arange(100) - 49.5) / 50)   # 20 dB down to 10 at its edges
    part, view, edges, line, tone = _edge_tone_track(every, 16, part_blocks=every, band=hump)
    assert not flat(line[3600:4000]) and smooth(line[3600:4000])
    tone_part, rest = apart_edge_tones(part, view, edges, line, level, 32, 0.999)
    assert (tone_part.f_low + 0.5) * 8192 == pytest.approx(tone, abs=0.5)
    assert tone_part.f_high - tone_part.f_low == pytest.approx(1 / 8192)
    assert 892 <= (rest.f_low + 0.5) * 2048 <= 900 and 1000 <= (rest.f_high + 0.5) * 2048
    lined = line.copy()
    lined[3800] *= 5                                         # the hump's own line
    assert not smooth(lined[3600:4000])
    assert apart_edge_tones(part, view, edges, lined, level, 32, 0.999) == [part]
    flicker, view, edges, line, _ = _edge_tone_track(range(0, 24, 2), 16, part_blocks=every,
                                                     band=hump)
    assert apart_edge_tones(flicker, view, edges, line, level, 32, 0.999) == [flicker]
    monkeypatch.setattr(spectral_lines, "EDGE_TONE_STEADY", 1.01)   # the rule left out
    part, view, edges, line, _ = _edge_tone_track(every, 16, part_blocks=every, band=hump)
    assert apart_edge_tones(part, view, edges, line, level, 32, 0.999) == [part]


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
    track, frames, truth = _tracked_signals(   # joined in the first tile, a run a signal after
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
    track, frames, _ = _tracked_signals(
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
    track, frames, _ = _tracked_signals(
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
    track, frames = _fine_track(x.astype(np.complex64), 0.08, 0.14)
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
    from cvstream.blocks.tracks import noise_level
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
    from cvstream.blocks.tracks import noise_level
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
    from cvstream.blocks.tracks import noise_level
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
    from cvstream.blocks.tracks import noise_level
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
    from cvstream.blocks.tracks import noise_level
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


def test_a_line_spectrum_is_one_detection():
    """FM by a tone (index 3, lines 8 fine bins apart, 25 dB): its lines stand apart over
    the noise (11 runs), yet they are one signal (``join_line_spectra``), its edges the
    outermost lines above the noise (J5(3) is 27 dB under the carrier's share); three signals
    of unequal widths at equal spacing are not a comb, nor a narrow one between two wide
    ones (a comb is of lines or of humps as wide as each other, not both)."""
    from cvstream.blocks.detections import refine_edges
    from cvstream.blocks.lines import join_line_spectra
    assert join_line_spectra([(0, 2), (10, 12), (20, 23), (30, 32), (50, 80)]) == \
        [(0, 32), (50, 80)]
    assert join_line_spectra([(0, 20), (24, 36), (42, 58)]) == [(0, 20), (24, 36), (42, 58)]
    assert join_line_spectra([(0, 2), (10, 12), (50, 52)]) == [(0, 2), (10, 12), (50, 52)]
    assert join_line_spectra([(303, 333), (340, 347), (354, 386)]) == \
        [(303, 333), (340, 347), (354, 386)]
    assert join_line_spectra([(340, 347), (354, 361), (368, 375)]) == [(340, 375)]
    # parts that touch were cut apart (``split_by_presence``): neighbours, never one comb
    assert join_line_spectra([(0, 20), (20, 40), (40, 60)]) == [(0, 20), (20, 40), (40, 60)]
    assert join_line_spectra([(0, 18), (20, 38), (40, 58)]) == [(0, 58)]
    rng = np.random.default_rng(8)
    n = 16 * 8192
    tone = 8 / 1024
    phase = 3 * np.sin(2 * np.pi * tone * np.arange(n)) + 2 * np.pi * 0.1 * np.arange(n)
    noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    x = (noise + np.sqrt(10 ** 2.5 * 8 * tone) * np.exp(1j * phase)).astype(np.complex64)
    track, frames = _fine_track(x, 0.1 - 6 * tone, 0.1 + 6 * tone)
    (part,) = refine_edges(track, frames, margin=1 / 256, valley_db=15)
    assert part.f_low == pytest.approx(0.1 - 5 * tone, abs=0.5 * tone)
    assert part.f_high == pytest.approx(0.1 + 5 * tone, abs=0.5 * tone)


def test_an_fm_tones_lines_are_one_detection_across_the_finer_views_parts():
    """FM by a tone (index 3-9, lines 22-35 bins of the block-long PSD apart, 15-25 dB over
    Carson's band): the finer view's window blurs the lines into humps as wide as their
    spacing and cuts them at the Bessel nulls into parts, some wide, some one line; on the
    block-long PSD they are one comb (``line_runs``, ``comb_lines``; a line may be missing
    where J_k(index) is near 0), so the carrier is one ``analog`` detection over Carson's
    band, its outermost lines within two of the tone's spacings past it."""
    from cvstream.blocks.lines import join_line_spectra
    runs = [(0, 2), (10, 12), (30, 32), (40, 42)]           # the third line missing
    assert join_line_spectra(runs) == runs
    assert join_line_spectra(runs, max_step=2) == [(0, 42)]
    n = 262144
    t = np.arange(n)
    for seed, (spacing, index, snr_db, centre) in enumerate(
            ((25.3, 6.0, 25, 0.18), (30.0, 4.0, 15, -0.2), (22.0, 9.0, 22, 0.05),
             (35.0, 3.0, 20, 0.3))):
        rng = np.random.default_rng(seed)
        tone = spacing / 8192
        carson = 2 * (index + 1) * tone
        fm = np.exp(1j * (2 * np.pi * centre * t + index * np.sin(2 * np.pi * tone * t + 1)))
        x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2) + \
            np.sqrt(10 ** (snr_db / 10) * carson) * fm
        block = SpectrumSegmenter()
        block.process(x.astype(np.complex64))
        block.flush()
        (got,) = block.take_messages()
        assert got["label"] == "analog" and got["sample_count"] == n
        for edge, side in ((got["freq_lower_edge"], -1), (got["freq_upper_edge"], 1)):
            assert abs(edge - (centre + side * carson / 2)) < 2 * tone
        block.stop()


def _white(rng, n: int) -> np.ndarray:
    """Complex white noise of power 1."""
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)


def _segmented(x: np.ndarray) -> list[dict]:
    """spectrum_segmenter's detections of ``x`` (one call, then flushed), by lower edge."""
    block = SpectrumSegmenter()
    block.process(x.astype(np.complex64))
    block.flush()
    got = sorted(block.take_messages(), key=lambda m: m["freq_lower_edge"])
    block.stop()
    return got


def test_three_equally_wide_neighbours_packed_at_one_gap_are_not_a_comb():
    """Three continuous signals 2.2 % of the band wide, 0.25 % apart, at 7-15 dB in-band (a
    packed band: GNU Radio's tight scenes joined such runs as one comb of humps). A comb of
    humps on a band that holds still needs four of them (``STEADY_MIN_HUMPS``; three equally
    wide neighbours at one gap are common, four seldom), lines still three; so each signal
    is a detection of its own, its edges within 10 % of its width."""
    from cvstream.blocks.lines import STEADY_MIN_HUMPS, join_line_spectra
    humps = [(0, 18), (20, 38), (40, 58)]
    assert join_line_spectra(humps) == [(0, 58)]
    assert join_line_spectra(humps, min_humps=STEADY_MIN_HUMPS) == humps
    assert join_line_spectra(humps + [(60, 78)], min_humps=STEADY_MIN_HUMPS) == [(0, 78)]
    assert join_line_spectra([(0, 2), (10, 12), (20, 23)], min_humps=STEADY_MIN_HUMPS) == \
        [(0, 23)]
    n = 262144
    t = np.arange(n)
    for seed in range(2):
        rng = np.random.default_rng(seed)
        x, truth = _white(rng, n), []
        for kind, centre, snr_db in (("qpsk", 0.3, 12), ("16qam", 0.3245, 7),
                                     ("qpsk", 0.349, 15)):
            wave, bw = generate(rng, kind, n, 0.022)
            x = x + np.sqrt(10 ** (snr_db / 10) * bw) * wave * np.exp(2j * np.pi * centre * t)
            truth.append((centre - bw / 2, centre + bw / 2))
        got = _segmented(x)
        assert len(got) == 3
        for m, (lo, hi) in zip(got, truth):
            assert m["sample_count"] == n
            assert m["freq_lower_edge"] == pytest.approx(lo, abs=0.1 * (hi - lo))
            assert m["freq_upper_edge"] == pytest.approx(hi, abs=0.1 * (hi - lo))


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
        x = _white(rng, n) + 10 ** 0.75 * np.sqrt(bw) * wave * np.exp(2j * np.pi * 0.06 * t)
        x = x + np.sqrt(10 ** 1.3 / tile) * np.exp(2j * np.pi * (0.0865 * t + rng.random()))
        got = [m for m in _segmented(x) if m["freq_lower_edge"] > 0.08]
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
        x = _white(rng, n) + np.sqrt(10 ** 0.8 * 2 * (dev + fm)) * \
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
        x = _white(rng, n)
        centre = 0.1667 + 0.01 * seed
        on = (t >= 147000) & (t < 147000 + 5 * tile)
        x = x + on * np.sqrt(10 ** 3 / tile) * np.exp(2j * np.pi * (centre * t + rng.random()))
        got = [m for m in _segmented(x) if abs(m["freq_lower_edge"] - centre) < 0.001]
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
        x = _white(rng, n) + np.sqrt(10 ** 1.3 / tile) * \
            np.exp(2j * np.pi * (centre * t + rng.random()))
        on = (t >= n // 3) & (t < 2 * n // 3)
        x = x + on * _band_noise(rng, n, centre + 0.0035, centre + 0.0088, 0.0003, 16)
        got = _segmented(x)
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
        x = _white(rng, n) + np.sqrt(power) * np.exp(2j * np.pi * (centre * t + rng.random()))
        return _segmented(x)
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
        x = _white(rng, n) + _band_noise(rng, n, lo + 0.02, lo + 0.024, 0.0003, 14) + \
            burst * _band_noise(rng, n, lo, lo + 0.06, 0.0003, 18) + \
            _band_noise(rng, n, lo - 0.02, lo - 0.005, 0.0003, 12)
        return [(m["sample_start"], m["sample_start"] + m["sample_count"],
                 m["freq_lower_edge"] - lo, m["freq_upper_edge"] - lo) for m in _segmented(x)]
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


def test_a_tone_in_the_valley_between_two_flat_neighbours_is_a_detection_of_its_own():
    """An OFDM signal, a CW tone 0.2 % of the band past its edge and a QPSK signal 0.2 %
    past the tone (GNU Radio's packed scenes: seed 5678 #35 put a tone between two OFDM
    signals). The finer view blurs the three into one run, too wide for the block-long
    PSD's cut; there the tone is a line in a valley between two flat spectra, which hold
    no lines of their own (``tone_cuts``): three detections, the tone's one bin wide.
    Beside an FM's lines (a neighbour that is not flat) or between an AM carrier's mirrored
    sidebands the line stays inside."""
    from cvstream.blocks.lines import LINE_GAP, tone_cuts
    from cvstream.blocks.psd_runs import split_finer

    def cuts(psd):
        return tone_cuts(psd, 1.64, split_finer(psd, 1.64, 990, 1310, LINE_GAP, 15.0), 990,
                         1310)
    rng = np.random.default_rng(3)
    psd = rng.uniform(0.8, 1.2, 8192)
    psd[1000:1200] *= 300
    psd[1214:1217] *= [60, 400, 60]   # a tone, spread over three bins by the window
    psd[1231:1300] *= 200
    assert cuts(psd) == [(990, 1200), (1214, 1217), (1231, 1310)]
    peaky = psd.copy()
    peaky[1000:1200:6] *= 30          # a comb of lines (an FM's): not flat
    assert cuts(peaky) == []
    mirror = psd.copy()
    mirror[1231:1300] = psd[1131:1200]
    mirror[1000:1131] = 1.0           # sidebands as wide and strong, as far from it
    assert cuts(mirror) == []
    n = 262144
    t = np.arange(n)
    for seed in range(2):
        rng = np.random.default_rng(seed)
        x, truth = _white(rng, n), []
        for kind, lo, width, snr_db in (("ofdm", -0.35, 0.025, 25), ("cw", -0.3232, 0, 25),
                                        ("qpsk", -0.3212, 0.0035, 25)):
            wave, bw = generate(rng, kind, n, max(width, 0.0025))
            bw = bw if width else 1 / 8192
            centre = lo + bw / 2
            x = x + np.sqrt(10 ** (snr_db / 10) * max(bw, 1 / 8192)) * wave * \
                np.exp(2j * np.pi * centre * t)
            truth.append((lo, lo + bw))
        got = _segmented(x)
        assert len(got) == 3 and got[1]["label"] == "tone"
        for m, (lo, hi) in zip(got, truth):
            assert m["sample_count"] >= 0.9 * n
            reach = max(0.1 * (hi - lo), 2 / 8192)
            assert m["freq_lower_edge"] == pytest.approx(lo, abs=reach)
            assert m["freq_upper_edge"] == pytest.approx(hi, abs=reach)


def _band_noise(rng, n: int, lo: float, hi: float, roll: float, snr_db: float):
    """A noise-like signal over [lo, hi) of the band, in-band SNR ``snr_db``, its spectrum
    falling off over ``roll`` across each edge (a raised cosine: GNU Radio's RRC
    signals' skirts)."""
    f = np.fft.fftfreq(n)
    edge = np.clip(np.minimum(f - lo, hi - f) / roll + 0.5, 0.0, 1.0)
    y = np.fft.ifft(np.fft.fft(_white(rng, n)) * np.sin(0.5 * np.pi * edge))
    return y * np.sqrt(10 ** (snr_db / 10) * (hi - lo) / np.mean(np.abs(y) ** 2))


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
    x = _white(rng, n) + sum(_band_noise(rng, n, *band) for band in bands)

    def parts():
        track, frames = _fine_track(x.astype(np.complex64), -0.385, -0.32, rows=True)
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
    x, truth = _white(rng, n), []
    for kind, lo, width, snr_db, start in signals:
        wave, bw = generate(rng, kind, n, width)
        x = x + np.sqrt(10 ** (snr_db / 10) * bw) * wave * \
            np.exp(2j * np.pi * (lo + bw / 2) * t) * (t >= start)
        truth.append((lo, lo + bw, start))

    def edges():
        got = _segmented(x)
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


def test_a_tone_cut_from_an_fm_track_that_comes_and_goes_with_it_is_its_line():
    """GNU Radio's narrow FM bursts left their outer lines as ``tone`` detections beside
    them, in the blocks they held. A tone cut from the same track as an ``analog`` or
    ``fsk`` part, within that part's width past its band, that starts with it (both after
    the stream's start) or ends with it (before the stream's end) is its line; one that
    is not beside such a part, or is further off, or shares no start or end with it (a
    continuous tone beside a continuous FM: both from the stream's start to its end), or
    beside a PSK, stays."""
    from cvstream.blocks.detections import sibling_lines
    from cvstream.blocks.tracks import Track
    block = 8192

    def part(label, lo, hi, start=10 * block, stop=40 * block):
        out = Track(start, stop, lo, hi, 20.0)
        out.label = label
        return out
    fm = part("analog", 0.30, 0.31)
    assert sibling_lines([fm, part("tone", 0.3152, 0.3153)], block, False) == [1]
    assert sibling_lines([part("tone", 0.2950, 0.2951), fm], block, True) == [0]  # starts
    assert sibling_lines([fm, part("tone", 0.3152, 0.3153, 0, 40 * block)], block,
                         False) == [1]                                          # ends
    assert sibling_lines([fm, part("tone", 0.3152, 0.3153, 0, 40 * block)], block,
                         True) == []                        # ends only with the stream
    assert sibling_lines([fm, part("tone", 0.3252, 0.3253)], block, False) == []  # far
    assert sibling_lines([fm, part("tone", 0.3152, 0.3153, 20 * block, 30 * block)],
                         block, False) == []                # its own time
    assert sibling_lines([part("psk", 0.30, 0.31), part("tone", 0.3152, 0.3153)], block,
                         False) == []
    steady = part("analog", 0.30, 0.31, 0, 64 * block)
    assert sibling_lines([steady, part("tone", 0.3152, 0.3153, 0, 64 * block)], block,
                         True) == []                        # continuous, both
    assert sibling_lines([part("fsk", 0.30, 0.31), part("tone", 0.3152, 0.3153),
                          part("tone", 0.3172, 0.3173)], block, False) == [1, 2]


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
    track, frames = _fine_track((noise + tone).astype(np.complex64), 0.19, 0.21)
    (part,) = refine_edges(track, frames, margin=1 / 256)
    assert part.f_low < 0.2 < part.f_high and part.f_high - part.f_low < 5 / 1024
    # nothing above the noise: the coarse edges stay
    track, frames = _fine_track(noise.astype(np.complex64), 0.1, 0.12)
    (part,) = refine_edges(track, frames, margin=1 / 256)
    assert (part.f_low, part.f_high) == (0.1, 0.12)


def test_tracks_keep_a_swept_band_and_ignore_one_wide_block():
    """A chirp seen as a narrow run moving across the band (restarting at the bottom after
    each sweep) is one detection covering the swept band; a steady signal that one block
    saw merged with a neighbour keeps its own edges."""
    from cvstream.blocks.tracks import Tracker
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
    from cvstream.blocks.tracks import Tracker
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
    from cvstream.blocks.tracks import Tracker
    tracker = Tracker(max_blocks=100)
    pieces = []
    for block in range(1050):
        pieces += tracker.update(block * 10, block * 10 + 10, [(0.10, 0.12, 20.0, "cw")])
        assert all(len(t.edges) <= 100 for t in tracker.open)
    pieces += tracker.flush()
    assert [(t.start, t.stop) for t in pieces] == [(k * 1000, min(k * 1000 + 1000, 10500))
                                                   for k in range(11)]
    assert all((t.f_low, t.f_high) == pytest.approx((0.10, 0.12)) for t in pieces)


def test_iou_and_matching():
    a = ev.Box(0, 100, 0.0, 0.1)
    assert ev.iou(a, a) == 1.0
    assert ev.iou(a, ev.Box(50, 150, 0.0, 0.1)) == pytest.approx(1 / 3)
    assert ev.iou(a, ev.Box(100, 200, 0.0, 0.1)) == 0.0
    pairs = ev.match([a, ev.Box(0, 100, 0.2, 0.3)], [ev.Box(0, 90, 0.2, 0.3), a])
    assert sorted(pairs) == [(0, 1), (1, 0)]


def test_recall_is_split_into_isolated_and_overlapped_signals():
    wide, inner = ev.Box(0, 1000, 0.0, 0.2), ev.Box(200, 600, 0.05, 0.08)
    alone = ev.Box(0, 1000, 0.3, 0.35)
    assert ev.overlapping([wide, inner, alone]) == [0, 1]
    tally = ev.Tally()
    tally.add([wide, inner, alone], [ev.Box(0, 1000, 0.0, 0.21), alone], 1000)
    row = tally.row()
    assert row["det_recall"] == pytest.approx(2 / 3)
    assert row["det_recall_isolated"] == 1.0 and row["det_recall_overlapped"] == 0.5
    assert row["det_f1"] == pytest.approx(0.8)
    assert row["label_confusion"] is None  # a detector without families


def test_hidden_signals_are_those_under_stronger_ones():
    """A signal is hidden where stronger signals cover most of its box; the recall of the
    visible ones leaves it out."""
    wide = ev.Box(0, 1000, 0.0, 0.2, snr_db=20.0)
    weak_inner = ev.Box(200, 600, 0.05, 0.08, snr_db=10.0)      # under the wide one
    strong_inner = ev.Box(200, 600, 0.10, 0.12, snr_db=25.0)    # stands above it
    straddling = ev.Box(0, 1000, 0.15, 0.30, snr_db=5.0)        # a third under it
    assert ev.hidden([wide, weak_inner, strong_inner, straddling]) == [1]
    assert ev.hidden([wide, weak_inner], share=0.99) == [1]     # covered entirely
    tally = ev.Tally()
    tally.add([wide, weak_inner, strong_inner], [ev.Box(0, 1000, 0.0, 0.2),
                                                 ev.Box(200, 600, 0.10, 0.12)], 1000)
    row = tally.row()
    assert row["hidden_share"] == pytest.approx(1 / 3)
    assert row["det_recall"] == pytest.approx(2 / 3) and row["det_recall_visible"] == 1.0


def test_label_confusion_is_tallied_and_printed():
    psk, fsk = ev.Box(0, 1000, 0.0, 0.1, "psk"), ev.Box(0, 1000, 0.3, 0.35, "fsk")
    tally = ev.Tally()
    tally.add([psk, fsk, psk], [ev.Box(0, 1000, 0.0, 0.1, "qam"),
                                ev.Box(0, 1000, 0.3, 0.35, "fsk"),
                                ev.Box(0, 1000, 0.5, 0.6, "unknown")], 1000)
    tally.add([psk], [ev.Box(0, 1000, 0.0, 0.1, "unknown")], 1000)
    row = tally.row()
    assert row["label_confusion"] == {"psk": {"qam": 1, "unknown": 1}, "fsk": {"fsk": 1}}
    assert row["label_accuracy"] == pytest.approx(1 / 3)   # unknown is not right
    text = ev.format_labels({"10..20 dB": {"segmenter": row}, "-10..0 dB": {"segmenter": row}})
    assert "psk | 0 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 1 | 0.00 | 0.00" in text
    assert "fsk | 0 | 0 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 1.00 | 1.00" in text  # -10..0 left out


def test_evaluation_table_for_cfar():
    table = ev.evaluate({"cfar": ev.cfar_detect()}, scenes_per_bucket=2, samples=65536)
    assert list(table) == ["-10..0 dB", "0..10 dB", "10..20 dB", "20..30 dB"]
    hi = table["20..30 dB"]["cfar"]
    lo = table["-10..0 dB"]["cfar"]
    assert hi["cell_recall"] > lo["cell_recall"]
    assert 0.5 < hi["bin_accuracy"] <= 1.0 and hi["label_accuracy"] is None
    text = ev.format_table(table)
    assert text.count("| cfar |") == 4


def test_spectrum_demo_graph(tmp_path):
    res = run_cli("run", str(GRAPHS / "spectrum_demo.yml"), "--set", "scenes=2",
                  "--set", f"output={tmp_path / 'demo.sigmf-meta'}",
                  "--set", f"picture={tmp_path / 'demo.png'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "detections:" in res.stdout
    png = (tmp_path / "demo.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000
    from sigmf import sigmffile
    rec = sigmffile.fromfile(str(tmp_path / "demo.sigmf-meta"))
    ann = rec.get_annotations()
    assert rec.get_captures()[0]["core:frequency"] == 2.45e9
    assert ann and all(2.44e9 <= a["core:freq_lower_edge"] <= 2.46e9 for a in ann)
    assert all("cvstream:confidence" in a for a in ann)
    n_table = int(res.stdout.split(" detections")[0].split()[-1])
    assert n_table == len(ann)


def test_segmenter_training_path_and_block(tmp_path):
    """A tiny training run exports a model the spectrum_segmenter block runs."""
    pytest.importorskip("torch")
    from cvstream.blocks.segmenter import SpectrumSegmenter
    from cvstream.models.export import export_model
    from cvstream.models.spectrum import segmenter as seg
    losses = []
    model = seg.train(steps=3, scenes_per_step=1, progress=lambda d, n, loss: losses.append(loss))
    assert len(losses) == 3 and all(np.isfinite(losses))
    path = str(tmp_path / "tiny_seg.onnx")
    export_model(model, seg.contract(), path)
    block = SpectrumSegmenter(model=path, threshold=0.0, rate=20e6, freq=1e9)
    x, _ = scene(np.random.default_rng(0), SceneConfig(samples=8 * seg.TILE))
    block.process(x)
    block.flush()
    msgs = block.take_messages()
    # threshold 0 marks every cell present: one detection per label run, covering the band
    assert msgs and all(m["label"] in CLASSES for m in msgs)
    assert all(990e6 <= m["freq_lower_edge"] < m["freq_upper_edge"] <= 1010e6 for m in msgs)
    with pytest.raises(Exception, match="needs a spectrum_segmentation model"):
        SpectrumSegmenter(model="builtin:iq_denoiser")


def test_segmenter_training_is_reproducible_from_its_seed():
    """Two tiny runs from one seed give the same weights to the bit, which is how the
    shipped segmenters are retrained (``cvstream models train spectrum_segmenter --seed
    0``); another seed draws other scenes and gives others."""
    pytest.importorskip("torch")
    from cvstream.models.spectrum import segmenter as seg

    def weights(seed):
        model = seg.train(steps=2, seed=seed, scenes_per_step=1)
        return [p.detach().numpy().copy() for p in model.parameters()]
    first, again, other = weights(3), weights(3), weights(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_block_tiles_are_the_training_tiles(tmp_path):
    """The block's FFTs (window x (-1)^n, no fftshift pass) equal the training pipeline's
    tiles, and its per-bin power is their mean cell power."""
    from cvstream.blocks.segmenter import SpectrumSegmenter
    from cvstream.blocks.tile_spectra import noise_floor, normalize_tiles
    from cvstream.models.spectrum import segmenter as seg
    x, _ = scene(np.random.default_rng(8), SceneConfig(samples=4 * seg.TILE))
    raw = seg.stft_tiles(x)
    # a model trained on one floor per tile (as before) gets tiles scaled so
    from cvstream.models.export import export_model
    path = str(tmp_path / "per_tile.onnx")
    c = seg.contract()
    c["normalization"] = "noise_floor"
    export_model(seg.build(), c, path)
    tiles, power, floor, _ = SpectrumSegmenter(model=path, family="").spectra.prepare(x)
    want = normalize_tiles(raw)
    np.testing.assert_allclose(tiles[..., 0] + 1j * tiles[..., 1], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(power, np.mean(np.abs(want) ** 2, axis=1), rtol=1e-4)
    # the shipped model: per-bin tiles; the cell power (SNR, fine PSD) stays in units of the
    # tile's one floor
    block = SpectrumSegmenter()
    assert block.contract.normalization == seg.NORMALIZATION == "noise_floor_per_bin"
    tiles, power, floor, _ = block.spectra.prepare(x)
    want = normalize_tiles(raw, per_bin=True)
    np.testing.assert_allclose(tiles[..., 0] + 1j * tiles[..., 1], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(floor, noise_floor(raw), rtol=1e-6)
    np.testing.assert_allclose(power, np.mean(np.abs(raw) ** 2, axis=1) / floor[:, None],
                               rtol=1e-4)


def test_per_bin_noise_floor_follows_a_tilted_floor():
    """A floor tilted by 4-6 dB across the band with a ripple, over a third of the band
    under strong signals: the per-bin floor is within 0.6 dB of the true density on
    average at the free bins (a quadratic leaves the ripple: at most 2 dB), the one
    scale per tile off by more than twice that; on white noise it is flat within 1 dB."""
    from cvstream.blocks.tile_spectra import noise_floor, noise_floor_per_bin
    from cvstream.models.spectrum import segmenter as seg, variety
    rng = np.random.default_rng(2)
    n = 8 * seg.TILE
    while True:
        noise, density = variety.tilted_noise(rng, n)
        if max(density(0.45) / density(-0.45), density(-0.45) / density(0.45)) > 2.5:
            break
    t = np.arange(n)
    x = noise.copy()
    for centre, width in ((-0.3, 0.15), (0.1, 0.2)):
        x += 30 * variety.fsk(rng, n, width, levels=2, index=1.0, bt=0.5) * np.exp(
            2j * np.pi * centre * t)
    tiles = seg.stft_tiles(x.astype(np.complex64))
    floor = noise_floor_per_bin(tiles)
    freqs = (np.arange(seg.FFT) - seg.FFT // 2) / seg.FFT
    truth = np.array([density(f) for f in freqs])
    free = (np.abs(freqs + 0.3) > 0.09) & (np.abs(freqs - 0.1) > 0.12)
    err = np.abs(10 * np.log10(floor[:, free] / truth[free]))
    scalar = np.abs(10 * np.log10(noise_floor(tiles)[:, None] / truth[free]))
    assert err.mean() < 0.6 and err.max() < 2.0     # a quadratic: the ripple is left
    assert scalar.mean() > 2 * err.mean() and scalar.max() > 2.5
    white = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    level = 10 * np.log10(noise_floor_per_bin(seg.stft_tiles(white.astype(np.complex64))))
    assert np.abs(level).max() < 1.0 and np.ptp(level, axis=1).max() < 1.0


@pytest.mark.parametrize("activation,frames", [("modrelu", 32), ("mixed", 32), ("crelu", 32),
                                               ("modrelu", 16)])
def test_segmenter_variants_export_exactly(tmp_path, activation, frames):
    """Every activation of the ablation, and a shorter tile, exports to ONNX with the torch
    model's outputs; the contract records the tile's frames."""
    torch = pytest.importorskip("torch")
    from cvstream.blocks.onnx_model import make_session
    from cvstream.contract import read_contract
    from cvstream.models.export import export_model
    from cvstream.models.spectrum import segmenter as seg
    model = seg.build(activation=activation, frames=frames).eval()
    path = str(tmp_path / f"{activation}.onnx")
    export_model(model, seg.contract(frames=frames), path)
    assert read_contract(path).preprocess["stft"]["frames"] == frames
    x = np.random.default_rng(9).standard_normal((3, frames, seg.FFT, 2)).astype(np.float32)
    got = make_session(path).run(None, {"frames": x})[0]
    np.testing.assert_allclose(got, model(torch.from_numpy(x)).detach().numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="activation"):
        seg.build(activation="tanh")


def test_tile_labels_follow_the_boxes():
    from cvstream.models.spectrum import segmenter as seg
    from cvstream.models.spectrum.synth import SignalLabel
    lab = SignalLabel("qpsk", "psk", seg.TILE, 3 * seg.TILE, 0.1, 0.2, 10.0)
    grid = seg.tile_labels([lab], 4 * seg.TILE)
    assert grid.shape == (4, seg.FFT)
    bins = (np.arange(seg.FFT) - seg.FFT // 2) / seg.FFT
    inside = (bins > 0.11) & (bins < 0.19)
    assert np.all(grid[1:3][:, inside] == 1 + CLASSES.index("psk"))
    assert np.all(grid[0] == 0) and np.all(grid[3] == 0)


def test_spectrum_sigmf_graph_on_a_ci16_recording(tmp_path):
    """graphs/spectrum_sigmf.yml on a ci16 recording at 2.4 Msps centred on 100 MHz: the
    strong signal comes back as an annotation with absolute edges in Hz and a label."""
    from cvstream.blocks.formats import FORMATS
    x, labels = scene(np.random.default_rng([3, 3]), SceneConfig(
        samples=16 * 4096, snr_db=(25, 25), burst_probability=0.0, max_bw=0.1), n_signals=1)
    raw, _ = FORMATS["ci16"].encode(x / np.abs(x).max() * 0.5)
    raw.tofile(tmp_path / "rec.sigmf-data")
    (tmp_path / "rec.sigmf-meta").write_text(json.dumps({
        "global": {"core:datatype": "ci16_le", "core:sample_rate": 2.4e6,
                   "core:version": "1.2.0"},
        "captures": [{"core:sample_start": 0, "core:frequency": 100e6}], "annotations": []}))
    res = run_cli("run", str(GRAPHS / "spectrum_sigmf.yml"),
                  "--set", f"input={tmp_path / 'rec.sigmf-meta'}",
                  "--set", f"output={tmp_path / 'out.sigmf-meta'}")
    assert res.returncode == 0, res.stderr
    ann = json.loads((tmp_path / "out.sigmf-meta").read_text())["annotations"]
    lab = labels[0]
    lo, hi = 100e6 + lab.f_low * 2.4e6, 100e6 + lab.f_high * 2.4e6
    hits = [a for a in ann if a["core:freq_lower_edge"] < hi and a["core:freq_upper_edge"] > lo]
    assert hits and hits[0]["core:label"] in CLASSES
    assert abs(hits[0]["core:freq_lower_edge"] - lo) < 0.1 * 2.4e6
    bad = run_cli("run", str(GRAPHS / "spectrum_sigmf.yml"),
                  "--set", f"input={tmp_path / 'missing.sigmf-meta'}")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def _four_signal_scene():
    """Four signals at 20 dB in-band: a narrow QPSK, a 16QAM burst, an OFDM burst, FM."""
    rng = np.random.default_rng(12)
    n = 64 * 4096
    x = ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2))
    truth, t = [], np.arange(n)
    for kind, centre, width, (a, b) in (("qpsk", -0.3, 0.006, (0, n)),
                                        ("16qam", 0.0, 0.05, (n // 4, n)),
                                        ("ofdm", 0.25, 0.1, (0, n // 2)),
                                        ("fm", -0.1, 0.02, (0, n))):
        wave, bw = generate(rng, kind, n, width)
        env = np.zeros(n)
        env[a:b] = 1
        x = x + np.sqrt(100 * bw) * wave * env * np.exp(2j * np.pi * centre * t)
        truth.append(ev.Box(a, b, centre - bw / 2, centre + bw / 2))
    return x.astype(np.complex64), truth


def test_shipped_segmenter_boxes_every_signal_with_refined_edges():
    """The shipped model through the block: every signal matched at IoU >= 0.5, and the
    fine PSD is what makes the narrow one (0.6 % of the band, 1.5 coarse bins) match."""
    from cvstream.models.spectrum.segmenter import detector
    x, truth = _four_signal_scene()
    pred = detector("builtin:spectrum_segmenter")(x)
    pairs = ev.match(truth, pred)
    assert len(pairs) == 4 and len(pred) == 4
    assert all(ev.iou(truth[i], pred[j]) > 0.6 for i, j in pairs)
    coarse = detector("builtin:spectrum_segmenter", refine=0)(x)
    assert 0 not in dict(ev.match(truth, coarse))  # the narrow QPSK's coarse box fails


def test_tracks_with_equal_fields_are_distinct_signals():
    """Two signals can share every field of a track (start, stop, band, PSD): each is its
    own track, and finding one among open tracks does not compare their PSD arrays."""
    from cvstream.blocks.tracks import Track
    psd = np.ones(8)
    a, b = (Track(0, 4, 0.1, 0.2, 10.0, spectrum=psd.copy(), spectra=1) for _ in range(2))
    assert a != b and a == a
    assert a in [b, a] and [b, a].index(a) == 1


def test_family_features_see_shape_and_motion():
    """A chirp's blocks sweep its band; a steady signal's stay: the motion features tell
    them apart, and the profile is its PSD's shape below the peak."""
    from cvstream.blocks.family_features import FAMILY_FEATURES, FAMILY_PROFILE, family_features
    from cvstream.blocks.tracks import Track
    psd = np.ones(1024)
    psd[600:640] = 100.0                       # 20 dB above the noise, 40 bins wide
    lo, hi = (600 - 512 - 0.5) / 1024, (640 - 512 - 0.5) / 1024
    steady = Track(0, 10, lo, hi, 20.0, spectrum=psd, spectra=1, edges=[(lo, hi)] * 8)
    sweep = [(lo + k * (hi - lo) / 8, lo + (k + 1) * (hi - lo) / 8) for k in range(8)]
    chirp = Track(0, 10, lo, hi, 20.0, spectrum=psd, spectra=1, edges=sweep)
    a, b = family_features(steady), family_features(chirp)
    assert a.shape == (FAMILY_FEATURES,) and a.dtype == np.float32
    profile = a[:FAMILY_PROFILE]
    assert profile.max() == 0.0 and profile[0] == -1.0 and profile[FAMILY_PROFILE // 2] == 0.0
    assert a[FAMILY_PROFILE + 1] == pytest.approx(2.0, abs=0.05)   # peak 20 dB / 10
    spread, width = FAMILY_PROFILE + 2, FAMILY_PROFILE + 3
    assert a[spread] == 0.0 and a[width] == pytest.approx(1.0)     # steady, full width
    assert b[spread] > 0.5 and b[width] < 0.2                      # swept, narrow blocks
    assert a[-3] == a[-2] == a[-1] == 0.0                          # no samples kept
    assert family_features(Track(0, 10, lo, hi, 20.0)) is None      # no fine PSD
    # with each block's own fine PSD (rows), a part cut from a track that held a neighbour
    # measures its own motion, not the whole track's edges (here 8 x its band)
    wide = [(lo - 4 * (hi - lo), hi + 3 * (hi - lo))] * 8
    rows = [(k * 8192, psd) for k in range(8)]
    steady = Track(0, 10, lo, hi, 20.0, spectrum=psd * 8, spectra=8, edges=wide, rows=rows)
    sweeping = []
    for k in range(8):
        row = np.ones(1024)
        row[600 + 5 * k:605 + 5 * k] = 100.0
        sweeping.append((k * 8192, row))
    chirp = Track(0, 10, lo, hi, 20.0, spectrum=psd * 8, spectra=8, edges=wide, rows=sweeping)
    a, b = family_features(steady), family_features(chirp)
    assert a[spread] == 0.0 and 0.75 < a[width] < 0.9              # 10-90 % of a flat band
    assert b[spread] > 0.5 and b[width] < 0.2


def test_frequency_features_tell_tone_fm_from_fsk():
    """At 20 dB in-band SNR: FM by one tone has an arcsine-distributed instantaneous
    frequency (4th moment ~1.5) and a line spectrum (its strongest twentieth of bins holds
    most of the power); two-level FSK, rectangular or Gaussian, sits near 1 and spreads its
    power; a GMSK signal's spectrum is a smooth hump. The FM's frequency swings as a
    sinusoid: its strongest line stands out (log10 of peak over mean against ln(bins)
    above 0.7), also where the deviation is 30 times the tone and the PSD shows no lines,
    and in a band of 0.4 % (131 samples in band); FSK's stays under 0.45 at both widths."""
    from cvstream.blocks.family_features import envelope_features
    from cvstream.models.spectrum import variety
    rng = np.random.default_rng(8)
    n = 4 * 8192
    t = np.arange(n)
    waves = {"fm": (np.exp(3j * np.sin(2 * np.pi * 0.002 * t)), 0.016),
             "fm30": (np.exp(30j * np.sin(2 * np.pi * 0.0003 * t)), 0.02),
             "2fsk": (variety.fsk(rng, n, 0.02, levels=2, index=1.0, bt=0), 0.02),
             "gmsk": (variety.fsk(rng, n, 0.02, levels=2, index=0.5, bt=0.3), 0.02)}
    feats = {}
    for name, (wave, bw) in waves.items():
        noise = rng.standard_normal((n, 2)) @ [1, 1j] * np.sqrt(bw * 10 ** (-20 / 10) / 2)
        x = wave + noise
        feats[name] = envelope_features([(k * 8192, x[k * 8192:(k + 1) * 8192])
                                         for k in range(4)], -bw / 2, bw / 2)
    assert 1.4 < feats["fm"][2] < 1.7 and feats["fm"][3] > 0.65
    assert feats["2fsk"][2] < 1.3 and feats["gmsk"][2] < 1.3
    assert feats["gmsk"][3] < 0.5
    assert feats["fm"][4] > 0.7 and feats["fm30"][4] > 0.7
    assert feats["2fsk"][4] < 0.45 and feats["gmsk"][4] < 0.45
    bw, t = 0.004, np.arange(n)
    narrow = {"fm": np.exp(5j * np.sin(2 * np.pi * bw / 12 * t)),
              "2fsk": variety.fsk(rng, n, bw, levels=2, index=1.0, bt=0),
              "gmsk": variety.fsk(rng, n, bw, levels=2, index=0.5, bt=0.3)}
    for name, wave in narrow.items():
        x = wave + rng.standard_normal((n, 2)) @ [1, 1j] * np.sqrt(bw * 10 ** (-20 / 10) / 2)
        line = envelope_features([(k * 8192, x[k * 8192:(k + 1) * 8192]) for k in range(4)],
                                 -bw / 2, bw / 2)[4]
        assert (line > 0.7) if name == "fm" else (line < 0.45), (name, line)
    assert feats["fm30"][3] < feats["2fsk"][3]         # no lines in its PSD
    assert envelope_features([], 0.0, 0.1) == (0.0,) * 5


@pytest.mark.parametrize("kind", ["bpsk", "qpsk", "8psk", "16qam", "64qam"])
def test_envelope_features_tell_qam_from_psk(kind):
    """Through root-raised-cosine pulses and 20 dB of in-band noise, on the samples of a
    track's first tiles: QAM's 4th moment stands above PSK's, BPSK's squared envelope
    holds a line, and the track keeps copies of its first blocks only: SAMPLE_LIMIT samples
    or more, until ENVELOPE_IN_BAND of them fall in its band."""
    from cvstream.blocks.family_features import envelope_features
    from cvstream.blocks.tracks import ENVELOPE_IN_BAND, SAMPLE_LIMIT, Track
    from cvstream.models.spectrum.waveforms import linear
    rng = np.random.default_rng(3)
    wave, bw = linear(rng, 16 * 4096, 0.05, kind)
    x = wave * np.exp(2j * np.pi * 0.1 * np.arange(len(wave)))
    noise = rng.standard_normal((len(x), 2)) @ [1, 1j] * np.sqrt(bw * 10 ** (-20 / 10) / 2)
    track = Track(0, 1, 0.1 - bw / 2, 0.1 + bw / 2, 20.0)
    for k, block in enumerate((x + noise).reshape(16, 4096)):
        track.add_samples(k * 4096, block)
    held = sum(len(x) for _, x in track.samples)
    assert held >= SAMPLE_LIMIT and held * bw >= ENVELOPE_IN_BAND > (held - 4096) * bw
    assert track.envelope_blocks() == track.samples
    kurtosis, line, *_ = envelope_features(track.samples, track.f_low, track.f_high)
    if kind.endswith("qam"):
        assert 1.4 < kurtosis < 1.7 and line < 0.1
    elif kind == "bpsk":
        assert 1.3 < kurtosis < 1.5 and line > 0.3
    else:
        assert kurtosis < 1.35 and line < 0.1


def test_a_part_cut_later_from_a_track_has_its_own_samples():
    """A track that began on noise-like blocks (a neighbour it held first) and later held a
    constant-envelope burst: the part cut over the burst takes its envelope statistics from
    the burst's own blocks (4th moment ~1), not from the track's first blocks (~2). Later
    blocks are kept thinned, never more than LATER_BLOCKS."""
    from cvstream.blocks.family_features import FAMILY_PROFILE, family_features
    from cvstream.blocks.tracks import LATER_BLOCKS, SAMPLE_LIMIT, Track
    rng = np.random.default_rng(4)
    block, count = 8192, 40
    psd = np.ones(1024)
    psd[462:563] = 10.0
    rows = [(k * block, psd) for k in range(count)]
    track = Track(0, count * block, -0.05, 0.05, 20.0, spectrum=psd * count, spectra=count,
                  edges=[(-0.05, 0.05)] * count, seen=[k * block for k in range(count)],
                  rows=rows)
    t = np.arange(block)
    for k in range(count):
        if k < 20:   # Gaussian-like: a 4th moment of 2
            x = rng.standard_normal((block, 2)) @ [1, 1j]
        else:        # an FM burst: constant envelope
            x = np.exp(1j * 3 * np.sin(2 * np.pi * 0.001 * (t + k * block)))
        track.add_samples(k * block, x.astype(np.complex64))
    assert len(track.samples) == SAMPLE_LIMIT // block and len(track.later) <= LATER_BLOCKS
    later = [start // block for start, _ in track.later]
    assert later[0] == SAMPLE_LIMIT // block and later[-1] >= 32 and later == sorted(later)

    def part(a, b):
        return track.span(rows[a:b], a * block, b * block)
    kurtosis = FAMILY_PROFILE + 4                        # E|z|^4 / (E|z|^2)^2 - 1.5
    assert family_features(track)[kurtosis] + 1.5 > 1.8  # its first blocks: noise
    assert family_features(part(24, count))[kurtosis] + 1.5 < 1.1   # the burst's own
    assert family_features(part(8, 20))[kurtosis] + 1.5 > 1.8
    assert {s for s, _ in part(24, count).envelope_blocks()} <= \
        set(range(24 * block, count * block, block))


def test_a_narrow_track_keeps_enough_in_band_samples():
    """A wide track's statistics use its first SAMPLE_LIMIT samples; a narrower one keeps
    more of its first blocks, until ENVELOPE_IN_BAND of its samples fall in its band (2 %
    of the band: 13 blocks of 8192), up to NARROW_SAMPLE_BLOCKS (0.4 % of the band), and
    then its statistics go on into its later, thinned blocks."""
    from cvstream.blocks.tracks import ENVELOPE_IN_BAND, NARROW_SAMPLE_BLOCKS, SAMPLE_LIMIT, Track
    block = 8192
    x = np.ones(block, np.complex64)
    tracks = {width: Track(0, 1, 0.0, width, 10.0) for width in (0.1, 0.02, 0.004)}
    for k in range(40):
        for track in tracks.values():
            track.add_samples(k * block, x)

    def used(track):
        return [t // block for t, _ in track.envelope_blocks()]
    assert used(tracks[0.1]) == list(range(SAMPLE_LIMIT // block))
    first = int(np.ceil(ENVELOPE_IN_BAND / (block * 0.02)))
    assert first == 13 and used(tracks[0.02]) == list(range(first))
    narrow = tracks[0.004]
    assert len(narrow.samples) == NARROW_SAMPLE_BLOCKS
    assert used(narrow)[:NARROW_SAMPLE_BLOCKS] == list(range(NARROW_SAMPLE_BLOCKS))
    assert used(narrow) == sorted(used(narrow))
    assert len(used(narrow)) == NARROW_SAMPLE_BLOCKS + len(narrow.later)   # all it holds


def test_family_classifier_training_path_and_block(tmp_path):
    """A tiny run of the family training exports a classifier the block uses; a model of
    another task is refused in one line naming the parameter."""
    pytest.importorskip("torch")
    from cvstream.blocks.segmenter import SpectrumSegmenter
    from cvstream.errors import ParamError
    from cvstream.models import resolve_model
    from cvstream.contract import read_contract
    from cvstream.models.spectrum import family
    result = family.train_and_export(str(tmp_path), steps=20, scenes=4,
                                     segmenter=resolve_model("builtin:spectrum_segmenter"))
    assert result["examples"] >= 4 and 0 <= result["accuracy"] <= 1
    assert read_contract(str(tmp_path / "spectrum_family.onnx")).postprocess == {
        "temperature": result["temperature"]}
    block = SpectrumSegmenter(family=str(tmp_path / "spectrum_family.onnx"))
    x, _ = _four_signal_scene()
    block.process(x)
    block.flush()
    assert {m["label"] for m in block.take_messages()} <= set(CLASSES) | {"unknown"}
    with pytest.raises(ParamError, match="family.*needs a spectrum_family model"):
        SpectrumSegmenter(family="builtin:iq_denoiser")


def test_shipped_family_classifier_names_the_families():
    """The shipped classifier's contract and held-out accuracy, and its labels on the
    four-signal scene (16QAM may pass for PSK: the two share one spectral shape)."""
    from cvstream.blocks.family_features import FAMILY_FEATURES
    from cvstream.contract import read_contract
    from cvstream.models import resolve_model
    from cvstream.models.spectrum.segmenter import detector
    c = read_contract(resolve_model("builtin:spectrum_family"))
    assert c.task == "spectrum_family" and c.class_names == CLASSES
    assert c.inputs[0].item_shape == [FAMILY_FEATURES]
    assert c.evaluation["accuracy"] > 0.6 and c.evaluation["held_out"] > 300
    x, truth = _four_signal_scene()
    pred = detector("builtin:spectrum_segmenter")(x)
    labels = {i: pred[j].label for i, j in ev.match(truth, pred)}
    assert (labels[0], labels[2], labels[3]) == ("psk", "ofdm", "analog")
    assert labels[1] in ("qam", "psk")
    votes = detector("builtin:spectrum_segmenter", family="")(x)
    assert {b.label for b in votes} <= set(CLASSES)


def test_temperature_fit_and_reliability():
    """The temperature fit finds the one that generated the labels; the reliability bins
    and the expected calibration error count as they say."""
    from cvstream.models.spectrum.evaluate import expected_calibration_error, reliability
    from cvstream.blocks.family_features import family_probabilities
    from cvstream.models.spectrum.family import calibration_error, fit_temperature
    rng = np.random.default_rng(4)
    logits = 3 * rng.standard_normal((20000, 7))
    p = family_probabilities(logits, 2.5)
    y = np.array([rng.choice(7, p=row) for row in p])
    assert fit_temperature(logits, y) == pytest.approx(2.5, rel=0.05)
    assert calibration_error(logits, y, 2.5) < 0.02 < calibration_error(logits, y, 1.0)
    bins = reliability([(0.95, True)] * 9 + [(0.95, False), (0.31, False), (1.0, True)])
    assert bins[9] == [11, pytest.approx(10.5), 10] and bins[3] == [1, 0.31, 0]
    assert sum(n for n, _, _ in bins) == 12
    assert expected_calibration_error(bins) == pytest.approx((0.5 + 0.31) / 12)


def test_unsure_family_labels_are_unknown(tmp_path):
    """Below min_label_confidence the label is unknown, with the best family as the guess;
    the calibrated confidence rides along either way; the evaluation reads both and draws
    the reliability diagram."""
    from cvstream.models.spectrum.evaluate import boxes_from_messages, format_reliability
    x, truth = _four_signal_scene()
    runs = {}
    for level in (0.0, 1.0):
        block = SpectrumSegmenter(min_label_confidence=level)
        block.process(x)
        block.flush()
        runs[level] = block.take_messages()
    assert len(runs[0.0]) == len(runs[1.0]) >= 4
    for sure, unsure in zip(runs[0.0], runs[1.0]):
        assert sure["label"] in CLASSES and "label_guess" not in sure
        assert 1 / len(CLASSES) <= sure["label_confidence"] <= 1
        assert unsure["label"] == "unknown" and unsure["label_guess"] == sure["label"]
        assert unsure["label_confidence"] == sure["label_confidence"]
    boxes = boxes_from_messages(runs[1.0])
    assert [b.guess for b in boxes] == [m["label"] for m in runs[0.0]]
    tally = ev.Tally()
    tally.add(truth, boxes, len(x))
    row = tally.row()
    assert row["label_accuracy"] == 0 and sum(n for n, _, _ in row["label_reliability"]) == 4
    text = format_reliability({"10..20 dB": {"segmenter": row}})
    assert "(4; expected calibration error" in text and len(text.splitlines()) == 13
    png = ev.plot_reliability({"project": {"10..20 dB": {"segmenter": row}}},
                              str(tmp_path / "reliability.png"))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_refine_size_must_fit_the_tile():
    from cvstream.blocks.segmenter import SpectrumSegmenter
    from cvstream.errors import ParamError
    with pytest.raises(ParamError, match="refine.*divide its tile of 8192"):
        SpectrumSegmenter(refine=1000)
    with pytest.raises(ParamError, match="at least the model's FFT size 256"):
        SpectrumSegmenter(refine=128)
    # the fine PSD is in units of the coarse noise floor: white noise sits at 1 per bin
    rng = np.random.default_rng(6)
    noise = ((rng.standard_normal(32 * 8192) + 1j * rng.standard_normal(32 * 8192))
             / np.sqrt(2)).astype(np.complex64)
    block = SpectrumSegmenter()
    _, _, floor, _ = block.spectra.prepare(noise)
    fine = block.spectra.fine_psd(noise, floor)
    assert fine.shape == (32, 1024)
    assert np.mean(fine) == pytest.approx(1.0, rel=0.1)


def test_shipped_segmenter_contract_carries_its_evaluation():
    from cvstream.contract import read_contract
    from cvstream.models import resolve_model
    from cvstream.models.spectrum import segmenter as seg
    for name in ("spectrum_segmenter", "spectrum_segmenter_real"):
        c = read_contract(resolve_model(f"builtin:{name}"))
        assert c.preprocess["stft"]["fft"] == seg.FFT and c.chunk == seg.FRAMES
        assert set(c.evaluation) == {f"{lo}..{hi} dB" for lo, hi in ev.BUCKETS}
        row = c.evaluation["10..20 dB"]
        # the README's table: detection recall and precision above 0.7 at 10..20 dB
        assert row["det_recall"] > 0.7 and row["det_precision"] > 0.7


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


def _tones_in_noise(rng, n: int, tones) -> np.ndarray:
    """n samples of white noise (power 1) with CW tones (frequency, in-band SNR dB with the
    noise counted over 1/4000 of the band, as the GNU Radio evaluation set does)."""
    t = np.arange(n)
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    for f, snr in tones:
        x = x + np.sqrt(10 ** (snr / 10) / 4000) * np.exp(2j * np.pi * f * t)
    return x.astype(np.complex64)


def test_eval_variant_rows_run_the_block_with_their_parameters():
    """``cvstream models eval spectrum --variant weak_tones=false`` adds a row for the
    segmenter with that parameter: its detector, on a 5 dB tone (too weak for one tile)
    in noise, finds nothing where the shipped settings' row finds the tone; a variant the
    block refuses (a misspelt parameter, a wrong value) ends the command with one line
    naming the variant and the parameter, exit 2, before any recording is evaluated."""
    from cvstream.models import SHIPPED_DIR
    from cvstream.models.spectrum.segmenter import detectors
    found = detectors(str(SHIPPED_DIR), variants=[{"weak_tones": False}])
    assert list(found) == ["segmenter", "segmenter (weak_tones: false)", "real twin", "cfar"]
    x = _tones_in_noise(np.random.default_rng(6), 262144, ((0.21017, 5),))
    near = [[b for b in found[row](x) if abs(0.5 * (b.f_low + b.f_high) - 0.21017) < 1e-3]
            for row in ("segmenter", "segmenter (weak_tones: false)")]
    assert len(near[0]) == 1 and near[1] == []
    for bad, why in (("wek_tones=false", "'wek_tones': unknown parameter (did you mean "
                      "'weak_tones'?)"), ("weak_tones=maybe", "'weak_tones': expected true "
                                                              "or false")):
        res = run_cli("models", "eval", "spectrum", "--variant", bad)
        assert res.returncode == 2 and not res.stdout
        assert res.stderr.count("\n") == 1 and "--variant segmenter (" in res.stderr and \
            why in res.stderr
    res = run_cli("models", "eval", "spectrum", "--variant", "weak_tones")
    assert res.returncode == 2 and "expected PARAM=VALUE" in res.stderr.splitlines()[-1]


def test_weak_tones_are_found_in_the_cells_the_model_leaves():
    """Tones at 11 and 13 dB in-band (noise over 1/4000 of the band, as the GNU Radio set
    counts it: 1.5-3 dB over the noise in one model cell) are found by the
    cells' zoom (``tones``, on by default) one bin of a tile-long FFT wide, at their
    frequency to a third of that bin and over most of the recording (the weaker takes a
    few tiles to be picked up), where the model's cells alone miss them; a 45 dB tone's IQ
    image at 15 dB (30 dB under it) is not a signal."""
    rng = np.random.default_rng(5)
    n = 262144
    x = _tones_in_noise(rng, n, ((0.10031, 11), (-0.20017, 13), (0.3, 45), (-0.3, 15)))
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
    from cvstream.blocks.narrowband import STRIDE, LongTones
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


def test_long_tones_search_only_where_the_model_leaves_room():
    """``LongTones.find`` given the model's cells searches only the bins where ``outside``
    may keep a tone, and finds what ``outside`` keeps of the search of every bin, to the
    last digit: lines beside cells the model holds in some tiles of a look and not in
    others (kept for those others only), a line inside a wide signal's cells, a line
    three bins wide whose centre is in a free cell and whose lowest bin is in the cell
    below, beside the model's."""
    from cvstream.blocks.narrowband import LongTones
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
    from cvstream.blocks.narrowband import LongTones
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
    x = _tones_in_noise(rng, n, ((0.21017, 5), (0.3, 45), (-0.3, 15)))
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
        block.process(_tones_in_noise(np.random.default_rng([6, seed]), n, ()))
        block.flush()
        assert block.take_messages() == []
        block.stop()


def test_narrow_view_needs_the_refine_samples():
    with pytest.raises(ParamError, match="refine"):
        SpectrumSegmenter(narrow=True, refine=0)


def _fsk(rng, n, rate, h, centre):
    """Continuous-phase 2FSK with Gaussian-filtered (BT 0.5) frequency steps: ``rate``
    symbols a sample, index ``h``, at normalized frequency ``centre``; unit power."""
    sps = int(round(1 / rate))
    freq = np.repeat(rng.choice([-1.0, 1.0], n // sps + 2), sps)[:n]
    t = np.arange(-2 * sps, 2 * sps + 1) / sps
    pulse = np.exp(-(np.pi * t) ** 2 / (2 * np.log(2)))
    freq = np.convolve(freq, pulse / pulse.sum(), "same") * h * rate / 2
    return np.exp(2j * np.pi * np.cumsum(freq + centre))


def _parts(x, bands, start=0, block=8192):
    """One track's parts over ``bands`` ((f_low, f_high) pairs) as ``refine_edges`` leaves
    them: each with the blocks' 1024-point PSDs (noise floor 1) and samples."""
    from cvstream.blocks.tracks import Track
    seg = SpectrumSegmenter(refine=1024)
    seg.check()
    tiles = len(x) // block
    rows = seg.spectra.fine_psd(x[:tiles * block].astype(np.complex64), np.ones(tiles))
    parts = []
    for lo, hi in bands:
        part = Track(start, start + tiles * block, lo, hi, 10.0)
        part.rows = [(start + k * block, rows[k]) for k in range(tiles)]
        part.samples = [(start + k * block, x[k * block:(k + 1) * block])
                        for k in range(4)]
        parts.append(part)
    return parts


def test_an_fsk_signals_lobes_are_joined_and_two_neighbours_are_not():
    """Wide-index FSK at low SNR shows lobes that the edge search cuts apart (GNU Radio's
    GFSK at 0-10 dB: 12 of the tuning sets' false alarms were single lobes). Its whole
    band has one constant envelope (normalized 4th moment 1, the noise's share taken out),
    which a slice of it or two signals side by side do not: their sum beats (1.5). So the
    halves of one FSK become one detection; two FSKs side by side, a strong FSK beside a
    weak neighbour, and two middle quarters of one signal (slices of it) stay apart."""
    from cvstream.blocks.detections import join_one_envelope
    rng = np.random.default_rng(5)
    n = 65536

    def noise():
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    # one FSK, index 6, 12 % of the band at 5 dB in-band: its two halves
    x = _fsk(rng, n, 0.015, 6, -0.2) * np.sqrt(10 ** 0.5 * 0.12) + noise()
    joined = join_one_envelope(_parts(x, [(-0.26, -0.203), (-0.197, -0.14)]))
    assert [(round(p.f_low, 3), round(p.f_high, 3)) for p in joined] == [(-0.26, -0.14)]
    # two independent FSKs side by side, equal power
    y = (_fsk(rng, n, 0.01, 2, -0.2) + _fsk(rng, n, 0.01, 2, -0.155)) * \
        np.sqrt(10 ** 0.8 * 0.04) + noise()
    assert len(join_one_envelope(_parts(y, [(-0.22, -0.18), (-0.175, -0.135)]))) == 2
    # a strong FSK 13 dB over a weak neighbour, which barely moves its envelope
    z = _fsk(rng, n, 0.01, 2, -0.2) * np.sqrt(10 ** 1.8 * 0.04) + \
        _fsk(rng, n, 0.01, 2, -0.155) * np.sqrt(10 ** 0.5 * 0.04) + noise()
    assert len(join_one_envelope(_parts(z, [(-0.22, -0.18), (-0.175, -0.135)]))) == 2
    # the two middle quarters of one FSK: a slice of a constant envelope is not one
    assert len(join_one_envelope(_parts(x, [(-0.23, -0.203), (-0.197, -0.17)]))) == 2


def test_a_wide_fms_slices_are_joined_across_its_nulls(monkeypatch):
    """A sine-modulated FM (index 15, 6.4 % of the band, 8 dB in-band) whose spectrum's
    Bessel nulls cut it into slices of unequal power: its whole band has one constant
    envelope, so the slices are one detection (GNU Radio's FM at 11 dB was ten boxes). Six
    slices, the weakest 0.17 of the strongest's power but 0.23 of their mean
    (ENVELOPE_BALANCE is judged against the mean: an FM's slices differ, but there are many
    of them); four slices, one gap 1.1 times the wider slice beside it (ENVELOPE_GAP 2).
    With the old gap of one width, the four stay apart; with a stricter balance, the six."""
    import cvstream.blocks.detections as detections
    from cvstream.blocks.detections import join_one_envelope
    rng = np.random.default_rng(5)
    n = 65536
    noise = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    t = np.arange(n)
    x = np.exp(1j * (15 * np.sin(2 * np.pi * 0.002 * t) - 2 * np.pi * 0.2 * t)) * \
        np.sqrt(10 ** 0.8 * 0.064) + noise
    six = [(-0.233, -0.227), (-0.223, -0.213), (-0.209, -0.2065), (-0.2025, -0.1925),
           (-0.1885, -0.1785), (-0.173, -0.167)]
    four = [(-0.233, -0.221), (-0.2075, -0.2005), (-0.194, -0.182), (-0.179, -0.167)]
    for bands in (six, four):
        joined = join_one_envelope(_parts(x, bands))
        assert [(round(p.f_low, 3), round(p.f_high, 3)) for p in joined] == [(-0.233, -0.167)]
    monkeypatch.setattr(detections, "ENVELOPE_GAP", 1.0)
    assert len(join_one_envelope(_parts(x, four))) == 4
    monkeypatch.setattr(detections, "ENVELOPE_BALANCE", 0.3)
    assert len(join_one_envelope(_parts(x, six))) == 6


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
    """``tracks.quantile_of`` (the tracks' percentiles) is ``np.quantile`` and
    ``dilate_rows`` (the guards around the model's cells) is ``binary_dilation`` along
    rows, on odd and even lengths, one value, the ends, and rows empty or full."""
    from scipy.ndimage import binary_dilation

    from cvstream.blocks.tracks import dilate_rows, quantile_of
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


def test_the_detections_medians_quantiles_and_noise_levels_are_numpys_to_the_bit():
    """The fast paths the detections take are numpy's and scipy's results exactly (their
    detections must not move): ``median_of`` is ``np.median`` (value and type, odd and
    even lengths, float32 and float64), ``quantile_of`` is ``np.quantile`` down a 2-d
    array's columns and along a 1-d one, ``noise_level_table`` is ``noise_levels``, and
    the tones' one sub-bin (``CellTones``' DFT bin) is the zoom's FFT bin to float32's
    precision."""
    import scipy.fft

    from cvstream.blocks.tracks import median_of, noise_level_table, noise_levels, quantile_of
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
