"""Signals and tracks that the spectrum tests share."""

import numpy as np

from cvstream.blocks.segmenter import SpectrumSegmenter
from cvstream.models.spectrum import evaluate as ev
from cvstream.models.spectrum.synth import SceneConfig, scene
from cvstream.models.spectrum.waveforms import generate


def fine_track(x, f_low, f_high, rows: bool = False, track=None):
    """A Track over all of x (or ``track``, as a tracker settled it) with the segmenter's
    fine PSD accumulated, as the block does (``rows``: each tile's own kept too, as the
    block's tracker does)."""
    from cvstream.blocks.detections import ZOOM
    from cvstream.blocks.tracks import Track
    block = SpectrumSegmenter()
    _, _, _, floor, _ = block.spectra.prepare(x)
    fine = block.spectra.fine_psd(x, floor)
    zoom = block.spectra.fine_psd(x, floor, block.refine * ZOOM)
    line = block.spectra.fine_psd(x, floor, block.decim)
    track = track or Track(0, len(x), f_low, f_high, 20.0)
    for k, (row, finer, tile) in enumerate(zip(fine, zoom, line)):
        track.add_spectrum(row, finer, k * block.decim if rows else None, tile)
    return track, block.decim // block.refine


def tracked_signals(rng, tile, tiles, bands, runs, rows: bool = True):
    """Signals (centre(sample index), width, on(sample index) -> bool[, kind, in-band SNR
    dB]; QPSK at 20 dB unless given) over noise, and one track of ``tiles`` tiles that
    meets the runs ``runs(k)`` in tile k (one, or several the coarse view joined), its
    fine PSD summed (with ``rows``, each of the segmenter's tiles kept too, as its tracker
    does); (track, frames, true edges)."""
    from cvstream.blocks.tracker import Tracker
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
    track, frames = fine_track(x.astype(np.complex64), 0, 0, rows=rows, track=track)
    return track, frames, truth


def white(rng, n: int) -> np.ndarray:
    """Complex white noise of power 1."""
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)


def segmented(x: np.ndarray) -> list[dict]:
    """spectrum_segmenter's detections of ``x`` (one call, then flushed), by lower edge."""
    block = SpectrumSegmenter()
    block.process(x.astype(np.complex64))
    block.flush()
    got = sorted(block.take_messages(), key=lambda m: m["freq_lower_edge"])
    block.stop()
    return got


def band_noise(rng, n: int, lo: float, hi: float, roll: float, snr_db: float):
    """A noise-like signal over [lo, hi) of the band, in-band SNR ``snr_db``, its spectrum
    falling off over ``roll`` across each edge (a raised cosine: GNU Radio's RRC
    signals' skirts)."""
    f = np.fft.fftfreq(n)
    edge = np.clip(np.minimum(f - lo, hi - f) / roll + 0.5, 0.0, 1.0)
    y = np.fft.ifft(np.fft.fft(white(rng, n)) * np.sin(0.5 * np.pi * edge))
    return y * np.sqrt(10 ** (snr_db / 10) * (hi - lo) / np.mean(np.abs(y) ** 2))


def four_signal_scene():
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


def tones_in_noise(rng, n: int, tones) -> np.ndarray:
    """n samples of white noise (power 1) with CW tones (frequency, in-band SNR dB with the
    noise counted over 1/4000 of the band, as the GNU Radio evaluation set does)."""
    t = np.arange(n)
    x = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)
    for f, snr in tones:
        x = x + np.sqrt(10 ** (snr / 10) / 4000) * np.exp(2j * np.pi * f * t)
    return x.astype(np.complex64)
