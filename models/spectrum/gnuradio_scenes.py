"""Wideband test recordings made by GNU Radio's own blocks: an evaluation set independent of
cvstream's synthesizer (never trained on).

Runs under Debian's python3 with GNU Radio 3.10 (not cvstream's venv):

    /usr/bin/python3 gnuradio_scenes.py OUT_DIR COUNT SEED [LO:HI,LO:HI,...]

Per recording: a sample rate of 2.4, 10, 20 or 56 Msps; 2-6 signals, each made by a GNU
Radio modulator at its own symbol rate and pulse shape (gr-digital PSK and QAM constellation
modulators with root-raised-cosine filters, GMSK, GFSK, packet OFDM `ofdm_tx`; analog FM and
AM; CW tones), through `channels.channel_model` (multipath taps, frequency offset, timing
drift), moved to its centre by `blocks.rotator_cc`, gated into a burst or left on, and scaled
to an in-band SNR against the `analog.noise_source_c` floor, drawn in the recording's SNR
bucket (the buckets take turns; 3-25 dB without them). Every other recording of a bucket
packs its signals with 0.2 % of the band between neighbours. Writes `NNNN.cf32`
and `NNNN.json` (rate, samples, and per signal: family, modulation, first and last sample,
normalized band edges from the signal's own 99 % power bandwidth, a CW tone's 1/8192 of the
rate around its frequency, in-band SNR).
"""
import json
import math
import os
import sys

import numpy as np
from gnuradio import analog, blocks, channels, digital, fft, filter, gr

SAMPLES = 262144
RATES = (2.4e6, 10e6, 20e6, 56e6)
FAMILY = {"bpsk": "psk", "qpsk": "psk", "8psk": "psk", "16qam": "qam", "64qam": "qam",
          "gmsk": "fsk", "gfsk": "fsk", "ofdm": "ofdm", "fm": "analog", "am": "analog",
          "cw": "tone"}
KINDS = tuple(FAMILY)


def run(source_blocks, n):
    """Run a chain of GNU Radio blocks (the first a source) and return n complex samples."""
    tb = gr.top_block()
    head = blocks.head(gr.sizeof_gr_complex, n)
    sink = blocks.vector_sink_c()
    tb.connect(*source_blocks, head, sink)
    tb.run()
    out = np.array(sink.data(), np.complex64)
    return np.concatenate([out, np.zeros(n - len(out), np.complex64)])


def random_bytes(rng, n):
    return blocks.vector_source_b(rng.integers(0, 256, n).astype(np.uint8).tolist(), True)


def constellation(name):
    return {"bpsk": digital.constellation_bpsk(), "qpsk": digital.constellation_qpsk(),
            "8psk": digital.constellation_8psk(), "16qam": digital.constellation_16qam(),
            "64qam": digital.qam_constellation(64)}[name]


