"""Spectrum tools: the synthesizer, its SigMF datasets, the CFAR detector, the evaluation,
the segmenter's training, export, preprocessing and shipped model, and the spectrum
graphs."""
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
from spectrum_helpers import four_signal_scene, tones_in_noise


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
    export_model(seg.deployed(model), seg.contract(), path)
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


def test_the_block_compands_the_tiles_the_export_leaves_uncompanded(tmp_path):
    """The export leaves the network's log-compander to the block (contract
    ``preprocess.compand: log1p``): no Log ahead of the first convolution, and the block's
    logits are the trained network's own on the block's tiles, for the segmenter and its
    real twin (within float32 rounding). A network exported with its compander (an
    earlier export: no ``compand`` in its contract) gives the same logits through the
    block; a contract naming a compander the block does not know is refused in one line
    naming the model."""
    torch = pytest.importorskip("torch")
    import onnx

    from cvstream.contract import read_contract
    from cvstream.models.export import export_model, rewrite_contract
    from cvstream.models.spectrum import segmenter as seg
    x, _ = scene(np.random.default_rng(5), SceneConfig(samples=4 * seg.TILE))
    for real in (False, True):
        model = seg.train(steps=2, scenes_per_step=1, real=real)
        with torch.no_grad():   # the network's logits on the block's own tiles
            tiles = SpectrumSegmenter().spectra.prepare(x)[0]
            want = model(torch.from_numpy(tiles)).numpy()[:, 0]
        plain = seg.contract(real=real)
        plain["preprocess"] = {"stft": plain["preprocess"]["stft"]}
        for name, net, spec in (("deployed", seg.deployed(model), seg.contract(real=real)),
                                ("whole", model, plain)):
            path = str(tmp_path / f"{name}_{real}.onnx")
            export_model(net, spec, path)
            first = [n.op_type for n in onnx.load(path).graph.node].index("Conv")
            logs = [n for n in onnx.load(path).graph.node[:first] if n.op_type == "Log"]
            assert bool(logs) == (name == "whole")
            block = SpectrumSegmenter(model=path)
            block.start()
            got = block.compute(x)[0]
            block.stop()
            assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max()), (name, real)
    c = read_contract(path)
    c.preprocess["compand"] = "cube"
    rewrite_contract(path, c)
    with pytest.raises(ParamError, match="model.*compand 'cube'.*only 'log1p'"):
        SpectrumSegmenter(model=path)


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
    export_model(seg.deployed(seg.build()), c, path)
    tiles, _, power, floor, _ = SpectrumSegmenter(model=path, family="").spectra.prepare(x)
    want = normalize_tiles(raw)
    np.testing.assert_allclose(tiles[..., 0] + 1j * tiles[..., 1], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(power, np.mean(np.abs(want) ** 2, axis=1), rtol=1e-4)
    # the shipped model: per-bin tiles; the cell power (SNR, fine PSD) stays in units of the
    # tile's one floor
    block = SpectrumSegmenter()
    assert block.contract.normalization == seg.NORMALIZATION == "noise_floor_per_bin"
    tiles, _, power, floor, _ = block.spectra.prepare(x)
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
    strong signal comes back as an annotation with absolute edges in Hz and a label, in
    metadata that names the recording's data file rather than a copy of it."""
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
    out = json.loads((tmp_path / "out.sigmf-meta").read_text())
    assert out["global"]["core:dataset"] == "rec.sigmf-data"   # annotated, not copied
    assert not (tmp_path / "out.sigmf-data").exists()
    ann = out["annotations"]
    lab = labels[0]
    lo, hi = 100e6 + lab.f_low * 2.4e6, 100e6 + lab.f_high * 2.4e6
    hits = [a for a in ann if a["core:freq_lower_edge"] < hi and a["core:freq_upper_edge"] > lo]
    assert hits and hits[0]["core:label"] in CLASSES
    assert abs(hits[0]["core:freq_lower_edge"] - lo) < 0.1 * 2.4e6
    bad = run_cli("run", str(GRAPHS / "spectrum_sigmf.yml"),
                  "--set", f"input={tmp_path / 'missing.sigmf-meta'}")
    lines = bad.stderr.strip().splitlines()   # a line for each block that reads it
    assert bad.returncode == 2 and len(lines) == 2 and \
        all("missing.sigmf-meta' does not exist" in line for line in lines)


def test_shipped_segmenter_boxes_every_signal_with_refined_edges():
    """The shipped model through the block: every signal matched at IoU >= 0.5, and the
    fine PSD is what makes the narrow one (0.6 % of the band, 1.5 coarse bins) match."""
    from cvstream.models.spectrum.segmenter import detector
    x, truth = four_signal_scene()
    pred = detector("builtin:spectrum_segmenter")(x)
    pairs = ev.match(truth, pred)
    assert len(pairs) == 4 and len(pred) == 4
    assert all(ev.iou(truth[i], pred[j]) > 0.6 for i, j in pairs)
    coarse = detector("builtin:spectrum_segmenter", refine=0)(x)
    assert 0 not in dict(ev.match(truth, coarse))  # the narrow QPSK's coarse box fails


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
    _, _, _, floor, _ = block.spectra.prepare(noise)
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
        assert c.preprocess["compand"] == "log1p"   # the block compands its tiles
        assert set(c.evaluation) == {f"{lo}..{hi} dB" for lo, hi in ev.BUCKETS}
        row = c.evaluation["10..20 dB"]
        # the README's table: detection recall and precision above 0.7 at 10..20 dB
        assert row["det_recall"] > 0.7 and row["det_precision"] > 0.7


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
    x = tones_in_noise(np.random.default_rng(6), 262144, ((0.21017, 5),))
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


def test_narrow_view_needs_the_refine_samples():
    with pytest.raises(ParamError, match="refine"):
        SpectrumSegmenter(narrow=True, refine=0)


def test_png_sink_draws_a_bounded_number_of_boxes_over_the_whole_stream(tmp_path):
    """An endless stream's detections: at most MAX_BOXES a port are kept, thinned evenly
    over the whole stream (the first and the late ones both), the rest counted as
    boxes_not_drawn, so the picture at the end is drawn from a bounded list."""
    from cvstream.blocks.plots import MAX_BOXES, PngSink
    sink = PngSink(path=str(tmp_path / "p.png"), fft=64, rate=1e6)
    sink.start()
    n = 5 * MAX_BOXES + 7
    sink.work(np.ones(64 * n, np.complex64))   # the stream the boxes lie in
    for k in range(n):
        sink.on_message("detections", {"sample_start": 64 * k, "sample_count": 64,
                                       "freq_lower_edge": -1e5, "freq_upper_edge": 1e5,
                                       "label": "tone"})
    kept = sink._boxes["detections"]
    assert MAX_BOXES // 2 <= len(kept) <= MAX_BOXES
    assert sink.counters["boxes_not_drawn"] == n - len(kept)
    starts = [m["sample_start"] for m in kept]
    assert starts[0] == 0 and starts[-1] >= 64 * (n - 8 * (n // len(kept)))
    assert np.ptp(np.diff(starts)) == 0   # evenly: one in every stride
    sink.stop()
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_detection_table_keeps_the_counts_and_the_earliest_rows_only(capsys):
    """An endless stream's table: every detection counted by label, the earliest ``rows``
    listed in time order (arrival order between equal starts), and no more than those
    kept as the stream goes on."""
    from cvstream.blocks.plots import DetectionTable
    table = DetectionTable(rows=3)
    table.start()
    starts = [50, 10, 40, 10, 30, 70, 20, 60]
    for k, start in enumerate(starts):
        table.on_message("inp", {"sample_start": start, "sample_count": 5, "snr_db": k,
                                 "label": "tone" if k % 2 else "psk"})
        assert len(table._first) <= 3
    table.stop()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "8 detections: psk 4, tone 4"
    listed = [(int(line.split()[0]), float(line.split()[-1])) for line in lines[2:5]]
    assert listed == [(10, 1.0), (10, 3.0), (20, 6.0)]
    assert lines[5] == "... and 5 more"
