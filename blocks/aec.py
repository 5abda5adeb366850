"""aec: the learned acoustic echo canceller (STFT -> streaming complex network -> ISTFT)."""
from __future__ import annotations

import numpy as np

from cvstream import GeneralBlock, In, Out, Param, register
from cvstream.dtypes import PortType
from cvstream.errors import CvstreamError

from .aec_control import LinearFloor, SingleTalkBoost
from .echo_filter import linear_stage
from .onnx_model import OnnxModel, load_model
from .stft import ISTFT, STFT


@register("aec")
class EchoCanceller(GeneralBlock):
    """Remove the far-end echo and the background noise from a microphone signal.

    The microphone and the far-end reference are framed by streaming STFTs (sizes from the
    model's contract: 20 ms window, 10 ms hop at 16 kHz). The linear stage the contract
    names (``preprocess.echo_filter``; the shipped model's: a partitioned-block Kalman
    filter of 32 x 10 ms behind a 0-500 ms bulk-delay estimator, ``blocks/kalman_echo.py``)
    first predicts the echo, and the network sees its error and estimate beside the
    microphone and the reference: it suppresses what the filter left (the loudspeaker's
    nonlinearity, late reverberation, adaptation after a path change) and the noise.
    ``aggressiveness`` (0..1, for models that take it) trades echo removal against
    near-end distortion: the network was trained at every level. While only the far end
    talks (the output far below the microphone, the linear stage predicting an echo) the
    level rises towards ``single_talk`` (``aec_control.py``), so single talk is cleared and
    double talk stays gentle; ``single_talk`` equal to ``aggressiveness`` keeps one level.
    ``linear_floor`` (0..1) mixes that share of the linear stage's error back into the
    output, times one minus the frame's aggressiveness, while the linear stage is removing
    echo: a suppression floor that keeps the near end natural (``aec_control.py``; 0: the
    network alone).
    The network runs frame by frame with its state fed back (so streaming equals offline
    processing), and an inverse STFT gives the near-end speech. NaN/Inf samples are
    replaced by 0 (counted as ``bad_samples``); samples beyond full scale are clipped
    (``clipped``). Inputs must be at the model's rate (16 kHz); other rates are refused at
    validation (resample first).
    The output has the microphone's length. It lags the microphone by window - hop samples
    (the STFT); ``compensate_delay: true`` (for files) removes that lag.
    Ports: mic, ref (float32) -> out (float32). Latency: window + hop (30 ms), no look-ahead.
    Example: ``aec: {type: aec, model: "builtin:aec_cv", aggressiveness: 0.0}``
    """

    mic = In("float32")
    ref = In("float32")
    out = Out("float32")
    model = Param(str, default="builtin:aec_cv", doc="an aec model (path or builtin:NAME)")
    compensate_delay = Param(bool, default=False, doc="align the output with the mic (files)")
    threads = Param(int, default=0, min=0, doc="ONNX Runtime threads (0: auto)")
    aggressiveness = Param(float, default=0.0, min=0.0, max=1.0,
                           doc="echo removal vs near-end distortion (models that take it)")
    single_talk = Param(float, default=1.0, min=0.0, max=1.0,
                        doc="the aggressiveness while only the far end talks")
    linear_floor = Param(float, default=0.1, min=0.0, max=1.0,
                         doc="share of the linear stage's output kept under the network's")

    def check(self):
        self.path, c = load_model(self.model, "aec", needs="stft")
        stft = c.preprocess["stft"]
        self.contract = c
        self.size, self.hop = int(stft["size"]), int(stft["hop"])
        self.delay = self.size - self.hop
        self.echo_filter = dict(c.preprocess.get("echo_filter") or {})
        self.conditioned = [s.name for s in c.inputs][4:] == ["aggressiveness"]
        self._make_linear()   # a contract's linear stage that cannot be built: said once

    def _make_linear(self):
        if not self.echo_filter:
            return None
        try:
            return linear_stage(self.echo_filter, self.size, self.hop, self.contract.rate_hz)
        except (TypeError, ValueError) as exc:
            raise CvstreamError(f"model '{self.model}': preprocess.echo_filter "
                                f"{self.echo_filter} is not a valid echo filter ({exc})") from None

    def output_types(self, in_types):
        want = self.contract.rate_hz
        for name in ("mic", "ref"):
            t = in_types.get(name)
            if t is not None and t.rate and want and abs(t.rate - want) > 1e-6 * want:
                raise CvstreamError(f"'{name}' runs at {t.rate:g} Hz but the echo canceller "
                                    f"works at {want:g} Hz (resample first)")
        return {"out": PortType("float32", (), want)}

    def start(self):
        self._stft_mic = STFT(size=self.size, hop=self.hop)
        self._stft_ref = STFT(size=self.size, hop=self.hop)
        self._net = OnnxModel(model=self.path, threads=self.threads)
        self._linear = self._make_linear()
        self._istft = ISTFT(size=self.size, hop=self.hop)
        self._skip = self.delay if self.compensate_delay else 0
        self._pending = np.zeros((2, 0), np.float32)   # mic, ref samples short of a hop
        self._seen = 0
        self._sent = 0
        self._boost = (SingleTalkBoost(self.aggressiveness, self.single_talk)
                       if self.conditioned and self.single_talk != self.aggressiveness
                       else None)
        self._floor = (LinearFloor(self.linear_floor)
                       if self._linear is not None and self.linear_floor > 0 else None)

    def _clean(self, x: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(x)
        if bad.any():
            self.count("bad_samples", int(bad.sum()))
            x = np.where(bad, 0.0, x).astype(np.float32)
        over = np.abs(x) > 1.0
        if over.any():
            self.count("clipped", int(over.sum()))
            x = np.clip(x, -1.0, 1.0)
        return x

    def _run(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Whole hops of samples -> as many hops of output (after the first window)."""
        if len(mic) == 0:
            return np.zeros(0, np.float32)
        mic_spec, ref_spec = self._stft_mic.process(mic), self._stft_ref.process(ref)
        inputs = (mic_spec, ref_spec)
        if self._linear is not None:
            inputs += self._linear.process(mic, ref, mic_spec, ref_spec)
        levels = np.zeros(len(mic_spec), np.float32)   # each frame's aggressiveness
        if self._boost is not None:
            spectra = np.concatenate([self._frame(inputs, t, levels)
                                      for t in range(len(mic_spec))])
        elif self.conditioned:
            levels[:] = self.aggressiveness
            spectra = self._net.process(*inputs, levels[:, None])
        else:
            spectra = self._net.process(*inputs)
        if self._floor is not None:
            err = inputs[2]
            w = self._floor.weights(mic_spec, err, levels)[:, None].astype(np.float32)
            spectra = spectra + w * (err - spectra)
        y = self._istft.process(spectra)
        if self._skip:
            cut = min(self._skip, len(y))
            y, self._skip = y[cut:], self._skip - cut
        return y

    def _frame(self, inputs: tuple, t: int, levels: np.ndarray) -> np.ndarray:
        """Frame ``t`` of ``inputs`` at the boost's level (kept in ``levels``); the boost
        then sees the network's output."""
        levels[t] = self._boost.level()
        level = levels[t:t + 1, None]
        out = self._net.process(*(x[t:t + 1] for x in inputs), level)
        echo = inputs[3][t] if len(inputs) > 3 else None
        self._boost.update(inputs[0][t], echo, out[0])
        return out

    def _hops(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        both = np.concatenate([self._pending, np.stack([mic, ref])], axis=1)
        whole = both.shape[1] // self.hop * self.hop
        self._pending = both[:, whole:]
        return self._run(both[0, :whole], both[1, :whole])

    def work(self, mic, ref):
        self._seen += len(mic)
        y = self._hops(self._clean(mic), self._clean(ref))
        self._sent += len(y)
        return y

    def finish(self):
        """The last partial hop (zero-padded), then (with compensate_delay) the delayed
        tail, so the output has exactly the microphone's length."""
        pad = -self._pending.shape[1] % self.hop
        if self.compensate_delay:  # push the delay line out with zeros
            pad += self.delay + self.hop
        zeros = np.zeros(pad, np.float32)
        tail = self._hops(zeros, zeros)
        tail = tail[:self._seen - self._sent]
        self._sent += len(tail)
        return tail.astype(np.float32)
