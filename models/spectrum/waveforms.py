"""Baseband waveforms at a normalized sample rate (1.0), each at a requested occupied
bandwidth (fraction of the sample rate). Every generator returns (samples, actual bandwidth):
integer oversampling makes the real bandwidth differ slightly from the request, and the
label uses the real one. ``generate`` then holds every waveform to a spectral mask: nothing
outside its labelled band, as a licensed transmitter's emission mask demands (rectangular
FSK, OFDM and chirp restarts otherwise spill skirts that stand above the noise at 30 dB
in-band SNR, outside the box the label draws)."""
from __future__ import annotations

import numpy as np
import scipy.signal

CONSTELLATIONS = {
    "bpsk": np.array([1, -1], complex),
    "qpsk": np.exp(1j * (np.pi / 4 + np.pi / 2 * np.arange(4))),
    "8psk": np.exp(1j * np.pi / 4 * np.arange(8)),
    "16qam": np.array([a + 1j * b for a in (-3, -1, 1, 3) for b in (-3, -1, 1, 3)]),
    "64qam": np.array([a + 1j * b for a in range(-7, 8, 2) for b in range(-7, 8, 2)]),
}
for _k, _c in CONSTELLATIONS.items():
    CONSTELLATIONS[_k] = _c / np.sqrt(np.mean(np.abs(_c) ** 2))

#: modulation -> family label (the segmenter's classes)
FAMILY = {"bpsk": "psk", "qpsk": "psk", "8psk": "psk", "16qam": "qam", "64qam": "qam",
          "gmsk": "fsk", "2fsk": "fsk", "ofdm": "ofdm", "am": "analog", "fm": "analog",
          "cw": "tone", "chirp": "chirp"}
#: the families; ``pulse`` (on-off and pulse-position keying) only in ``variety``'s scenes
CLASSES = ["psk", "qam", "fsk", "ofdm", "analog", "tone", "chirp", "pulse"]
MODULATIONS = list(FAMILY)
MIN_BW = 0.0025  # the narrowest band drawn; a CW tone's power is set as for one this wide
#: a CW tone's label: one bin of a tile-long (8192-point) FFT around it, its true width at
#: that resolution (as the GNU Radio scenes label theirs)
TONE_BW = 1 / 8192


def rrc_taps(beta: float, sps: int, span: int = 6) -> np.ndarray:
    t = np.arange(-span * sps, span * sps + 1) / sps
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (np.sin(np.pi * t * (1 - beta)) + 4 * beta * t * np.cos(np.pi * t * (1 + beta))) \
            / (np.pi * t * (1 - (4 * beta * t) ** 2))
    h[np.isclose(t, 0)] = 1 - beta + 4 * beta / np.pi
    edge = np.isclose(np.abs(t), 1 / (4 * beta))
    h[edge] = beta / np.sqrt(2) * ((1 + 2 / np.pi) * np.sin(np.pi / (4 * beta))
                                   + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta)))
    return h / np.sqrt(np.sum(h ** 2))


def _sps(bw: float, excess: float) -> int:
    return max(2, int(round(excess / bw)))


def linear(rng, n: int, bw: float, kind: str) -> tuple[np.ndarray, float]:
    """PSK / QAM with root-raised-cosine pulses, random roll-off 0.2-0.5."""
    beta = rng.uniform(0.2, 0.5)
    sps = _sps(bw, 1 + beta)
    nsym = n // sps + 16
    sym = rng.choice(CONSTELLATIONS[kind], nsym)
    x = scipy.signal.upfirdn(rrc_taps(beta, sps), sym, up=sps)
    start = 6 * sps
    return x[start:start + n] * np.sqrt(sps), (1 + beta) / sps


