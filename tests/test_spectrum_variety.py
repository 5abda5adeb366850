"""The randomized training synthesizer (``models/spectrum/variety.py``): every emitter held
to its labelled band, the new families, hopping dwells as boxes of their own, tilted noise
floors, AGC steps and ADC quantization."""
import numpy as np
import pytest

from cvstream.models.spectrum import variety
from cvstream.models.spectrum.synth import SceneConfig, cell_labels, scene
from cvstream.models.spectrum.waveforms import CLASSES


@pytest.mark.parametrize("width", [0.1, 0.01, 0.001])
@pytest.mark.parametrize("kind", variety.VARIETY)
def test_randomized_emitters_hold_their_band(kind, width):
    rng = np.random.default_rng([3, variety.VARIETY.index(kind)])
    x, bw = variety.generate(rng, kind, 65536, width)
    assert len(x) == 65536 and np.all(np.isfinite(x)) and np.mean(np.abs(x) ** 2) > 0
    f = np.fft.fftfreq(65536)
    spec = np.abs(np.fft.fft(x)) ** 2
    assert spec[np.abs(f) > bw / 2 + 1 / 65536].sum() / spec.sum() < 1e-6
    if kind == "cw":
        assert bw == 0.0025
        return
    # near the band it was asked for (a rectangular pulse's skirts cut at 1.25 x), and the
    # label not much wider than the power (less its carrier line) really is
    assert 0.3 * width <= bw <= 1.25 * width + 2 / 65536
    hw = variety.occupied_halfwidth(x - x.mean(), 0.99)
    assert 2 * hw <= bw + 2 / 65536 and 2 * hw >= 0.3 * bw


def test_occupied_halfwidth_of_a_known_band():
    rng = np.random.default_rng(0)
    spec = np.zeros(8192, complex)
    f = np.fft.fftfreq(8192)
    spec[np.abs(f) <= 0.1] = np.exp(2j * np.pi * rng.random((np.abs(f) <= 0.1).sum()))
    x = np.fft.ifft(spec)
    assert variety.occupied_halfwidth(x, 0.995) == pytest.approx(0.1 * 0.995, abs=2 / 8192)


def test_new_families_have_their_signatures():
    rng = np.random.default_rng(1)
    n = 65536
    # LoRa-like: constant envelope, each symbol a sweep across the band
    x, bw = variety.generate(rng, "css", n, 0.05)
    assert np.std(np.abs(x)) / np.mean(np.abs(x)) < 0.1 and bw == pytest.approx(0.05, rel=0.1)
    inst = np.diff(np.unwrap(np.angle(variety.css(rng, n, 0.05)))) / (2 * np.pi)
    assert np.ptp(inst) == pytest.approx(0.05, rel=0.01)
    # ADS-B-like: on-off pulses (the envelope two-valued before the mask)
    raw = variety.adsb(rng, n, 0.05)
    assert set(np.unique(raw.real)) == {0.0, 1.0} and 0.3 < raw.real.mean() < 0.7
    # 4-level FSK: four instantaneous frequencies
    x = variety.fsk(rng, n, 0.02, levels=4, index=1.0, bt=0)
    inst = np.diff(np.unwrap(np.angle(x)))
    levels = np.unique(np.round(inst / inst.max() * 3))
    assert len(levels) == 4
    assert {variety.VARIETY_FAMILY[k] for k in ("css", "adsb", "dsss", "nbfm", "ais", "fh")} \
        == {"chirp", "pulse", "psk", "analog", "fsk"}
    assert set(variety.VARIETY_FAMILY.values()) <= set(CLASSES)


def test_variety_scenes_are_deterministic_labelled_and_impaired():
    cfg = SceneConfig(samples=65536, variety=True, snr_db=(20, 30))
    a, la = scene(np.random.default_rng([9, 1]), cfg, n_signals=4)
    b, lb = scene(np.random.default_rng([9, 1]), cfg, n_signals=4)
    assert np.array_equal(a, b) and la == lb and a.dtype == np.complex64
    grid = cell_labels(la, 65536, 256, 256)
    for lab in la:
        assert lab.label in CLASSES and -0.5 <= lab.f_low < lab.f_high <= 0.5
        t = min(255, (lab.start + lab.stop) // 2 // 256)
        assert grid[t, min(255, int(round(lab.center * 256)) + 128)] > 0
    # a hopper's dwells are boxes of their own, one after another
    for seed in range(40):
        _, labels = scene(np.random.default_rng([seed, 2]), cfg, n_signals=5)
        hops = [lab for lab in labels if lab.modulation == "fh"]
        if len(hops) >= 3:
            break
    assert len(hops) >= 3
    hops.sort(key=lambda h: h.start)
    assert all(h.stop <= later.start for h, later in zip(hops, hops[1:]))
    assert len({round(h.center, 4) for h in hops}) > 1


def test_tilted_noise_floor_and_its_density():
    rng = np.random.default_rng(4)
    noise, density = variety.tilted_noise(rng, 1 << 16)
    assert np.mean(np.abs(noise) ** 2) == pytest.approx(1.0, rel=0.05)
    f = np.fft.fftshift(np.fft.fftfreq(1 << 16))
    psd = np.fft.fftshift(np.abs(np.fft.fft(noise)) ** 2) / (1 << 16)
    for at in (-0.4, 0.0, 0.4):
        near = np.abs(f - at) < 0.01
        assert np.mean(psd[near]) == pytest.approx(density(at), rel=0.1)


def test_receiver_quantizes_and_steps_its_gain():
    x = (np.random.default_rng(0).standard_normal(1 << 16) * (1 + 1j)).astype(complex)
    for seed in range(30):
        rng = np.random.default_rng(seed)
        y = variety.impair(rng, x)
        levels = len(np.unique(y.real))
        if levels < 5000:   # quantized: 6-12 bits
            assert levels <= 4096
            break
    else:
        pytest.fail("no seed quantized")
    ratios = []
    for seed in range(30):
        y = variety.impair(np.random.default_rng(seed), x)
        ratios.append(np.std(y[-4096:]) / np.std(y[:4096]))
    assert max(ratios) > 1.1 or min(ratios) < 0.9   # some seed stepped the gain


def test_synth_cli_writes_variety_scenes(tmp_path):
    from conftest import run_cli
    res = run_cli("models", "synth", "spectrum", "--out", str(tmp_path), "--count", "2",
                  "--seed", "3", "--samples", "65536", "--variety")
    assert res.returncode == 0, res.stderr
    from sigmf import sigmffile
    rec = sigmffile.fromfile(str(tmp_path / "scene_00001.sigmf-meta"))
    x, labels = scene(np.random.default_rng([3, 1]), SceneConfig(samples=65536, variety=True))
    assert np.array_equal(rec.read_samples(), x)
    assert [a["cvstream:modulation"] for a in rec.get_annotations()] == \
        [lab.modulation for lab in sorted(labels, key=lambda s: s.start)]
