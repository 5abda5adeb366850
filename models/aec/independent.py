"""Echo-cancellation scenes from a second, independent generator, for evaluation only (no
model trains on them): what a different device and room would do to the same kind of
speech.

Where the project's synthesizer (``synth.py``) uses pyroomacoustics shoebox rooms, the AEC
Challenge loudspeaker formula and 0-200 ms bulk delays, this one draws:

- a statistical room response: the direct path at the loudspeaker-microphone distance of a
  hands-free device (5-40 cm), 4-12 early reflections at random delays (2-30 ms after it)
  and gains, and a late tail of Gaussian noise decaying at RT60 0.15-0.8 s from 20 ms on;
- a memoryless loudspeaker of another shape on 70 % of scenes: tanh soft clipping at a
  random drive (1-4) or an asymmetric polynomial x + a x^2 + b x^3;
- a bulk delay of 10-150 ms, far-end speech peaking at 0.25-0.9 of full scale;
- noise from an AR(1) filter (white to brownish, coefficient 0-0.98) at 15-35 dB SNR;
- double talk at a signal-to-echo ratio of -5..+10 dB.

Speech comes from another synthesizer than the training's: flite's five English voices,
built from recorded speech (``speech.py``; the training scenes are all espeak-ng).
``scene`` has ``synth.scene``'s signature and output.
"""
from __future__ import annotations

import numpy as np
import scipy.signal

from .speech import FS, flite_voice, talk
from .synth import SceneInfo, _power

SOUND_SPEED = 343.0


def room_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Direct path, sparse early reflections and an exponentially decaying noise tail."""
    distance = rng.uniform(0.05, 0.4)
    direct = int(distance / SOUND_SPEED * FS)
    n = direct + int(FS * min(1.0, 1.2 * rt60))
    h = np.zeros(n, np.float64)
    h[direct] = 1.0 / max(distance, 0.05)
    for _ in range(int(rng.integers(4, 13))):
        k = direct + int(rng.uniform(0.002, 0.03) * FS)
        h[k] += rng.choice([-1, 1]) * rng.uniform(0.1, 0.7) * h[direct]
    start = direct + int(0.02 * FS)
    t = np.arange(n - start) / FS
    tail = rng.standard_normal(n - start) * np.exp(-6.9 * t / rt60)
    h[start:] += tail * h[direct] * rng.uniform(0.05, 0.3)
    return (h / np.max(np.abs(h))).astype(np.float32)


def loudspeaker(rng: np.random.Generator, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """(played signal, nonlinear?): tanh soft clipping or an asymmetric polynomial."""
    if rng.random() >= 0.7:
        return x, False
    if rng.random() < 0.5:
        drive = rng.uniform(1, 4)
        return (np.tanh(drive * x) / drive).astype(np.float32), True
    a, b = rng.uniform(0.2, 0.8), rng.uniform(-1.5, -0.3)
    return (x + a * x ** 2 + b * x ** 3).astype(np.float32), True


def noise(rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
    coef = float(rng.uniform(0, 0.98))
    x = scipy.signal.lfilter([1.0], [1.0, -coef], rng.standard_normal(n))
    return x.astype(np.float32), f"ar1 {coef:.2f}"


def scene(rng: np.random.Generator, seconds: float = 6.0, scenario: str | None = None,
          delay_ms: float | None = None, path_change: bool = False,
          variety: bool = False) -> tuple[dict, SceneInfo]:
    """{"mic", "ref", "near", "noise"} float32 at 16 kHz and what was drawn, as
    ``synth.scene`` gives them; ``scenario`` is fst, nst, dt or epc (the room response
    changes half-way). ``variety`` is accepted for the same signature and ignored."""
    n = int(seconds * FS)
    scenario = scenario or str(rng.choice(("fst", "nst", "dt", "epc")))
    far_t = flite_voice(rng)
    near_t = flite_voice(rng, other=far_t)
    rt60 = float(rng.uniform(0.15, 0.8))
    delay = float(rng.uniform(10, 150)) if delay_ms is None else float(delay_ms)
    ref = np.zeros(n, np.float32)
    if scenario != "nst":
        ref = (talk(rng, far_t, seconds) * rng.uniform(0.5, 1.8)).astype(np.float32)
    played, nonlinear = loudspeaker(rng, ref)
    played = np.concatenate([np.zeros(int(delay * FS / 1000), np.float32), played])[:n]
    echo = scipy.signal.fftconvolve(played, room_response(rng, rt60))[:n]
    if scenario == "epc" or path_change:
        echo[n // 2:] = scipy.signal.fftconvolve(played, room_response(rng, rt60))[:n][n // 2:]
    near = np.zeros(n, np.float32)
    if scenario != "fst":
        near_rir = room_response(rng, rt60)
        near = scipy.signal.fftconvolve(talk(rng, near_t, seconds), near_rir)[:n]
    ser = float(rng.uniform(-5, 10))
    if scenario in ("dt", "epc"):
        echo *= np.sqrt(_power(near) / _power(echo) / 10 ** (ser / 10))
    elif scenario == "fst":
        echo *= 0.3 / (np.max(np.abs(echo)) + 1e-9)
    v, kind = noise(rng, n)
    snr = float(rng.uniform(15, 35))
    v *= np.sqrt((_power(near) if scenario != "fst" else _power(echo)) / _power(v)
                 / 10 ** (snr / 10))
    mic = (near + echo + v).astype(np.float32)
    peak = max(1.0, float(np.max(np.abs(mic))) / 0.9)
    out = {"mic": mic / peak, "ref": ref, "near": (near / peak).astype(np.float32),
           "noise": (v / peak).astype(np.float32)}
    return out, SceneInfo(scenario, round(ser, 2), round(snr, 2), round(delay, 1),
                          round(rt60, 3), nonlinear, kind, far_t, near_t)