def gmsk(rng, n: int, bw: float) -> tuple[np.ndarray, float]:
    """GMSK, BT = 0.3, modulation index 0.5; occupied bandwidth ~1.2 x bit rate."""
    sps = _sps(bw, 1.2)
    bits = rng.choice([-1.0, 1.0], n // sps + 8)
    t = np.arange(-2 * sps, 2 * sps + 1) / sps
    sigma = np.sqrt(np.log(2)) / (2 * np.pi * 0.3)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    freq = scipy.signal.upfirdn(g / g.sum(), bits, up=sps)[2 * sps:2 * sps + n]
    phase = np.pi * 0.5 * np.cumsum(freq)
    return np.exp(1j * phase), 1.2 / sps


def fsk2(rng, n: int, bw: float) -> tuple[np.ndarray, float]:
    """Binary FSK, index 1 (tones at +-rate/2); occupied bandwidth ~3 x symbol rate."""
    sps = _sps(bw, 3.0)
    sym = np.repeat(rng.choice([-1.0, 1.0], n // sps + 1), sps)[:n]
    phase = 2 * np.pi * np.cumsum(sym * 0.5 / sps)
    return np.exp(1j * phase), 3.0 / sps


def ofdm(rng, n: int, bw: float) -> tuple[np.ndarray, float]:
    """OFDM: 48 QPSK subcarriers of an M-point IFFT (M from the bandwidth), 1/4 cyclic prefix."""
    used = 48
    m = max(used + 4, int(round(used / bw)))
    cp = m // 4
    nsym = n // (m + cp) + 2
    grid = np.zeros((nsym, m), complex)
    carriers = np.r_[np.arange(-used // 2, 0), np.arange(1, used // 2 + 1)] % m
    grid[:, carriers] = rng.choice(CONSTELLATIONS["qpsk"], (nsym, used))
    sym = np.fft.ifft(grid, axis=1) * np.sqrt(m * m / used)
    x = np.concatenate([sym[:, -cp:], sym], axis=1).reshape(-1)
    return x[:n], (used + 1) / m


def _message(rng, n: int, bw: float) -> np.ndarray:
    """Random real message strictly band-limited to bw (flat spectrum, random phases: an
    FIR filter's transition band would be wider than a narrow bw), unit peak."""
    spectrum = np.zeros(n // 2 + 1, complex)
    edge = max(1, int(bw * n))
    spectrum[1:edge + 1] = np.exp(2j * np.pi * rng.random(edge))
    m = np.fft.irfft(spectrum, n)
    return m / (np.max(np.abs(m)) + 1e-12)


def am(rng, n: int, bw: float) -> tuple[np.ndarray, float]:
    """Double-sideband AM with carrier, modulation depth 0.3-0.9."""
    return 1 + rng.uniform(0.3, 0.9) * _message(rng, n, bw / 2), bw


def fm(rng, n: int, bw: float) -> tuple[np.ndarray, float]:
    """FM: message bandwidth fm and deviation df with Carson bandwidth 2 (df + fm) = bw."""
    fm_bw = bw * rng.uniform(0.1, 0.25)
    dev = bw / 2 - fm_bw
    phase = 2 * np.pi * dev * np.cumsum(_message(rng, n, fm_bw))
    return np.exp(1j * phase), bw


def cw(rng, n: int, bw: float) -> tuple[np.ndarray, float]:
    return np.ones(n, complex), MIN_BW


def chirp(rng, n: int, bw: float) -> tuple[np.ndarray, float]:
    """Linear up- or down-sweeps across bw, 1-8 sweeps per window."""
    period = max(64, n // rng.integers(1, 9))
    tau = np.arange(n) % period
    slope = bw / period * rng.choice([-1, 1])
    return np.exp(2j * np.pi * (-slope * period / 2 * tau + 0.5 * slope * tau ** 2)), bw


def spectral_mask(x: np.ndarray, bw: float) -> np.ndarray:
    """x with every frequency outside [-bw/2, bw/2] removed (over the whole window)."""
    spec = np.fft.fft(x)
    spec[np.abs(np.fft.fftfreq(len(x))) > bw / 2] = 0
    return np.fft.ifft(spec)


def generate(rng, kind: str, n: int, bw: float) -> tuple[np.ndarray, float]:
    if kind in CONSTELLATIONS:
        x, bw = linear(rng, n, bw, kind)
    else:
        x, bw = {"gmsk": gmsk, "2fsk": fsk2, "ofdm": ofdm, "am": am, "fm": fm, "cw": cw,
                 "chirp": chirp}[kind](rng, n, bw)
    return spectral_mask(x, bw), bw