def make(kind, rng, n):
    """The GNU Radio chain of one modulation and about the fraction of its own sample rate
    the signal occupies (a resampler then sets its width)."""
    if kind in ("bpsk", "qpsk", "8psk", "16qam", "64qam"):
        sps, beta = int(rng.integers(2, 9)), float(rng.uniform(0.2, 0.5))
        mod = digital.generic_mod(constellation(kind), False, sps, True, beta, False, False)
        return [random_bytes(rng, 4096), mod], (1 + beta) / sps
    if kind == "gmsk":
        sps = int(rng.integers(2, 9))
        return [random_bytes(rng, 4096),
                digital.gmsk_mod(sps, float(rng.choice([0.3, 0.35, 0.5])))], 1.0 / sps
    if kind == "gfsk":
        sps = int(rng.integers(2, 9))
        return [random_bytes(rng, 4096),
                digital.gfsk_mod(sps, float(rng.uniform(0.5, 1.5)),
                                 float(rng.choice([0.3, 0.5, 1.0])))], 1.5 / sps
    if kind == "ofdm":
        fft = int(rng.choice([64, 128]))
        occupied = list(range(-26, 0)) + list(range(1, 27)) if fft == 64 else \
            list(range(-52, 0)) + list(range(1, 53))
        pilots = [-21, -7, 7, 21] if fft == 64 else [-42, -14, 14, 42]
        data = [c for c in occupied if c not in pilots]
        tagger = blocks.stream_to_tagged_stream(gr.sizeof_char, 1, 96, "packet_len")
        tx = digital.ofdm_tx(fft_len=fft, cp_len=fft // 4, packet_length_tag_key="packet_len",
                             occupied_carriers=(data,), pilot_carriers=(pilots,),
                             pilot_symbols=((1, 1, 1, -1),), rolloff=0)
        return [random_bytes(rng, 4096), tagger, tx], len(occupied) / fft
    if kind == "fm":
        tone = float(rng.uniform(0.002, 0.02))
        audio = analog.sig_source_f(1.0, analog.GR_SIN_WAVE, tone, 1.0)
        dev = float(rng.uniform(0.02, 0.1))
        return [audio, analog.frequency_modulator_fc(2 * math.pi * dev)], 2 * (dev + tone)
    if kind == "am":
        noise = analog.noise_source_f(analog.GR_GAUSSIAN, 1.0, int(rng.integers(1 << 30)))
        lowpass = filter.fir_filter_fff(1, filter.firdes.low_pass(1.0, 1.0, 0.05, 0.02))
        depth = float(rng.uniform(0.3, 0.9))
        scale = blocks.multiply_const_ff(depth)
        offset = blocks.add_const_ff(1.0)
        to_c = blocks.float_to_complex()
        return [noise, lowpass, scale, offset, to_c], 0.12
    raise ValueError(kind)


