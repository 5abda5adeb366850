"""How the learned echo canceller's output is shaped frame by frame: its aggressiveness (the
base level while the near end talks, raised towards a single-talk level while only the far
end does) and a floor of the linear stage's own output kept under the network's.

Far-end single talk needs no near-end quality (the ideal output is silence), double talk
needs gentle masks. The canceller's own output tells them apart: while it stays far below
the microphone (``QUIET_DB``) the near end is silent, and as soon as near-end speech comes
through the output rises (its level follows at once; it falls back slowly, ``SMOOTHING``,
~330 ms). The boost also waits for the linear stage to predict an echo (its estimate
within ``ECHO_DB`` of the microphone), so near-end single talk, and the time before the
filter finds the echo, keep the base level. Causal: frame t's level comes from frames
before t.

The floor (``LinearFloor``): the network's masks, however gentle, carve holes into the
near-end speech that PESQ hears; mixing a share of the linear stage's error back in (a
suppression floor, as classical suppressors keep a minimum gain) fills them. It shrinks as
the frame's aggressiveness rises (none at 1, so the boost still clears far-end single
talk), and it is kept only while the linear stage is removing echo (its error
``FLOOR_RAMP_DB`` or more under the microphone over ~100 ms; an error as loud as the
microphone means a changed echo path, whose echo the floor would let through).
"""
from __future__ import annotations

import numpy as np

QUIET_DB = (-28.0, -20.0)   # output / microphone: full boost below the first, none above
ECHO_DB = -35.0             # echo estimate / microphone: boost from here, full 10 dB above
SMOOTHING = 0.97            # of the power estimates per frame (10 ms hops: ~330 ms)
FLOOR_RAMP_DB = 1.5         # microphone / linear error: no floor at 0 dB, all of it from here
FLOOR_SMOOTHING = 0.9       # of its power estimates per frame (~100 ms)
TINY = 1e-12


def _power(z: np.ndarray) -> float:
    return float(np.vdot(z, z).real) + TINY


class SingleTalkBoost:
    """``level()`` is the aggressiveness for the next frame; ``update(mic, echo, out)``
    takes that frame's spectra (echo: the linear stage's estimate, None without one)."""

    def __init__(self, base: float, single_talk: float):
        self.base, self.single = base, single_talk
        self.mic = self.out = self.echo = TINY

    def level(self) -> float:
        quiet_at, loud_at = QUIET_DB
        ratio = 10 * np.log10(self.out / self.mic)
        quiet = min(max((loud_at - ratio) / (loud_at - quiet_at), 0.0), 1.0)
        echo = min(max((10 * np.log10(self.echo / self.mic) - ECHO_DB) / 10, 0.0), 1.0)
        return self.base + (self.single - self.base) * quiet * echo

    def update(self, mic: np.ndarray, echo: np.ndarray | None, out: np.ndarray) -> None:
        s = SMOOTHING
        self.mic = s * self.mic + (1 - s) * _power(mic)
        now = _power(out)
        self.out = max(s * self.out + (1 - s) * now, now)
        self.echo = s * self.echo + (1 - s) * (_power(echo) if echo is not None else self.mic)


class LinearFloor:
    """``weights(mic, err, levels)``: per frame of the microphone's and the linear stage's
    error spectra (T, bins) and the frames' aggressiveness (T,), the share (T,) of the
    error to mix into the network's output: ``out + w (err - out)``, w at most ``floor``."""

    def __init__(self, floor: float):
        self.floor = floor
        self.mic = self.err = TINY

    def weights(self, mic: np.ndarray, err: np.ndarray, levels: np.ndarray) -> np.ndarray:
        mic_p, self.mic = _smoothed(_powers(mic), self.mic)
        err_p, self.err = _smoothed(_powers(err), self.err)
        removing = np.clip(10 * np.log10(mic_p / err_p) / FLOOR_RAMP_DB, 0.0, 1.0)
        return self.floor * (1 - levels) * removing


def _powers(spectra: np.ndarray) -> np.ndarray:
    return np.sum(spectra.real.astype(np.float64) ** 2 + spectra.imag.astype(np.float64) ** 2,
                  axis=1) + TINY


def _smoothed(p: np.ndarray, last: float) -> tuple[np.ndarray, float]:
    """p smoothed frame by frame (FLOOR_SMOOTHING) from the state ``last``, and the new
    state."""
    s = FLOOR_SMOOTHING
    if len(p) == 0:
        return p, last
    import scipy.signal   # here: half a second to import, kept off startup
    out = scipy.signal.lfilter([1 - s], [1, -s], p, zi=[s * last])[0]
    return out, float(out[-1])
