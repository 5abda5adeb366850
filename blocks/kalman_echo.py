"""A linear echo canceller: a partitioned-block frequency-domain Kalman filter (PFDKF) behind
a bulk-delay estimator.

The filter (``PartitionedKalmanFilter``) models the echo path as ``partitions`` blocks of
``block`` taps in exact overlap-save form (each partition's update is constrained back to
``block`` causal taps, so there is no circular aliasing). Per partition p and frequency bin
k its state is the weight W_p[k] with a variance P_p[k]; each block

    y     = last half of IFFT(sum_p X_p W_p),   E = FFT([0, d - y])    (the a-priori error)
    Phi_S = max(0.9 Phi_S + 0.1 |E|^2, |E|^2)   what the filter cannot explain (near end,
                                                noise); it rises at once, falls slowly
    K_p   = P_p conj(X_p) / (sum_q |X_q|^2 P_q + 8 Phi_S + floor)
    W_p  += constrain(K_p E)
    P_p   = a^2 (1 - K_p X_p / 2) P_p + (1 - a^2) |W_p|^2

so the step is large while the filter is uncertain and small when the error is mostly
near-end speech or noise (robust to double talk without a detector); the process noise
(1 - a^2) |W|^2 (``forgetting`` a) lets it follow slow changes of the echo path. A sudden
change (someone moves the phone) shows as an error louder than the microphone itself over
~100 ms, which double talk cannot cause (a converged filter only takes echo away): then
every P_p goes back to its initial 1 and the filter re-converges as fast as at the start.
With ``channels`` 2 or 3 the reference is expanded by a memoryless basis (x, |x|, x^3: a
rectifier/polynomial Hammerstein model of the loudspeaker) and each channel has its own
weights; the Kalman gain normalizes over all of them.

``neural_kalman.py`` keeps this filter and takes its gain from a trained network instead
(a neural Kalman filter).

The delay estimator (``BulkDelayEstimator``) finds the bulk delay between reference and
microphone (0 - ``max_delay`` s) by PHAT-weighted cross-correlation on 4x decimated signals,
accumulated over time; the filter then reads the reference that many blocks back (minus
a two-block margin), so ``partitions`` only have to cover the room response.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from cvstream import In, Out, Param, RateBlock, register
from cvstream.dtypes import PortType
from cvstream.errors import ParamError


def reference_basis(x: np.ndarray, channels: int) -> np.ndarray:
    """(channels, n) float32: x, then |x| and x^3 (scaled to x's range) for a Hammerstein
    model of the loudspeaker."""
    rows = [x]
    if channels > 1:
        rows.append(np.abs(x))
    if channels > 2:
        rows.append(4 * x ** 3)
    return np.stack(rows[:channels]).astype(np.float32)


class PartitionedKalmanFilter:
    """Block-by-block state: ``process(mic, refs)`` with mic (block,) and refs (channels,
    block) float32 returns (error, echo estimate), each (block,) float32.

    ``offset`` (in blocks) is how far back the first partition reads the reference;
    ``set_offset`` moves it and shifts the weights with it. ``history`` blocks of reference
    spectra are kept, so offsets up to ``history - partitions`` are possible."""

    NOISE_WEIGHT = 8.0   # x Phi_S in the gain's denominator: the margin for double talk
    SMOOTHING = 0.9      # of Phi_S per block; it rises at once with the error (attack)
    LEVEL = 0.9          # smoothing of the broadband mic and error levels (~100 ms)
    FLOOR = 0.01         # x the mean explained power over all bins, added to every bin's
    #                      denominator: bins the reference never fills would otherwise get
    #                      huge steps from the error that leaks into them

    def __init__(self, block: int = 160, partitions: int = 32, channels: int = 1,
                 forgetting: float = 0.9995, history: int | None = None):
        self.n, self.parts, self.channels = block, partitions, channels
        self.a2 = forgetting ** 2
        bins = block + 1
        self.history = max(history or partitions, partitions)
        self.prev = np.zeros((channels, block), np.float32)
        # reference spectra, newest first from ``head``; stored twice over so that any
        # window of partitions is one contiguous view
        self.spectra = np.zeros((channels, 2 * self.history, bins), np.complex64)
        self.head = 0
        self.w = np.zeros((channels, partitions, bins), np.complex64)
        self.var = np.ones((channels, partitions, bins), np.float32)
        self.noise = np.zeros(bins, np.float32)
        self.mean_explained = np.zeros(bins, np.float32)
        self.offset = 0
        self.level = np.zeros(2)
        self._zeros = np.zeros(block, np.float32)

    def set_offset(self, offset: int) -> None:
        """Read the reference ``offset`` blocks back (0 .. history - partitions); weights
        follow the taps they model."""
        shift = offset - self.offset
        if shift == 0:
            return
        w, var = np.zeros_like(self.w), np.ones_like(self.var)
        if 0 < shift < self.parts:          # the echo comes later: old tap p + shift is p
            w[:, :-shift], var[:, :-shift] = self.w[:, shift:], self.var[:, shift:]
        elif 0 < -shift < self.parts:
            w[:, -shift:], var[:, -shift:] = self.w[:, :shift], self.var[:, :shift]
        self.w, self.var, self.offset = w, var, offset

    def process(self, mic: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self._push(refs)
        y, e, spec_e = self._predict(mic, x)
        self._adapt(mic, x, e, spec_e)
        return e, y

    def _push(self, refs: np.ndarray) -> np.ndarray:
        """Take the next block of the reference; (C, P, bins) spectra the partitions read."""
        frame = np.concatenate([self.prev, refs], axis=1)
        self.prev = refs
        self.head = (self.head - 1) % self.history
        self.spectra[:, self.head] = self.spectra[:, self.head + self.history] = \
            scipy.fft.rfft(frame, axis=1)
        start = self.head + self.offset
        return self.spectra[:, start:start + self.parts]

    def _predict(self, mic: np.ndarray, x: np.ndarray):
        """(echo estimate, a-priori error, the error's spectrum) of this block."""
        n = self.n
        y = scipy.fft.irfft(np.einsum("cpk,cpk->k", self.w, x), n=2 * n)[n:]
        e = (mic - y).astype(np.float32)
        return y.astype(np.float32), e, scipy.fft.rfft(np.concatenate([self._zeros, e]))

    def _constrained(self, update: np.ndarray) -> np.ndarray:
        """A (C, P, bins) update limited to each partition's ``block`` causal taps."""
        n = self.n
        taps = scipy.fft.irfft(update, n=2 * n, axis=2)
        taps[..., n:] = 0
        return scipy.fft.rfft(taps, axis=2).astype(np.complex64)

    def _adapt(self, mic: np.ndarray, x: np.ndarray, e: np.ndarray, spec_e: np.ndarray):
        b = self.SMOOTHING
        e_power = spec_e.real ** 2 + spec_e.imag ** 2
        self.noise = np.maximum(b * self.noise + (1 - b) * e_power, e_power)
        # an error louder than the microphone: the path changed under the filter
        self.level = self.LEVEL * self.level + (1 - self.LEVEL) * np.array(
            [np.dot(mic, mic), np.dot(e, e)])
        if self.level[1] > self.level[0]:
            np.maximum(self.var, 1.0, out=self.var)
        x_power = x.real ** 2 + x.imag ** 2
        explained = np.einsum("cpk,cpk->k", x_power, self.var)
        self.mean_explained = 0.99 * self.mean_explained + 0.01 * explained
        denom = (explained + self.NOISE_WEIGHT * self.noise
                 + self.FLOOR / len(self.noise) * float(np.add.reduce(self.mean_explained))
                 + 1e-10)
        gain = self.var / denom                                        # K_p = gain conj(X_p)
        self.w += self._constrained(gain * np.conj(x) * spec_e)
        self.var = (self.a2 * (1 - 0.5 * gain * x_power) * self.var
                    + (1 - self.a2) * (self.w.real ** 2 + self.w.imag ** 2)).astype(np.float32)


class BulkDelayEstimator:
    """The delay of the echo behind the reference, from PHAT-weighted cross-correlation of
    4x decimated signals over ``window`` s segments, accumulated with forgetting ``decay``.

    ``push(mic, ref)`` takes any number of samples; ``delay`` is the current estimate in
    samples (None until a confident one), ``updates`` how many times it changed."""

    DECIMATE = 4

    def __init__(self, rate: float = 16000, max_delay: float = 0.5, window: float = 0.256,
                 decay: float = 0.7, confidence: float = 6.0):
        q = self.DECIMATE
        self.seg = int(window * rate) // q
        self.max_lag = int(max_delay * rate) // q
        self.fft = 1 << int(np.ceil(np.log2(2 * self.seg + self.max_lag)))
        self.decay, self.confidence = decay, confidence
        self.cross = np.zeros(self.fft // 2 + 1, np.complex128)
        self.ref_hist = np.zeros(self.seg + self.max_lag, np.float32)
        self.mic_buf = np.zeros(0, np.float32)
        self.ref_buf = np.zeros(0, np.float32)
        self._rest_m = np.zeros(0, np.float32)
        self._rest_r = np.zeros(0, np.float32)
        self.delay: int | None = None
        self._candidate: int | None = None
        self.updates = 0

    def _decimate(self, x: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = self.DECIMATE
        x = np.concatenate([rest, x])
        whole = len(x) // q * q
        return np.add.reduce(x[:whole].reshape(-1, q), axis=1) / q, x[whole:]

    def push(self, mic: np.ndarray, ref: np.ndarray) -> int | None:
        m, self._rest_m = self._decimate(mic, self._rest_m)
        r, self._rest_r = self._decimate(ref, self._rest_r)
        self.mic_buf = np.concatenate([self.mic_buf, m])
        self.ref_buf = np.concatenate([self.ref_buf, r])
        while len(self.mic_buf) >= self.seg and len(self.ref_buf) >= self.seg:
            self._segment(self.mic_buf[:self.seg], self.ref_buf[:self.seg])
            self.mic_buf, self.ref_buf = self.mic_buf[self.seg:], self.ref_buf[self.seg:]
        return self.delay

    def _segment(self, mic: np.ndarray, ref: np.ndarray) -> None:
        # the reference segment with max_lag samples before it, against this mic segment
        self.ref_hist = np.concatenate([self.ref_hist[self.seg:], ref])
        if np.dot(ref, ref) < 1e-8 * len(ref) or np.dot(mic, mic) < 1e-10 * len(mic):
            return                                   # far end silent: nothing to learn
        spec_m = np.fft.rfft(mic, self.fft)
        spec_r = np.fft.rfft(self.ref_hist, self.fft)
        # mic[t] ~ ref_hist[t + max_lag - lag]: correlation peak at max_lag - lag
        self.cross = self.decay * self.cross + spec_r * np.conj(spec_m) / (
            np.abs(spec_r) * np.abs(spec_m) + 1e-12)
        corr = np.fft.irfft(self.cross / (np.abs(self.cross) + 1e-12), self.fft)
        window = corr[:self.max_lag + 1][::-1]              # index = lag
        peak = int(np.argmax(window))
        score = window[peak] / (np.std(window) + 1e-12)
        if score < self.confidence:
            return
        lag = peak * self.DECIMATE
        if self._candidate is not None and abs(lag - self._candidate) <= self.DECIMATE:
            if self.delay is None or abs(lag - self.delay) > self.DECIMATE:
                self.delay = lag
                self.updates += 1
        self._candidate = lag


class KalmanEchoCanceller:
    """The delay estimator and the filter together, one block at a time:
    ``process(mic, ref)`` on whole blocks (any multiple of ``block`` samples) returns
    (error, echo estimate), both float32 of the mic's length. The result does not depend on
    how the signal is cut into calls."""

    MARGIN = 2   # blocks of taps kept before the estimated delay

    def __init__(self, rate: float = 16000, block: int = 160, partitions: int = 32,
                 channels: int = 1, max_delay: float = 0.5, forgetting: float = 0.9995,
                 gain_model: str = ""):
        if channels not in (1, 2, 3):
            raise ValueError(f"channels must be 1, 2 or 3, not {channels}")
        reach = int(np.ceil(max_delay * rate / block))
        self.block, self.channels = block, channels
        if gain_model:     # the gain from a network (a neural Kalman filter)
            if channels != 1:
                raise ValueError("a gain model works on one reference channel")
            from .neural_kalman import NeuralKalmanFilter
            self.filter = NeuralKalmanFilter(gain_model, block, partitions,
                                             history=reach + partitions)
        else:
            self.filter = PartitionedKalmanFilter(block, partitions, channels, forgetting,
                                                  history=reach + partitions)
        self.estimator = BulkDelayEstimator(rate, max_delay) if max_delay > 0 else None
        self.moves = 0   # how often the filter followed a new delay estimate

    @property
    def delay(self) -> int | None:
        """The bulk delay in use, samples (None before the first estimate)."""
        return None if self.estimator is None else self.estimator.delay

    def _follow(self, delay: int) -> None:
        f = self.filter
        want = min(max(delay // self.block - self.MARGIN, 0), f.history - f.parts)
        # a move of one block is within the margin: not worth the partitions it resets
        if want != f.offset and (self.moves == 0 or abs(want - f.offset) >= self.MARGIN):
            f.set_offset(want)
            self.moves += 1

    def process(self, mic: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.block
        if len(mic) % n or len(ref) != len(mic):
            raise ValueError(f"mic and ref must be the same whole number of {n}-sample "
                             f"blocks, got {len(mic)} and {len(ref)}")
        err, echo = np.empty(len(mic), np.float32), np.empty(len(mic), np.float32)
        refs = reference_basis(np.asarray(ref, np.float32), self.channels)
        for k in range(0, len(mic), n):
            if self.estimator is not None:
                d = self.estimator.push(mic[k:k + n], ref[k:k + n])
                if d is not None:
                    self._follow(d)
            err[k:k + n], echo[k:k + n] = self.filter.process(mic[k:k + n], refs[:, k:k + n])
        return err, echo


@register("kalman_aec")
class KalmanAec(RateBlock):
    """Acoustic echo cancellation with a partitioned-block frequency-domain Kalman filter
    behind a bulk-delay estimator (the learned canceller's linear stage, as a block).

    The echo path is ``partitions`` x ``block`` taps long (default 32 x 10 ms at 16 kHz),
    starting where the delay estimator finds the echo (0 - ``max_delay`` s behind the
    reference). The Kalman gain sets the step per partition and bin: large while the filter
    is unsure, small while near-end speech or noise dominates the error, so it needs no
    double-talk detector. ``gain_model`` (e.g. ``builtin:aec_nkf``) takes the gain from a
    trained network instead of the Kalman recursion (a neural Kalman filter,
    ``blocks/neural_kalman.py``; one reference channel, the model's block and partitions).
    It removes only the linear part of the echo (``channels`` 2 or 3
    add |x| and x^3 reference channels for a loudspeaker's nonlinearity); it leaves the
    residual for a suppressor (the ``aec`` block has one). Counter ``delay_changes``: how
    often the bulk-delay estimate moved. Ports: mic, ref (float32, same rate) -> out
    (float32, the mic without its linear echo, sample-aligned). Latency: one block.
    Example: ``aec: {type: kalman_aec, block: 160, partitions: 32, max_delay: 0.5}``
    """

    mic = In("float32")
    ref = In("float32")
    out = Out("float32")
    block = Param(int, default=160, min=16, doc="block length (samples)")
    partitions = Param(int, default=32, min=1, max=256, doc="echo path length in blocks")
    channels = Param(int, default=1, min=1, max=3, doc="reference basis: x, |x|, x^3")
    max_delay = Param(float, default=0.5, min=0.0, max=2.0, unit="s",
                      doc="longest bulk delay searched (0: none, the filter starts at 0)")
    forgetting = Param(float, default=0.9995, min=0.9, max=1.0,
                       doc="state transition a: 1 - a^2 sets how fast the path may change")
    gain_model = Param(str, default="", doc="an echo_filter model giving the gain "
                       "(e.g. builtin:aec_nkf); empty: the Kalman recursion")
    rate = Param(float, default=16000.0, min=1.0, unit="Hz",
                 doc="sample rate, when upstream does not declare one")

    def check(self):
        self.decim = self.interp = self.block
        self._fs = self.rate
        if self.gain_model:
            from .neural_kalman import gain_model
            gain_model(self.gain_model, self.block, self.partitions)
            if self.channels != 1:
                raise ParamError("channels", "a gain model works on one reference channel")

    def output_types(self, in_types):
        t = in_types.get("mic")
        if t is not None and t.rate:
            self._fs = t.rate                  # the stream's rate wins over the parameter
        return self._propagate_rate({"out": PortType("float32")}, in_types)

    def start(self):
        self._aec = KalmanEchoCanceller(self._fs, self.block, self.partitions, self.channels,
                                        self.max_delay, self.forgetting, self.gain_model)
        self._moves = 0

    def work(self, mic, ref):
        err, _ = self._aec.process(mic, ref)
        if self._aec.moves > self._moves:
            self.count("delay_changes", self._aec.moves - self._moves)
            self._moves = self._aec.moves
        return err