def occupied(x, fraction=0.99):
    """Normalized band edges holding ``fraction`` of the power (Welch PSD, 8192 bins)."""
    seg = min(8192, len(x))
    frames = x[: len(x) // seg * seg].reshape(-1, seg) * np.hanning(seg)
    psd = np.fft.fftshift(np.mean(np.abs(np.fft.fft(frames, axis=1)) ** 2, axis=0))
    cum = np.cumsum(psd) / np.sum(psd)
    lo = np.searchsorted(cum, (1 - fraction) / 2)
    hi = np.searchsorted(cum, 1 - (1 - fraction) / 2)
    freqs = (np.arange(seg) - seg // 2) / seg
    return float(freqs[lo]), float(freqs[min(hi, seg - 1)] + 1.0 / seg)


def resampler(rate, size=32):
    """GNU Radio's polyphase arbitrary resampler with a windowed-sinc prototype (its default
    design runs an equiripple fit that takes minutes for large rates)."""
    cutoff = 0.45 * min(1.0, rate)
    taps = filter.firdes.low_pass(size, size, cutoff, 0.1 * min(1.0, rate),
                                  fft.window.WIN_BLACKMAN_HARRIS)
    return filter.pfb.arb_resampler_ccf(rate, taps, size)


def signal(kind, rng, n, width):
    """n samples of ``kind`` occupying about ``width`` of the band, centred at 0."""
    if kind == "cw":
        return np.exp(2j * np.pi * rng.uniform(-1e-4, 1e-4) * np.arange(n)).astype(
            np.complex64)
    chain, occupancy = make(kind, rng, 0)
    # GNU Radio's arbitrary resampler sets the width: the occupancy divides by its rate
    rate = occupancy / width
    while rate > 8:  # large interpolations in stages (one big stage stalls the scheduler)
        chain.append(resampler(8.0))
        rate /= 8
    chain.append(resampler(rate))
    taps = [1.0] + list((rng.standard_normal(3) + 1j * rng.standard_normal(3)) *
                        rng.uniform(0, 0.3) * np.array([0.6, 0.3, 0.15]))
    chain.append(channels.channel_model(0.0, 0.0, 1.0 + float(rng.uniform(-2e-5, 2e-5)),
                                        [complex(t) for t in taps], int(rng.integers(1 << 30))))
    return run(chain, n)


def place(x, rng, n):
    """Burst or continuous: (start, stop) and the gated signal."""
    if rng.random() < 0.5:
        length = int(rng.uniform(0.15, 0.7) * n)
        start = int(rng.integers(0, n - length))
    else:
        start, length = 0, n
    out = np.zeros(n, np.complex64)
    out[start:start + length] = x[:length]
    return start, start + length, out


def scene(rng, tight, snr_range=(3.0, 25.0)):
    rate = float(rng.choice(RATES))
    n = SAMPLES
    count = int(rng.integers(2, 7))
    kinds = [str(k) for k in rng.choice(KINDS, count)]
    widths = [1 / 4000 if k == "cw" else float(np.exp(rng.uniform(np.log(0.002),
                                                                  np.log(0.12))))
              for k in kinds]
    # centres: packed with a 0.2 % gap (tight) or spread at random without overlap
    total = sum(widths) + 0.002 * (count - 1)
    if tight:
        left = float(rng.uniform(-0.45, 0.45 - total))
        centres = []
        for w in widths:
            centres.append(left + w / 2)
            left += w + 0.002
    else:
        centres, taken = [], []
        for w in widths:
            for _ in range(200):
                c = float(rng.uniform(-0.45 + w / 2, 0.45 - w / 2))
                if all(abs(c - c2) > (w + w2) / 2 + 0.01 for c2, w2 in taken):
                    break
            taken.append((c, w))
            centres.append(c)
    floor = run([analog.noise_source_c(analog.GR_GAUSSIAN, 1.0, int(rng.integers(1 << 30)))],
                n)
    total_x = floor.copy()
    truth = []
    for kind, w, c in zip(kinds, widths, centres):
        x = signal(kind, rng, n, w)
        if kind == "cw":  # its band: 1/8192 of the rate around the tone's own frequency
            tone = float(np.angle(np.vdot(x[:-1], x[1:]))) / (2 * math.pi)
            lo, hi = tone - 0.5 / 8192, tone + 0.5 / 8192
        else:
            lo, hi = occupied(x)
        start, stop, x = place(x, rng, n)
        snr = float(rng.uniform(*snr_range))
        active = x[start:stop]
        power = float(np.mean(np.abs(active) ** 2)) + 1e-20
        # in-band SNR: signal power over the noise power in its band (unit-power floor);
        # a tone's band is taken as 1/4000 of the sample rate
        noise_in_band = 1 / 4000 if kind == "cw" else hi - lo
        x *= np.sqrt(10 ** (snr / 10) * noise_in_band / power)
        rot = run([blocks.vector_source_c(x.tolist(), False), blocks.rotator_cc(
            2 * math.pi * c)], n)
        total_x += rot
        truth.append({"modulation": kind, "family": FAMILY[kind], "start": start,
                      "stop": stop, "f_low": c + lo, "f_high": c + hi, "snr_db": snr})
    return rate, total_x.astype(np.complex64), truth


def main():
    out_dir, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    buckets = [tuple(float(v) for v in b.split(":")) for b in sys.argv[4].split(",")] \
        if len(sys.argv) > 4 else [(3.0, 25.0)]
    os.makedirs(out_dir, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        bucket = buckets[i % len(buckets)]
        rate, x, truth = scene(rng, tight=(i // len(buckets)) % 2 == 1, snr_range=bucket)
        x.tofile(os.path.join(out_dir, f"{i:04d}.cf32"))
        with open(os.path.join(out_dir, f"{i:04d}.json"), "w") as f:
            json.dump({"rate": rate, "samples": len(x), "bucket": bucket, "signals": truth},
                      f, indent=1)
        print(f"recording {i + 1}/{count}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
