"""What the family classifier sees of a detection (``family_features``): the shape of its
fine PSD, its bandwidth and SNR, how its band moved, and statistics of its complex
envelope (``envelope_features``); and the classifier's logits as calibrated
probabilities (``family_probabilities``)."""
from __future__ import annotations

import numpy as np

from .psd_stats import median_of
from .tracks import Track


#: points of a detection's PSD profile the classifier sees (over its band and a quarter
#: band either side), and the values it sees in all (the profile and nine more)
FAMILY_PROFILE = 32
FAMILY_FEATURES = FAMILY_PROFILE + 9


def envelope_features(blocks: list, f_low: float, f_high: float,
                      spectra: dict | None = None
                      ) -> tuple[float, float, float, float, float]:
    """Five statistics of a signal's complex envelope that its PSD cannot show, from blocks
    of its samples ((start, samples) pairs, as ``Track.samples``): each block's bins inside
    [f_low, f_high] back in time (a critically sampled baseband copy of the band: about one
    sample per symbol for PSK and QAM), then the median over blocks of
    - the normalized 4th moment E|z|^4 / (E|z|^2)^2: about 1.2 for QPSK and 8PSK through
      their pulse shaping, 1.3-1.45 for BPSK, 1.5 for 16/64QAM, 2 for Gaussian-like OFDM
      and noise, near 1 for constant envelopes (FSK, FM, tones);
    - the strongest spectral line of z^2 as a share of its power (1 for a pure line at
      twice the carrier: BPSK; ~0 for circular signals such as QPSK and QAM);
    - the normalized 4th moment of the instantaneous frequency (sample to sample phase
      step, weighted by amplitude): 1.5 for FM by a tone (arcsine-distributed), 1.1-1.3 for
      two-level FSK;
    - the share of the band's power in its strongest twentieth of bins (a tone-modulated
      FM's or AM's lines against a smooth hump);
    - how far the instantaneous frequency's (about its mean, weighted by amplitude; the
      blocks one after the other) strongest spectral line stands above its mean, against
      the ln(bins) that the peak of a random spectrum of that length reaches, in log10: high
      (0.5-2) for FM by a tone, whose frequency swings as a sinusoid, even where the PSD
      cannot resolve its lines (a deviation many times the tone); low (0-0.4) for FSK,
      whose frequency steps with random data, whether a narrow band gives it a hundred
      samples or thousands (a plain power share would grow as the samples fall).
    (0, 0, 0, 0, 0) without samples. ``spectra``: the blocks' FFTs by their start, kept
    across calls (``block_spectra``)."""
    if not blocks:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    import scipy.fft   # (kept off the worker's start)
    n = len(blocks[0][1])
    centre = 0.5 * (f_low + f_high) * n + n // 2   # in DC-centred bins
    half = max(0.5 * (f_high - f_low) * n, 2.0)
    a, b = max(0, int(np.floor(centre - half))), min(n, int(np.ceil(centre + half)) + 1)
    band = (np.arange(a, b) - n // 2) % n         # the same bins, in FFT order
    spectrum = np.stack([row[band] for row in block_spectra(blocks, spectra)])
    z = scipy.fft.ifft(spectrum, axis=1)
    power = (z.real ** 2 + z.imag ** 2).astype(np.float64)
    p2, p4 = power.mean(axis=1), (power ** 2).mean(axis=1)
    kurtosis = p4 / np.maximum(p2 ** 2, 1e-30)
    squared = np.abs(scipy.fft.fft(z * z, axis=1)).astype(np.float64)
    line = squared.max(axis=1) ** 2 / np.maximum((b - a) * (power ** 2).sum(axis=1), 1e-30)
    step = z[:, 1:] * np.conj(z[:, :-1])
    weight = np.abs(step).astype(np.float64)
    freq = np.angle(step).astype(np.float64)
    total = np.maximum(weight.sum(axis=1, keepdims=True), 1e-30)
    dev = freq - (weight * freq).sum(axis=1, keepdims=True) / total
    weighted = weight * dev * dev   # (dev ** 4 would take numpy's general power: 40x slower)
    m2, m4 = weighted.sum(axis=1) / total[:, 0], (weighted * dev * dev).sum(axis=1) / total[:, 0]
    freq_kurtosis = m4 / np.maximum(m2 ** 2, 1e-30)
    # over all blocks in a row (a narrow band's block holds only tens of samples)
    swing = np.abs(scipy.fft.rfft((weight * dev / (total / weight.shape[1])).ravel())[1:]) ** 2
    # the strongest line over the mean, against the ln(bins) a random spectrum's peak
    # reaches: 0-0.4 for data at any length, 0.5-2 for a tone's swing
    peak_over_mean = swing.max() * len(swing) / max(swing.sum(), 1e-30)
    freq_line = np.log10(max(peak_over_mean, 1.0) / np.log(max(len(swing), 3)))
    bins = np.sort((spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float64), axis=1)
    top = bins[:, -max(1, bins.shape[1] // 20):].sum(axis=1) / np.maximum(bins.sum(axis=1),
                                                                          1e-30)
    medians = [median_of(v) for v in (kurtosis, line, freq_kurtosis, top)]
    return (*(float(v) for v in medians), float(freq_line))


#: blocks whose FFTs ``block_spectra`` keeps: a few tiles' tracks' first blocks
SPECTRA_KEPT = 64


def block_spectra(blocks: list, spectra: dict | None = None) -> list:
    """The FFT of each block of samples ((start, samples) pairs), taken once per start
    where ``spectra`` keeps them: tracks that begin in one tile hold a copy of its samples
    each, and the bench's scenes give a third of the envelope statistics' blocks to two
    tracks or more (the same numbers: each row's FFT is its own). The SPECTRA_KEPT taken
    last stay."""
    import scipy.fft   # (kept off the worker's start)
    if spectra is None:
        return list(scipy.fft.fft(np.stack([x for _, x in blocks]), axis=1))
    missing = [(t, x) for t, x in blocks if t not in spectra]
    if missing:
        rows = scipy.fft.fft(np.stack([x for _, x in missing]), axis=1)
        spectra.update(zip((t for t, _ in missing), rows))
    out = [spectra[t] for t, _ in blocks]
    for start in list(spectra)[:max(len(spectra) - SPECTRA_KEPT, 0)]:
        del spectra[start]
    return out


def family_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """A family classifier's (N, classes) logits -> probabilities, calibrated by the
    temperature its contract gives (``postprocess.temperature``)."""
    z = logits / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def family_features(track: Track, spectra: dict | None = None) -> np.ndarray | None:
    """What a family classifier sees of a detection (FAMILY_FEATURES float32 values): the
    shape of its fine PSD over its band and a quarter band either side (FAMILY_PROFILE
    points, dB below the peak / 40, floored at -40 dB), log10 of its bandwidth, its peak
    SNR per fine bin / 10 dB, how its band moved from block to block (``Track.motion``:
    a chirp sweeps, others stay) and its envelope statistics (``envelope_features``:
    kurtosis - 1.5 and the z^2 line, which tell QAM from PSK and BPSK from both; log10 of
    the instantaneous frequency's kurtosis, the top bins' power share and the frequency's
    strongest line, which tell FM by a tone from FSK and line spectra from humps). None
    without a fine PSD (``refine: 0``)."""
    if track.spectrum is None or not track.spectra or not track.edges:
        return None
    psd = track.spectrum / track.spectra
    fine = len(psd)
    bw = max(track.f_high - track.f_low, 2 / fine)
    centre = track.centre
    freqs = centre + bw * np.linspace(-0.75, 0.75, FAMILY_PROFILE)
    bins = (np.arange(fine) - fine // 2) / fine
    db = 10 * np.log10(np.interp(freqs, bins, np.maximum(psd - 1, 1e-4)))
    peak = float(db.max())
    spread, width = track.motion()
    blocks = track.envelope_blocks()
    kurtosis, line, freq_kurtosis, top, freq_line = envelope_features(
        blocks, track.f_low, track.f_high, spectra)
    return np.concatenate([np.maximum(db - peak, -40) / 40,
                           [np.log10(bw), peak / 10, spread, width,
                            kurtosis - 1.5 if blocks else 0.0, line,
                            np.log10(freq_kurtosis) if blocks else 0.0, top,
                            freq_line]]
                          ).astype(np.float32)
