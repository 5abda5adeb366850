"""The learned canceller's linear stage, built from a model's contract
(``preprocess.echo_filter``): the partitioned-block Kalman filter of ``kalman_echo.py``
(kind ``pfdkf``; kind ``nkf``: its gain from a network, ``neural_kalman.py``) run on the
samples, its error and echo estimate framed by the canceller's STFT. What a
linear stage cannot model (late reverberation, the loudspeaker's nonlinearity, adaptation
after a path change) is left to the network, which sees both spectra beside the
microphone's.
"""
from __future__ import annotations

KINDS = ("pfdkf", "nkf")


class KalmanStage:
    """``process(mic, ref, mic_spec, ref_spec)``: whole hops of samples (and their spectra,
    unused here) -> the (error, echo estimate) spectra, one frame per hop."""

    def __init__(self, size: int, hop: int, rate: float, **params):
        from .kalman_echo import KalmanEchoCanceller
        from .stft import STFT
        self.filter = KalmanEchoCanceller(rate, block=hop, **params)
        self.stft_err, self.stft_echo = STFT(size=size, hop=hop), STFT(size=size, hop=hop)

    def process(self, mic, ref, mic_spec, ref_spec):
        err, echo = self.filter.process(mic, ref)
        return self.stft_err.process(err), self.stft_echo.process(echo)


def linear_stage(spec: dict, size: int, hop: int, rate: float) -> KalmanStage:
    """The linear stage ``spec`` names: ``kind`` (``pfdkf`` or ``nkf``) and the filter's
    parameters (``partitions``, ``channels``, ``max_delay``, ``forgetting``; for ``nkf``
    ``model``, the gain model, default ``builtin:aec_nkf``). Raises ValueError or TypeError
    for a spec it cannot build."""
    params = dict(spec)
    kind = params.pop("kind", None)
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "nkf":
        params["gain_model"] = params.pop("model", "builtin:aec_nkf")
    return KalmanStage(size, hop, rate, **params)
