"""How aggressive the learned echo canceller is, frame by frame: its base level while the
near end talks, raised towards a single-talk level while only the far end does.

Far-end single talk needs no near-end quality (the ideal output is silence), double talk
needs gentle masks. The canceller's own output tells them apart: while it stays far below
the microphone (``QUIET_DB``) the near end is silent, and as soon as near-end speech comes
through the output rises (its level follows at once; it falls back slowly, ``SMOOTHING``,
~330 ms). The boost also waits for the linear stage to predict an echo (its estimate
within ``ECHO_DB`` of the microphone), so near-end single talk, and the time before the
filter finds the echo, keep the base level. Causal: frame t's level comes from frames
before t.
"""
from __future__ import annotations

import numpy as np

QUIET_DB = (-28.0, -20.0)   # output / microphone: full boost below the first, none above
ECHO_DB = -35.0             # echo estimate / microphone: boost from here, full 10 dB above
SMOOTHING = 0.97            # of the power estimates per frame (10 ms hops: ~330 ms)
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
