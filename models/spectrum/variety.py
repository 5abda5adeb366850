"""Randomized emitters and receivers for training: what ``waveforms`` fixes, drawn at random,
and families that real bands hold besides.

A model trained on one synthesizer learns its habits (one roll-off family, GMSK at BT 0.3
only, FM with a flat message, OFDM with 48 carriers); another generator's signals then look
foreign. Here every emitter draws its own parameters:

- linear (PSK/QAM): pulse root-raised-cosine or raised-cosine (roll-off 0.1-0.6), Gaussian
  (BT 0.3-1) or rectangular; fractional oversampling (any symbol rate, not 1/integer);
- FSK: continuous phase, 2 or 4 levels, index 0.3-2, rectangular or Gaussian frequency
  pulse (BT 0.25-1: GMSK and GFSK among them);
- OFDM: 12-600 used carriers, cyclic prefix 1/4-1/32, QPSK/16QAM/64QAM carriers, a null at
  DC or not, boosted pilots or not;
- AM: depth 0.1-1, with or without carrier; FM: index 0.5-30; both with a flat, one- or
  two-tone or voice-like (1/f-shaped, band-pass) message;
- CW with a slow drift; chirps with saw or triangle sweeps;
- new: LoRa-like chirp spread spectrum (``css``, spreading factor 6-10), direct-sequence
  spread BPSK (``dsss``, codes of 11-127 chips), narrowband FM voice (``nbfm``), AIS-like
  GMSK bursts of 256 bits (``ais``), ADS-B-like pulse-position bursts of 120 pulse pairs
  (``adsb``, family ``pulse``), and frequency-hopping FSK whose every dwell is a box of its
  own (``fh``).

Labels are the band holding 99.5 % of the emitter's power less its carrier line, symmetric
about its centre, at most 1.25 x the band it was designed for (rectangular pulses' skirts),
and the emitter is held to it (``waveforms.spectral_mask``), as in ``waveforms``.

Receivers (``impair``): a noise floor tilted by up to +-6 dB across the band with a gentle
ripple, gain steps of an AGC, ADC quantization to 6-12 bits with clipping, and per emitter
(in ``scene``) drift, multipath of 1-4 echoes up to 16 samples and phase noise of 1e-4 to
1e-2 rad a sample. ``synth.scene`` comes here for a ``SceneConfig(variety=True)``.
"""
from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.signal

from .waveforms import CONSTELLATIONS, MIN_BW, rrc_taps, spectral_mask

#: the randomized emitters and their families (the fixed ones keep theirs)
VARIETY_FAMILY = {"bpsk": "psk", "qpsk": "psk", "8psk": "psk", "16qam": "qam",
                  "64qam": "qam", "2fsk": "fsk", "4fsk": "fsk", "gfsk": "fsk", "ofdm": "ofdm",
                  "am": "analog", "fm": "analog", "nbfm": "analog", "cw": "tone",
                  "chirp": "chirp", "css": "chirp", "dsss": "psk", "ais": "fsk",
                  "adsb": "pulse", "fh": "fsk"}
VARIETY = tuple(VARIETY_FAMILY)
#: emitters that send short bursts: a burst lasts this many samples over the bandwidth
#: (AIS: 256 bits at 1.7 x the bit rate; ADS-B: 240 pulses of 2 / bandwidth)
SHORT_BURSTS = {"ais": 256 * 1.7, "adsb": 240 * 2.0}


