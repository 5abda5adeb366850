"""Wideband scenes: 0..N signals with bursts, overlaps and channel impairments, and their
labels (one box per signal; a class per time-frequency cell).

SNR is in-band: the signal's power over the noise power inside its own occupied bandwidth.
White noise has total power 1 (over the full band), so a signal of normalized bandwidth b at
in-band SNR s has power s * b.

Impairments, per signal: carrier offset (part of the random centre), multipath (2-3 taps
within 8 samples, random complex gains), Wiener phase noise; per scene: IQ imbalance
(amplitude and phase) and a DC offset.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np

from cvstream.blocks.sigmf_io import CVSTREAM_EXTENSION

from .waveforms import CLASSES, FAMILY, MIN_BW, MODULATIONS, TONE_BW, generate


@dataclass
class SignalLabel:
    modulation: str
    label: str          # family: one of CLASSES
    start: int          # first sample
    stop: int           # one past the last sample
    f_low: float        # normalized frequency (-0.5..0.5) of the lower edge
    f_high: float
    snr_db: float       # in-band

    @property
    def center(self) -> float:
        return 0.5 * (self.f_low + self.f_high)


@dataclass
class SceneConfig:
    samples: int = 262144
    max_signals: int = 5
    min_bw: float = MIN_BW
    max_bw: float = 0.25
    snr_db: tuple[float, float] = (-10.0, 30.0)
    burst_probability: float = 0.5
    modulations: tuple[str, ...] = tuple(MODULATIONS)
    #: randomized emitters, new families and receiver habits (``variety``): training data
    variety: bool = False
    #: a noise floor tilted across the band by up to +- this many dB (a receiver's filters;
    #: in-band SNRs stay over the floor at each signal's centre); 0: white
    floor_tilt_db: float = 0.0


def _bandwidth(rng, cfg: SceneConfig) -> float:
    return float(np.exp(rng.uniform(np.log(max(cfg.min_bw, 0.004)), np.log(cfg.max_bw))))


def multipath(rng, x: np.ndarray, span: int = 8, echoes: tuple[int, int] = (1, 3),
              strongest: float = 0.4) -> np.ndarray:
    """x through a channel of a direct path and echoes[0]..echoes[1]-1 echoes at random
    delays within ``span`` samples, each 0.05..``strongest`` of it with a random phase."""
    taps = np.zeros(span, complex)
    taps[0] = 1.0
    for d in rng.choice(np.arange(1, span), rng.integers(*echoes), replace=False):
        taps[d] = rng.uniform(0.05, strongest) * np.exp(2j * np.pi * rng.random())
    return np.convolve(x, taps / np.linalg.norm(taps))[:len(x)]


def iq_imbalance(x: np.ndarray, gain: float, phase: float) -> np.ndarray:
    """x through a receiver whose I and Q branches differ by ``gain`` and ``phase`` (rad)."""
    mu = 0.5 * (1 + gain * np.exp(-1j * phase))
    nu = 0.5 * (1 - gain * np.exp(1j * phase))
    return mu * x + nu * np.conj(x)


def burst_envelope(n: int, start: int, stop: int) -> np.ndarray:
    """1 over [start, stop), 0 elsewhere, with raised-cosine ramps of up to 64 samples."""
    env = np.zeros(n)
    env[start:stop] = 1.0
    ramp = min(64, (stop - start) // 4)
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        env[start:start + ramp] *= edge
        env[stop - ramp:stop] *= edge[::-1]
    return env


def scene(rng: np.random.Generator, cfg: SceneConfig = SceneConfig(),
          n_signals: int | None = None) -> tuple[np.ndarray, list[SignalLabel]]:
    """One example: complex64 samples (noise power 1) and its signal labels."""
    if cfg.variety:
        from . import variety
        return variety.scene(rng, cfg, n_signals)
    n = cfg.samples
    if cfg.floor_tilt_db:
        from .variety import tilted_noise
        x, density = tilted_noise(rng, n, cfg.floor_tilt_db, ripple_db=0.0)
    else:
        x, density = (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2), None
    labels = []
    count = rng.integers(0, cfg.max_signals + 1) if n_signals is None else n_signals
    for _ in range(count):
        kind = str(rng.choice(cfg.modulations))
        wave, bw = generate(rng, kind, n, _bandwidth(rng, cfg))
        bw = max(bw, MIN_BW)
        center = rng.uniform(-0.5 + bw / 2, 0.5 - bw / 2)
        start, stop = 0, n
        if rng.random() < cfg.burst_probability:
            length = int(rng.uniform(0.1, 0.8) * n)
            start = int(rng.integers(0, n - length))
            stop = start + length
        snr = rng.uniform(*cfg.snr_db)
        power = 10 ** (snr / 10) * bw * (density(center) if density else 1.0)
        wave = multipath(rng, wave)
        wave = wave * np.exp(1j * np.cumsum(rng.normal(0, 1e-3, n)))  # phase noise
        wave *= np.sqrt(power / np.mean(np.abs(wave) ** 2))
        x += wave * burst_envelope(n, start, stop) * np.exp(2j * np.pi * center * np.arange(n))
        half = TONE_BW / 2 if kind == "cw" else bw / 2   # a tone's box: its line
        labels.append(SignalLabel(kind, FAMILY[kind], start, stop, center - half,
                                  center + half, round(float(snr), 2)))
    # receiver impairments: IQ imbalance and DC offset
    gain, phase = 1 + rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03)
    x = iq_imbalance(x, gain, phase) + 0.02 * np.exp(2j * np.pi * rng.random())
    return x.astype(np.complex64), labels


def cell_labels(labels: list[SignalLabel], n_samples: int, fft: int, hop: int) -> np.ndarray:
    """Class index per (frame, bin) of a centred STFT (0: noise, 1 + CLASSES index): a cell
    belongs to the strongest signal whose box covers it."""
    frames = 1 + (n_samples - fft) // hop
    grid = np.zeros((frames, fft), np.int64)
    best = np.full((frames, fft), -np.inf)
    freqs = (np.arange(fft) - fft // 2) / fft
    for lab in labels:
        t0 = max(0, -(-(lab.start - fft // 2) // hop))
        t1 = min(frames, (lab.stop - fft // 2) // hop + 1)
        fmask = (freqs >= lab.f_low - 0.5 / fft) & (freqs <= lab.f_high + 0.5 / fft)
        if t1 <= t0 or not fmask.any():
            continue
        region = best[t0:t1, fmask]
        win = lab.snr_db > region
        grid[t0:t1, fmask] = np.where(win, 1 + CLASSES.index(lab.label), grid[t0:t1, fmask])
        best[t0:t1, fmask] = np.maximum(region, lab.snr_db)
    return grid


def write_sigmf(base: str, x: np.ndarray, labels: list[SignalLabel], rate: float,
                center_freq: float = 0.0, seed: int | None = None) -> str:
    """Write ``base.sigmf-data`` / ``base.sigmf-meta``; annotations carry the labels in Hz."""
    x.astype(np.complex64).tofile(base + ".sigmf-data")
    ann = []
    for lab in sorted(labels, key=lambda s: s.start):
        ann.append({"core:sample_start": lab.start, "core:sample_count": lab.stop - lab.start,
                    "core:freq_lower_edge": center_freq + lab.f_low * rate,
                    "core:freq_upper_edge": center_freq + lab.f_high * rate,
                    "core:label": lab.label, "cvstream:modulation": lab.modulation,
                    "cvstream:snr_db": lab.snr_db})
    meta = {"global": {"core:datatype": "cf32_le", "core:sample_rate": rate,
                       "core:version": "1.2.0", "core:recorder": "cvstream synth spectrum",
                       "core:description": "synthetic wideband scene; SNR in-band",
                       "core:extensions": [{"name": "cvstream",
                                            "version": CVSTREAM_EXTENSION,
                                            "optional": True}]},
            "captures": [{"core:sample_start": 0, "core:frequency": center_freq}],
            "annotations": ann}
    if seed is not None:
        meta["global"]["cvstream:seed"] = seed
    with open(base + ".sigmf-meta", "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
    return base + ".sigmf-meta"


def write_dataset(out_dir: str, count: int, seed: int, rate: float = 20e6,
                  cfg: SceneConfig = SceneConfig(), progress=None) -> list[str]:
    """``count`` scenes as SigMF recordings (deterministic from ``seed``) plus a manifest."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        x, labels = scene(rng, cfg)
        paths.append(write_sigmf(os.path.join(out_dir, f"scene_{i:05d}"), x, labels, rate,
                                 seed=seed))
        if progress is not None:
            progress(i + 1, count)
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump({"seed": seed, "count": count, "rate": rate, "config": asdict(cfg),
                   "recordings": [os.path.basename(p) for p in paths]}, fh, indent=1)
    return paths
