"""Echo-cancellation scenes: a far-end talker played by a loudspeaker into a room, a
near-end talker, background noise, and the microphone that hears them all.

Per scene: room impulse responses from pyroomacoustics (shoebox, RT60 0.1-1.0 s by inverse
Sabine), loudspeaker nonlinearity on 80 % of scenes (hard clip at 0.8 of the peak, then
b = 1.5 x - 0.3 x^2, NL = 4 (2 / (1 + exp(-a b)) - 1), a = 4 for b > 0 else 0.5, as in the
AEC Challenge recipe), bulk delay 0-200 ms between reference and echo, signal-to-echo ratio
-10..+10 dB, noise (white, pink, brown or babble) at 10-40 dB SNR. Scenarios: far-end single
talk (fst), near-end single talk (nst), double talk (dt), echo-path change (epc: the room
response changes half-way, during double talk). Training scenes add ``Variety``: bulk delays
0-500 ms, clock drift of +-60 ppm, echo-path changes at random times, delay jitter (the
bulk delay jumps by a few milliseconds, as when a device's audio buffers slip) and small
loudspeakers (no bass, a resonance).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np
import scipy.signal
import soundfile as sf

from .speech import FS, talk, voice

SCENARIOS = ("fst", "nst", "dt", "epc")


@dataclass
class SceneInfo:
    scenario: str
    ser_db: float
    snr_db: float
    delay_ms: float
    rt60_s: float
    nonlinear: bool
    noise: str
    far_talker: dict
    near_talker: dict


def room_rirs(rng: np.random.Generator, rt60: float, count: int = 2) -> list[np.ndarray]:
    """Impulse responses from ``count`` random source positions to one microphone."""
    import pyroomacoustics as pra
    dims = np.array([rng.uniform(3, 8), rng.uniform(3, 6), rng.uniform(2.4, 3.5)])
    while True:  # a short RT60 in a big room needs absorption > 1: shrink the room
        try:
            absorption, max_order = pra.inverse_sabine(rt60, dims)
            break
        except ValueError:
            dims = np.maximum(dims * 0.85, 1.5)
    room = pra.ShoeBox(dims, fs=FS, materials=pra.Material(absorption),
                       max_order=min(max_order, 30))
    margin = 0.5
    mic = rng.uniform(margin, dims - margin)
    room.add_microphone(mic)
    for _ in range(count):
        room.add_source(rng.uniform(margin, dims - margin))
    room.compute_rir()
    return [np.asarray(room.rir[0][k], np.float32)[: int(FS * min(1.2, rt60 * 1.5))]
            for k in range(count)]


def loudspeaker(x: np.ndarray) -> np.ndarray:
    peak = np.max(np.abs(x)) + 1e-9
    clipped = np.clip(x, -0.8 * peak, 0.8 * peak)
    b = 1.5 * clipped - 0.3 * clipped ** 2
    a = np.where(b > 0, 4.0, 0.5)
    return (4 * (2 / (1 + np.exp(-a * b)) - 1)).astype(np.float32)


def colored_noise(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        return white.astype(np.float32)
    spectrum = np.fft.rfft(white)
    f = np.maximum(np.arange(len(spectrum)), 1)
    spectrum /= np.sqrt(f) if kind == "pink" else f
    return np.fft.irfft(spectrum, n).astype(np.float32)


def _power(x):
    return float(np.mean(x ** 2)) + 1e-12


@dataclass
class Variety:
    """What training scenes draw beyond the evaluation's (``scene(variety=True)``): a bulk
    delay up to 500 ms, clock drift between the far end and the microphone, an echo-path
    change at a random time, delay jumps (jitter: on 30 % of scenes one or two jumps of
    2-20 ms either way at random times) and a small loudspeaker on 40 % of scenes (a
    high-pass at 150-500 Hz and a resonance at 400-2000 Hz, +4..+12 dB, Q 1-4)."""
    delay_ms: float
    drift_ppm: float
    change_at: float | None      # fraction of the scene, or None
    jumps: tuple = ()            # (fraction of the scene, delay change in ms), in time order
    speaker: tuple | None = None  # (high-pass Hz, resonance Hz, resonance dB, Q)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Variety":
        delay = float(rng.uniform(0, 500))
        drift = float(rng.uniform(-60, 60))
        change = float(rng.uniform(0.2, 0.8)) if rng.random() < 0.3 else None
        jumps = ()
        if rng.random() < 0.3:
            at = np.sort(rng.uniform(0.1, 0.9, int(rng.integers(1, 3))))
            jumps = tuple((float(a), float(rng.choice([-1, 1]) * rng.uniform(2, 20)))
                          for a in at)
        speaker = None
        if rng.random() < 0.4:
            speaker = (float(rng.uniform(150, 500)), float(rng.uniform(400, 2000)),
                       float(rng.uniform(4, 12)), float(rng.uniform(1, 4)))
        return cls(delay, drift, change, jumps, speaker)


def drifted(x: np.ndarray, ppm: float, jumps: tuple = ()) -> np.ndarray:
    """``x`` played by a clock ``ppm`` parts per million fast (linear interpolation), later
    by ``jumps``' milliseconds from each jump's fraction of the signal on."""
    t = np.arange(len(x)) * (1 + ppm * 1e-6)
    for at, ms in jumps:
        t[int(at * len(x)):] -= ms * FS / 1000
    return np.interp(t, np.arange(len(x)), x, left=0.0, right=0.0).astype(np.float32)


def small_speaker(x: np.ndarray, highpass_hz: float, peak_hz: float, gain_db: float,
                  q: float) -> np.ndarray:
    """A small loudspeaker's response: no bass below ``highpass_hz`` (2nd-order
    Butterworth), a resonance (peaking filter) at ``peak_hz``; the level is kept."""
    b, a = scipy.signal.butter(2, highpass_hz, "highpass", fs=FS)
    y = scipy.signal.lfilter(b, a, x)
    w = 2 * np.pi * peak_hz / FS
    g = 10 ** (gain_db / 40)
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * g, -2 * np.cos(w), 1 - alpha * g]
    a = [1 + alpha / g, -2 * np.cos(w), 1 - alpha / g]
    y = scipy.signal.lfilter(b, a, y)
    return (y * np.sqrt(_power(x) / _power(y))).astype(np.float32)


def scene(rng: np.random.Generator, seconds: float = 6.0, scenario: str | None = None,
          delay_ms: float | None = None, path_change: bool = False,
          variety: bool = False) -> tuple[dict, SceneInfo]:
    """{"mic", "ref", "near", "noise"} float32 at 16 kHz (near: the near-end speech as the
    microphone hears it, the target; noise: the background part of mic) and what was drawn.
    ``delay_ms`` fixes the bulk delay (otherwise drawn from 0-200 ms; the draw happens
    either way, so the rest of the scene is the same). ``path_change`` switches the echo
    path half-way in any scenario (``epc`` always does). ``variety`` (training) first draws
    a ``Variety`` and applies it; without it the scenes are the evaluation's, unchanged."""
    extra = Variety.draw(rng) if variety else None
    n = int(seconds * FS)
    scenario = scenario or str(rng.choice(SCENARIOS))
    far_t, near_t = voice(rng), voice(rng)
    while near_t == far_t:
        near_t = voice(rng)
    rt60 = float(rng.uniform(0.1, 1.0))
    rirs = room_rirs(rng, rt60, 3)
    delay = float(rng.uniform(0, 200))
    delay = delay if delay_ms is None else float(delay_ms)
    nonlinear = bool(rng.random() < 0.8)
    ref = talk(rng, far_t, seconds) if scenario != "nst" else np.zeros(n, np.float32)
    played = loudspeaker(ref) if nonlinear else ref
    change = n // 2
    if extra is not None:
        delay = extra.delay_ms if delay_ms is None else delay
        if extra.speaker is not None:
            played = small_speaker(played, *extra.speaker)
        played = drifted(played, extra.drift_ppm, extra.jumps)
        change = int(n * extra.change_at) if extra.change_at is not None else change
    played = np.concatenate([np.zeros(int(delay * FS / 1000), np.float32), played])[:n]
    echo = scipy.signal.fftconvolve(played, rirs[0])[:n]
    if scenario == "epc" or path_change or (extra is not None and extra.change_at):
        echo2 = scipy.signal.fftconvolve(played, rirs[2])[:n]   # the echo path changes
        echo[change:] = echo2[change:]
    near = np.zeros(n, np.float32)
    if scenario != "fst":
        near = scipy.signal.fftconvolve(talk(rng, near_t, seconds), rirs[1])[:n]
    ser = float(rng.uniform(-10, 10))
    if scenario in ("dt", "epc"):
        echo *= np.sqrt(_power(near) / _power(echo) / 10 ** (ser / 10))
    elif scenario == "fst":
        echo *= 0.3 / (np.max(np.abs(echo)) + 1e-9)
    noise_kind = str(rng.choice(["white", "pink", "brown", "babble"]))
    if noise_kind == "babble":
        noise = sum(talk(rng, voice(rng), seconds) for _ in range(4)).astype(np.float32)
    else:
        noise = colored_noise(rng, n, noise_kind)
    snr = float(rng.uniform(10, 40))
    signal_power = _power(near) if scenario != "fst" else _power(echo)
    noise *= np.sqrt(signal_power / _power(noise) / 10 ** (snr / 10))
    mic = (near + echo + noise).astype(np.float32)
    peak = max(1.0, float(np.max(np.abs(mic))) / 0.9)  # keep the microphone in range
    out = {"mic": mic / peak, "ref": ref.astype(np.float32),
           "near": (near / peak).astype(np.float32), "noise": (noise / peak).astype(np.float32)}
    return out, SceneInfo(scenario, round(ser, 2), round(snr, 2), round(delay, 1),
                          round(rt60, 3), nonlinear, noise_kind, far_t, near_t)


def write_dataset(out_dir: str, count: int, seed: int, seconds: float = 6.0,
                  progress=None) -> list[dict]:
    """WAV files (mic, ref, near, noise) and a manifest, deterministic from ``seed``; the
    scenarios cycle so every one is equally represented."""
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        signals, info = scene(rng, seconds, SCENARIOS[i % len(SCENARIOS)])
        entry = {"id": f"{i:05d}", **asdict(info)}
        for key, x in signals.items():
            name = f"{i:05d}_{key}.wav"
            sf.write(os.path.join(out_dir, name), x, FS, subtype="FLOAT")
            entry[key] = name
        entries.append(entry)
        if progress is not None:
            progress(i + 1, count)
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as fh:
        json.dump({"seed": seed, "count": count, "rate": FS, "scenes": entries}, fh, indent=1)
    return entries