def occupied_halfwidth(x: np.ndarray, fraction: float = 0.995) -> float:
    """The smallest w with ``fraction`` of x's power in [-w, w] (normalized frequency)."""
    power = np.abs(np.fft.fftshift(np.fft.fft(x))) ** 2
    n = len(x)
    centre = n // 2
    k = np.arange(n // 2)             # power in bins [centre - k, centre + k]
    cum = np.concatenate([[0.0], np.cumsum(power)])
    inside = cum[centre + k + 1] - cum[centre - k]
    return (int(np.searchsorted(inside, fraction * cum[-1])) + 0.5) / n


def _resampled(make, n: int, sps: float):
    """make(m, integer sps) resampled so that one symbol lasts ``sps`` samples (any real)."""
    whole = max(2, int(np.ceil(sps)))
    m = scipy.fft.next_fast_len(int(np.ceil(n * whole / sps)))  # a fast FFT size
    x = make(m, whole)
    return x[:n] if m == n else scipy.signal.resample(x, n)


def pulse(shape: str, param: float, sps: int) -> tuple[np.ndarray, float]:
    """A symbol pulse at ``sps`` samples a symbol and the band it occupies (x symbol rate):
    root-raised or raised cosine (param: roll-off), Gaussian (param: BT; its power
    spectrum's 99.5 % band) or rectangular (its main lobe)."""
    if shape in ("rrc", "rc"):
        h = rrc_taps(param, sps, span=8)
        return (np.convolve(h, h) if shape == "rc" else h), 1 + param
    if shape == "gauss":
        sigma = np.sqrt(np.log(2)) / (2 * np.pi * param)         # in symbols
        t = np.arange(-4 * sps, 4 * sps + 1) / sps
        return np.exp(-t ** 2 / (2 * sigma ** 2)), 2 * 2.81 / (2 * np.sqrt(2) * np.pi * sigma)
    return np.ones(sps), 2.0


def linear(rng, n: int, bw: float, symbols: np.ndarray | None = None, kind: str = "qpsk"
           ) -> np.ndarray:
    """PSK/QAM (or given symbols, e.g. spread chips) with a random pulse at bandwidth ~bw."""
    shape = str(rng.choice(["rrc", "rc", "gauss", "rect"], p=[0.5, 0.2, 0.15, 0.15]))
    param = rng.uniform(0.1, 0.6) if shape in ("rrc", "rc") else rng.uniform(0.3, 1.0)
    occupancy = pulse(shape, param, 8)[1]
    seed = int(rng.integers(1 << 31))

    def make(m, sps):
        h = pulse(shape, param, sps)[0]
        count = m // sps + len(h) // sps + 2
        sym = np.resize(symbols, count) if symbols is not None else \
            np.random.default_rng(seed).choice(CONSTELLATIONS[kind], count)
        return scipy.signal.upfirdn(h, sym, up=sps)[len(h) // 2:len(h) // 2 + m]
    return _resampled(make, n, occupancy / bw)


def dsss(rng, n: int, bw: float) -> np.ndarray:
    """BPSK data spread by a random +-1 code of 11-127 chips; bw is the chip band."""
    code = rng.choice([-1.0, 1.0], int(rng.choice([11, 15, 31, 63, 127])))
    data = rng.choice([-1.0, 1.0], n // len(code) + 2)
    return linear(rng, n, bw, symbols=np.kron(data, code).astype(complex))


def fsk(rng, n: int, bw: float, levels: int | None = None, index: float | None = None,
        bt: float | None = None) -> np.ndarray:
    """Continuous-phase FSK: 2 or 4 levels, index h, rectangular or Gaussian (BT) pulses."""
    levels = levels or int(rng.choice([2, 2, 4]))
    index = index if index is not None else rng.uniform(0.3, 2.0)
    if bt is None and rng.random() < 0.6:
        bt = rng.uniform(0.25, 1.0)
    occupancy = (levels - 1) * index + (1.2 if bt else 2.0)  # Carson-like, per symbol rate
    seed = int(rng.integers(1 << 31))

    def make(m, sps):
        r = np.random.default_rng(seed)
        sym = r.choice(np.arange(levels) * 2.0 - (levels - 1), m // sps + 8)
        if bt:
            sigma = np.sqrt(np.log(2)) / (2 * np.pi * bt) * sps
            t = np.arange(-3 * sps, 3 * sps + 1)
            g = np.exp(-t ** 2 / (2 * sigma ** 2))
            g = np.convolve(g, np.ones(sps))
            freq = scipy.signal.upfirdn(g / g.sum() * sps, sym, up=sps)[len(g) // 2:]
        else:
            freq = np.repeat(sym, sps)
        return np.exp(1j * np.pi * index * np.cumsum(freq[:m]) / sps)
    return _resampled(make, n, occupancy / bw)


def ofdm(rng, n: int, bw: float) -> np.ndarray:
    """OFDM with random numerology: used carriers, prefix, carrier constellation, pilots."""
    used = int(np.exp(rng.uniform(np.log(12), np.log(600))))
    m = max(used + 4, int(round(used / bw)))
    cp = int(m * rng.choice([1 / 4, 1 / 8, 1 / 16, 1 / 32]))
    nsym = n // (m + cp) + 2
    grid = np.zeros((nsym, m), complex)
    half = used // 2
    dc_null = rng.random() < 0.7
    carriers = np.r_[np.arange(-half, 0), np.arange(1 if dc_null else 0, used - half + 1)] % m
    const = CONSTELLATIONS[str(rng.choice(["qpsk", "16qam", "64qam"]))]
    grid[:, carriers] = rng.choice(const, (nsym, len(carriers)))
    if rng.random() < 0.5:  # boosted BPSK pilots on every 8th-16th carrier
        pilots = carriers[:: int(rng.integers(8, 17))]
        grid[:, pilots] = 1.33 * rng.choice([-1, 1], (nsym, len(pilots)))
    sym = np.fft.ifft(grid, axis=1) * np.sqrt(m * m / used)
    return np.concatenate([sym[:, m - cp:], sym], axis=1).reshape(-1)[:n]


def message(rng, n: int, bw: float, kind: str | None = None) -> np.ndarray:
    """A real message within bw, unit peak: flat band, one or two tones, or voice-like
    (power falling as 1/f above a low cut, like speech through a phone channel)."""
    kind = kind or rng.choice(["flat", "tone", "tones", "voice"])
    t = np.arange(n)
    if kind == "tone":
        m = np.cos(2 * np.pi * rng.uniform(0.2, 1.0) * bw * t)
    elif kind == "tones":
        f = rng.uniform(0.1, 1.0, 2) * bw
        m = np.cos(2 * np.pi * f[0] * t) + rng.uniform(0.3, 1) * np.cos(2 * np.pi * f[1] * t
                                                                        + rng.uniform(0, 6))
    else:
        freqs = np.fft.rfftfreq(n)
        spectrum = np.exp(2j * np.pi * rng.random(len(freqs)))
        spectrum[freqs > bw] = 0
        if kind == "voice":
            low = bw * rng.uniform(0.05, 0.15)
            spectrum *= np.where(freqs < low, 0, 1 / np.sqrt(np.maximum(freqs, low) / low))
        spectrum[0] = 0
        m = np.fft.irfft(spectrum, n)
    return m / (np.max(np.abs(m)) + 1e-12)


def am(rng, n: int, bw: float) -> np.ndarray:
    """AM at depth 0.1-1 (15 % of the time without carrier) of a message within bw / 2."""
    msg = message(rng, n, bw / 2)
    if rng.random() < 0.15:  # suppressed carrier
        return msg.astype(complex)
    return 1 + rng.uniform(0.1, 1.0) * msg


def fm(rng, n: int, bw: float, index: float | None = None, voice: bool = False
       ) -> np.ndarray:
    """FM at Carson bandwidth ~bw: message band fm, deviation index x fm (0.5-30; at the
    top, a test tone far below its deviation, whose lines the PSD no longer resolves)."""
    index = index if index is not None else float(np.exp(rng.uniform(np.log(0.5),
                                                                      np.log(30))))
    fm_bw = bw / (2 * (index + 1))
    msg = message(rng, n, fm_bw, "voice" if voice else None)
    return np.exp(2j * np.pi * index * fm_bw * np.cumsum(msg))


def nbfm(rng, n: int, bw: float) -> np.ndarray:
    """Narrowband FM voice: index 0.8-2 (5 kHz deviation over 3 kHz audio is 1.7)."""
    return fm(rng, n, bw, index=rng.uniform(0.8, 2.0), voice=True)


def cw(rng, n: int, bw: float) -> np.ndarray:
    """A tone whose frequency drifts by up to a quarter of its box over the window."""
    drift = rng.uniform(-1, 1) * MIN_BW / 4 / n
    return np.exp(1j * np.pi * drift * np.arange(n) ** 2)


def chirp(rng, n: int, bw: float) -> np.ndarray:
    """Saw (up or down) or triangle sweeps across bw, 1-8 per window."""
    period = max(64, n // int(rng.integers(1, 9)))
    tau = (np.arange(n) % period) / period
    if rng.random() < 0.3:
        freq = bw * (np.abs(2 * tau - 1) - 0.5)
    else:
        freq = bw * (tau - 0.5) * rng.choice([-1, 1])
    return np.exp(2j * np.pi * np.cumsum(freq))


def css(rng, n: int, bw: float) -> np.ndarray:
    """LoRa-like chirp spread spectrum: 2^SF chips a symbol at chip rate bw, each symbol an
    up-chirp across bw cyclically shifted by its value; a preamble of plain up-chirps."""
    sf = int(rng.integers(6, 11))
    chips = 2 ** sf
    symbol = chips / bw                          # samples a symbol
    count = int(np.ceil(n / symbol)) + 1
    values = rng.integers(0, chips, count)
    values[: int(rng.integers(0, 9))] = 0        # preamble
    t = np.arange(n) / symbol
    k = t.astype(int)
    freq = bw * (np.mod(t - k + values[k] / chips, 1.0) - 0.5)
    return np.exp(2j * np.pi * np.cumsum(freq))


def ais(rng, n: int, bw: float) -> np.ndarray:
    """AIS-like: GMSK, BT 0.4, index 0.5 (bursts of 256 bits placed by the scene)."""
    return fsk(rng, n, bw, levels=2, index=0.5, bt=0.4)


def adsb(rng, n: int, bw: float) -> np.ndarray:
    """ADS-B-like pulse position: pulses of p samples (main lobe 2/p = bw), a preamble of
    four pulses, then one pulse per bit in the first or second half of a 2p slot."""
    p = 2.0 / bw
    slots = int(n / (2 * p)) + 1
    pattern = np.zeros(2 * slots)
    pattern[[0, 2, 7, 9]] = 1                    # the preamble's pulses (in half-slots)
    bits = rng.integers(0, 2, slots)
    idx = 16 + 2 * np.arange(slots) + bits
    pattern[idx[idx < len(pattern)]] = 1
    return pattern[(np.arange(n) / p).astype(int)].astype(complex)


EMITTERS = {"2fsk": lambda rng, n, bw: fsk(rng, n, bw, levels=2, bt=0),
            "4fsk": lambda rng, n, bw: fsk(rng, n, bw, levels=4),
            "gfsk": lambda rng, n, bw: fsk(rng, n, bw, levels=2, bt=rng.uniform(0.25, 1.0)),
            "ofdm": ofdm, "am": am, "fm": fm, "nbfm": nbfm, "cw": cw, "chirp": chirp,
            "css": css, "dsss": dsss, "ais": ais, "adsb": adsb, "fh": None}


def generate(rng, kind: str, n: int, bw: float) -> tuple[np.ndarray, float]:
    """One randomized emitter of ``kind`` near bandwidth ``bw``: (samples, label bandwidth),
    the label the band holding 99.5 % of its power, the emitter held to it."""
    if kind in CONSTELLATIONS:
        x = linear(rng, n, bw, kind=kind)
    elif kind == "fh":
        x = fsk(rng, n, bw)
    else:
        x = EMITTERS[kind](rng, n, bw)
    if kind == "cw":
        return spectral_mask(x, MIN_BW), MIN_BW
    # a carrier line (AM, OOK) is not what the band is measured by; rectangular pulses'
    # slow skirts are cut at 1.25 x the designed band
    label = float(np.clip(2 * occupied_halfwidth(x - x.mean()), 2.0 / n, 1.25 * bw))
    return spectral_mask(x, label), label


def impair(rng, x: np.ndarray) -> np.ndarray:
    """A receiver's habits on the whole scene: AGC gain steps and ADC quantization."""
    n = len(x)
    if rng.random() < 0.3:                       # AGC: 1-2 gain steps of 1-6 dB
        gain = np.ones(n)
        for at in rng.integers(n // 8, n, int(rng.integers(1, 3))):
            gain[at:] *= 10 ** (rng.choice([-1, 1]) * rng.uniform(1, 6) / 20)
        x = x * gain
    if rng.random() < 0.5:                       # ADC: 6-12 bits, peak near full scale
        bits = int(rng.integers(6, 13))
        full = max(np.abs(x.real).max(), np.abs(x.imag).max()) * rng.uniform(0.6, 1.2)
        step = full / 2 ** (bits - 1)

        def quantize(v):
            return np.clip(np.round(v / step), -2 ** (bits - 1), 2 ** (bits - 1) - 1) * step
        x = quantize(x.real) + 1j * quantize(x.imag)
    return x


def tilted_noise(rng, n: int, max_tilt_db: float = 6.0, ripple_db: float = 1.0
                 ) -> tuple[np.ndarray, callable]:
    """Complex noise of mean power 1 whose floor tilts by up to +-``max_tilt_db`` across the
    band with a ripple of up to +-``ripple_db``; returns it and its density at a normalized
    frequency (mean 1)."""
    tilt = rng.uniform(-max_tilt_db, max_tilt_db)
    ripple, phase, cycles = (rng.uniform(0, 1) * ripple_db, rng.uniform(0, 2 * np.pi),
                             rng.uniform(0.5, 3))

    def density_db(f):
        return tilt * f + ripple * np.sin(2 * np.pi * cycles * f + phase)
    freqs = np.fft.fftfreq(n)
    shape = 10 ** (density_db(freqs) / 10)
    scale = 1 / np.mean(shape)
    white = np.fft.fft((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2))
    noise = np.fft.ifft(white * np.sqrt(shape * scale))
    return noise, lambda f: float(10 ** (density_db(f) / 10) * scale)


def bandwidth(rng, max_bw: float) -> float:
    """A fifth of the emitters narrow (0.05-0.4 % of the band), the rest 0.4 % to max_bw."""
    lo, hi = (0.0005, 0.004) if rng.random() < 0.2 else (0.004, max_bw)
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _bursts(rng, kind: str, n: int, bw: float, burst_probability: float) -> list:
    """(start, stop) of each burst of one emitter."""
    if kind in SHORT_BURSTS:
        length = min(n, int(SHORT_BURSTS[kind] / bw))
        slots = max(1, min(int(rng.integers(1, 4)), n // length))  # one at a time
        slot = n // slots
        return [(k * slot + s, k * slot + s + length) for k, s in
                enumerate(rng.integers(0, slot - length + 1, slots))]
    if kind == "fh":  # dwells one after another, a short gap between
        out, at = [], int(rng.integers(0, n // 8))
        while at < n - 256:
            length = min(n - at, int(rng.uniform(0.03, 0.15) * n))
            out.append((at, at + length))
            at += length + int(rng.uniform(0.0, 0.02) * n)
        return out
    if rng.random() < burst_probability:
        length = int(rng.uniform(0.1, 0.8) * n)
        start = int(rng.integers(0, n - length))
        return [(start, start + length)]
    return [(0, n)]


def scene(rng, cfg, n_signals: int | None = None):
    """A training scene of randomized emitters and receiver: (complex64 samples, labels);
    the noise floor's mean power is 1 and each emitter's in-band SNR is over the floor's
    density at its centre. Frequency-hopping emitters give one label per dwell."""
    from .synth import SignalLabel, burst_envelope, iq_imbalance, multipath
    n = cfg.samples
    x, density = tilted_noise(rng, n)
    labels = []
    count = rng.integers(0, cfg.max_signals + 1) if n_signals is None else n_signals
    t = np.arange(n)
    for _ in range(count):
        kind = str(rng.choice(VARIETY))
        wave, bw = generate(rng, kind, n, bandwidth(rng, cfg.max_bw))
        bursts = _bursts(rng, kind, n, bw, cfg.burst_probability)
        span = min(0.9, bw * rng.uniform(5, 20)) if kind == "fh" else bw
        base = rng.uniform(-0.5 + span / 2, 0.5 - span / 2)
        snr = rng.uniform(*cfg.snr_db)
        drift = rng.uniform(-0.05, 0.05) * bw if kind != "cw" else 0.0
        wave = multipath(rng, wave, span=17, echoes=(0, 5), strongest=0.5)
        wave = wave * np.exp(1j * np.cumsum(rng.normal(0, np.exp(rng.uniform(
            np.log(1e-4), np.log(1e-2))), n)))                       # phase noise
        wave = wave * np.exp(1j * np.pi * drift * (t ** 2 / n - t))  # drift, centred
        wave = wave / np.sqrt(np.mean(np.abs(wave) ** 2))
        for start, stop in bursts:
            centre = base if kind != "fh" else base + rng.uniform(-0.5, 0.5) * (span - bw)
            power = 10 ** (snr / 10) * bw * density(centre)
            x = x + np.sqrt(power) * wave * burst_envelope(n, start, stop) * np.exp(
                2j * np.pi * centre * t)
            half = bw / 2 + abs(drift) / 2
            labels.append(SignalLabel(kind, VARIETY_FAMILY[kind], int(start), int(stop),
                                      centre - half, centre + half, round(float(snr), 2)))
    gain, phase = 1 + rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05)
    x = iq_imbalance(x, gain, phase) + rng.uniform(0, 0.05) * np.exp(2j * np.pi * rng.random())
    return impair(rng, x).astype(np.complex64), labels
